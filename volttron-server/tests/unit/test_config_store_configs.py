"""Configuration types, names and config:// references (no I/O)."""

from __future__ import annotations

import pytest

from volttron.server.services.config_store.configs import (
    ConfigNotFoundError,
    InvalidConfigError,
    dependency_order,
    describe_cycle,
    find_cycle,
    from_contents,
    link_target,
    links,
    normalize_name,
    parse,
    resolve,
)


def test_json_with_comments_must_be_an_object_or_a_list() -> None:
    text = '{\n  # a comment\n  "a": 1, // another\n  /* block\n */ "b": "http://x//y"\n}'
    assert parse(text, "json") == {"a": 1, "b": "http://x//y"}
    assert parse("[1, 2]", "JSON") == [1, 2]
    for scalar, kind in (("3", "a number"), ('"x"', "a string"), ("null", "null"), ("true", "a boolean")):
        with pytest.raises(InvalidConfigError, match=f"object or a list, not {kind}"):
            parse(scalar, "json", "'c'")


def test_json_syntax_errors_name_the_line_and_column() -> None:
    with pytest.raises(InvalidConfigError) as info:
        parse('{\n  "a": 1,\n  "b" 2\n}', "json", "'cfg'")
    assert str(info.value).startswith("'cfg': line 3, column 7: invalid JSON")


def test_csv_is_a_list_of_rows_and_needs_a_header() -> None:
    assert parse("Point,Units\nT1,degF\nT2,\n", "csv") == [
        {"Point": "T1", "Units": "degF"}, {"Point": "T2", "Units": ""}]
    assert parse("Point,Units\n", "csv") == []
    with pytest.raises(InvalidConfigError, match="header row"):
        parse("", "csv")


def test_raw_is_kept_and_types_and_contents_are_checked() -> None:
    assert parse("  any text { ", "raw") == "  any text { "
    with pytest.raises(InvalidConfigError, match="unknown configuration type 'yaml'"):
        parse("a: 1", "yaml")
    with pytest.raises(InvalidConfigError, match="must be text"):
        parse({"a": 1}, "json")


def test_names_lose_the_link_prefix_and_blanks_and_must_be_usable() -> None:
    assert normalize_name("  Config ") == "Config"
    assert normalize_name("CONFIG://devices/a") == "devices/a"
    for bad, why in (("", "empty"), ("config://", "empty"), ("a\nb", "control"), (3, "string"),
                     ("x" * 1025, "at most")):
        with pytest.raises(InvalidConfigError, match=why):
            normalize_name(bad)


def test_contents_from_an_agent_become_json_or_raw() -> None:
    assert from_contents({"a": [1]}) == ('{"a": [1]}', "json")
    assert from_contents([]) == ("[]", "json")
    assert from_contents("text") == ("text", "raw")
    with pytest.raises(InvalidConfigError, match="not int"):
        from_contents(3)
    with pytest.raises(InvalidConfigError, match="cannot be written as JSON"):
        from_contents({"a": {1, 2}})


def test_links_are_found_anywhere_case_insensitively() -> None:
    value = {"a": "config://Points", "b": [1, {"c": "CONFIG://other"}], "d": "config:/x", "e": "config://"}
    assert links(value) == {"points", "other"}
    assert link_target("config://A/B.csv") == "a/b.csv"
    assert link_target(5) is None


def test_a_cycle_is_found_through_the_start_only() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}
    assert find_cycle(graph, "a") == ["a", "b", "c", "a"]
    assert find_cycle(graph, "d") == ["d", "d"]
    assert find_cycle({"a": {"b"}, "b": set()}, "a") is None
    assert describe_cycle(["a", "b", "a"], {"a": "A", "b": "B"}) == "'A' -> 'B' -> 'A'"


def test_resolve_replaces_references_recursively_and_copies() -> None:
    configs = {"config": {"dev": "config://dev", "missing": "config://nope"},
               "dev": {"points": "config://points", "again": "config://points"},
               "points": [{"n": "T"}]}
    value = resolve("config", configs)
    assert value == {"dev": {"points": [{"n": "T"}], "again": [{"n": "T"}]}, "missing": "config://nope"}
    value["dev"]["points"][0]["n"] = "changed"
    assert configs["points"] == [{"n": "T"}]
    # a loop written into a file by hand does not hang: the inner reference stays as written
    assert resolve("a", {"a": {"x": "config://b"}, "b": {"y": "config://a"}}) == {"x": {"y": "config://a"}}
    with pytest.raises(KeyError):
        resolve("nope", configs)


def test_dependency_order_puts_referenced_configurations_first() -> None:
    graph = {"config": {"dev"}, "dev": {"points"}, "points": set(), "other": set()}
    order = dependency_order(["config", "other", "dev", "points"], graph)
    assert order == ["points", "dev", "config", "other"]
    assert dependency_order(["config"], graph) == ["config"]


def test_not_found_reads_as_its_message() -> None:
    assert str(ConfigNotFoundError("no configuration 'x' for 'a'")) == "no configuration 'x' for 'a'"
    assert isinstance(ConfigNotFoundError("x"), KeyError)


def test_expansion_is_estimated_without_expanding() -> None:
    from collections import Counter

    from volttron.server.services.config_store.configs import (
        MAX_EXPANDED_BYTES,
        MAX_REFERENCE_DEPTH,
        expansion_problem,
    )

    def chain(length: int, refs: int, leaf: int) -> tuple[dict[str, int], dict[str, Counter[str]]]:
        sizes = {f"c{i}": 60 for i in range(length)}
        sizes[f"c{length}"] = leaf
        counts = {f"c{i}": Counter({f"c{i + 1}": refs}) for i in range(length)}
        return sizes, counts

    assert expansion_problem(*chain(MAX_REFERENCE_DEPTH, 1, 100), {}) is None
    assert "nested 17 deep" in expansion_problem(*chain(MAX_REFERENCE_DEPTH + 1, 1, 100), {})
    assert "would expand" in expansion_problem(*chain(2, 2, MAX_EXPANDED_BYTES // 3), {"c0": "C0"})
    # a thousand configurations sharing one big registry is fine: each resolves to one copy
    sizes = {"registry": 1_000_000, **{f"d{i}": 50 for i in range(1000)}}
    counts = {f"d{i}": Counter({"registry": 1}) for i in range(1000)}
    assert expansion_problem(sizes, counts, {}) is None
    # a chain of 10,000 (no recursion limit) is measured, and refused for its depth
    assert "deep" in expansion_problem(*chain(10_000, 1, 10), {})
