"""The stores on disk: format, durability order, case-insensitive names, cycles, corrupt files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from volttron.server.services.config_store.agent_store import AgentStore, ConfigRecord
from volttron.server.services.config_store.configs import (
    ConfigNotFoundError,
    ConfigStoreError,
    InvalidConfigError,
    ReferenceCycleError,
)
from volttron.server.services.config_store.store import AgentStores
from volttron.utils.time import parse_timestamp_string


def on_disk(directory: Path, identity: str) -> dict:
    return json.loads((directory / f"{identity}.store").read_text())


def test_a_store_writes_the_documented_format_with_private_permissions(tmp_path: Path) -> None:
    store = AgentStores(tmp_path / "configuration_store")
    assert store.load() == []
    store.store("listener", "Config", '{"a": 1} # note', "json")
    store.store("listener", "points.csv", "x,y\n1,2\n", "csv")
    doc = on_disk(store.directory, "listener")
    assert list(doc) == ["Config", "points.csv"]
    assert doc["Config"]["type"] == "json" and doc["Config"]["data"] == '{"a": 1} # note'
    assert parse_timestamp_string(doc["Config"]["modified"]).utcoffset().total_seconds() == 0
    assert (store.directory / "listener.store").stat().st_mode & 0o777 == 0o600
    assert store.directory.stat().st_mode & 0o777 == 0o700
    assert store.record("listener", "config").parsed == {"a": 1}
    assert store.record("listener", "POINTS.CSV").parsed == [{"x": "1", "y": "2"}]


def test_names_are_case_insensitive_and_keep_the_last_spelling(tmp_path: Path) -> None:
    store = AgentStores(tmp_path)
    store.store("a", "Config", "one", "raw")
    store.store("a", "CONFIG", "two", "raw")
    assert store.names("a") == ["CONFIG"]
    assert list(on_disk(tmp_path, "a")) == ["CONFIG"]
    assert store.record("a", "config").data == "two"
    assert store.snapshot("a") == {"CONFIG": "two"}


def test_config_comes_first_in_snapshots_and_assembled_views(tmp_path: Path) -> None:
    store = AgentStores(tmp_path)
    store.store("a", "points", "[1, 2]", "json")
    store.store("a", "config", '{"p": "config://POINTS"}', "json")
    assert list(store.snapshot("a")) == ["config", "points"]
    assert store.snapshot("a")["config"] == {"p": "config://POINTS"}
    assert store.assembled("a") == {"config": {"p": [1, 2]}, "points": [1, 2]}


def test_bad_contents_and_cycles_store_nothing(tmp_path: Path) -> None:
    store = AgentStores(tmp_path)
    store.store("a", "one", '{"next": "config://two"}', "json")
    with pytest.raises(InvalidConfigError, match="line 1, column 9"):
        store.store("a", "two", '{"x": 1,,}', "json")
    with pytest.raises(ReferenceCycleError) as info:
        store.store("a", "two", '{"back": "config://ONE"}', "json")
    assert "'two' -> 'one' -> 'two'" in str(info.value)
    with pytest.raises(ReferenceCycleError, match="'self' -> 'self'"):
        store.store("a", "self", '["config://self"]', "json")
    assert store.names("a") == ["one"]
    assert list(on_disk(tmp_path, "a")) == ["one"]


def test_a_batch_is_all_or_nothing(tmp_path: Path) -> None:
    store = AgentStores(tmp_path)
    store.store_many("a", [("config", '{"d": "config://dev"}', "json"), ("dev", "[1]", "json")])
    assert store.names("a") == ["config", "dev"]
    with pytest.raises(InvalidConfigError, match="'broken'"):
        store.store_many("a", [("new", "[]", "json"), ("broken", "{", "json")])
    with pytest.raises(InvalidConfigError, match="given twice"):
        store.store_many("a", [("x", "1", "raw"), ("X", "2", "raw")])
    with pytest.raises(ReferenceCycleError):
        store.store_many("a", [("p", '["config://q"]', "json"), ("q", '["config://p"]', "json")])
    with pytest.raises(InvalidConfigError, match="no configurations"):
        store.store_many("a", [])
    assert store.names("a") == ["config", "dev"]


def test_deleting_the_last_configuration_removes_the_file(tmp_path: Path) -> None:
    store = AgentStores(tmp_path)
    store.store("a", "one", "1", "raw")
    store.store("a", "two", "2", "raw")
    store.delete("a", "ONE")
    assert list(on_disk(tmp_path, "a")) == ["two"]
    with pytest.raises(ConfigNotFoundError, match="no configuration 'one' for 'a'"):
        store.delete("a", "one")
    store.delete("a", "two")
    assert not (tmp_path / "a.store").exists() and store.identities() == []
    store.store("b", "x", "1", "raw")
    store.delete_store("b")
    store.delete_store("nobody")
    assert not (tmp_path / "b.store").exists() and store.names("b") == []


def test_identities_must_be_usable_as_file_names(tmp_path: Path) -> None:
    store = AgentStores(tmp_path)
    for bad in ("../etc", "a/b", "", "with space", None, ".", "..", ".x", "x" * 201):
        with pytest.raises(InvalidConfigError, match="cannot have a configuration store"):
            store.store(bad, "config", "x", "raw")
    assert list(tmp_path.iterdir()) == []


def test_a_store_file_of_a_dot_identity_is_reported_and_kept(tmp_path: Path) -> None:
    """Written by an older version for '.x': loading says so instead of skipping it silently."""
    hidden = tmp_path / ".x.store"
    hidden.write_text('{"config": {"type": "raw", "modified": null, "data": "1"}}')
    problems = AgentStores(tmp_path).load()
    assert any(".x.store is not loaded" in p for p in problems), problems
    assert hidden.exists()


def test_a_failed_write_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AgentStores(tmp_path)
    store.store("a", "one", "1", "raw")

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("volttron.server.services.config_store.agent_store.atomic_write", no_space)
    with pytest.raises(ConfigStoreError, match="No space left on device"):
        store.store("a", "two", "2", "raw")
    assert store.names("a") == ["one"]


def test_everything_is_read_back_after_a_restart(tmp_path: Path) -> None:
    first = AgentStores(tmp_path)
    first.store("a", "Config", '{"p": "config://pts"}', "json")
    first.store("a", "pts", "n\n1\n", "csv")
    first.store("b.x-y_z", "raw", "text", "raw")
    second = AgentStores(tmp_path)
    assert second.load() == []
    assert second.identities() == ["a", "b.x-y_z"]
    assert second.assembled("a") == {"Config": {"p": [{"n": "1"}]}, "pts": [{"n": "1"}]}
    assert second.record("a", "config").modified == first.record("a", "config").modified


def test_a_corrupt_file_is_moved_aside_and_the_rest_load(tmp_path: Path) -> None:
    (tmp_path / "good.store").write_text(json.dumps(
        {"config": {"type": "raw", "modified": None, "data": "ok"}}))
    (tmp_path / "bad.store").write_text('{"config": {"type": "raw", "da')
    (tmp_path / "list.store").write_text("[]")
    (tmp_path / ".bad.store.x1y2.tmp").write_text("half")
    (tmp_path / "notes.txt").write_text("not a store")
    store = AgentStores(tmp_path)
    problems = store.load()
    assert len(problems) == 2
    assert any("bad.store is not valid JSON" in p and "kept as" in p for p in problems)
    assert any("list.store holds a JSON list" in p for p in problems)
    assert store.identities() == ["good"]
    kept = sorted(p.name for p in tmp_path.glob("*.corrupt-*"))
    assert len(kept) == 2 and kept[0].startswith("bad.store.corrupt-")
    assert not (tmp_path / ".bad.store.x1y2.tmp").exists() and (tmp_path / "notes.txt").exists()
    store.store("bad", "config", "new", "raw")  # the identity starts afresh
    assert store.record("bad", "config").data == "new"


def test_unusable_entries_are_dropped_and_the_original_kept(tmp_path: Path) -> None:
    entries = {
        "config": {"type": "json", "modified": "2024-01-01T00:00:00.000000+00:00", "data": '{"a": 1}'},
        "Config": {"type": "raw", "modified": None, "data": "clash"},
        "broken": {"type": "json", "modified": None, "data": "{"},
        "typed": {"type": "yaml", "modified": None, "data": "a: 1"},
        "nodata": {"type": "raw", "modified": None},
        "loop": {"type": "json", "modified": None, "data": '["config://loop"]'},
        "scalar": "just a string",
    }
    original = json.dumps(entries)
    (tmp_path / "a.store").write_text(original)
    store = AgentStores(tmp_path)
    problems = store.load()
    assert len(problems) == 1
    for name in ("Config", "broken", "typed", "nodata", "loop", "scalar"):
        assert repr(name) in problems[0]
    assert store.names("a") == ["config"]
    assert list(on_disk(tmp_path, "a")) == ["config"]
    (kept,) = tmp_path.glob("a.store.corrupt-*")
    assert kept.read_text() == original


def test_an_unreadable_file_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.store"
    path.write_text(json.dumps({"config": {"type": "raw", "modified": None, "data": "keep"}}))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("volttron.server.services.config_store.agent_store.read_json_file", denied)
    store = AgentStores(tmp_path)
    problems = store.load()
    assert "Permission denied" in problems[0] and "unavailable" in problems[0]
    with pytest.raises(ConfigStoreError, match="unavailable"):
        store.store("a", "config", "overwrite", "raw")
    with pytest.raises(ConfigStoreError, match="unavailable"):
        store.names("a")
    assert "keep" in path.read_text() and list(tmp_path.iterdir()) == [path]


def test_agent_store_records_round_trip(tmp_path: Path) -> None:
    record = ConfigRecord.create("Name", "[1]", "json")
    assert record.key == "name" and record.parsed == [1]
    assert set(record.to_file()) == {"type", "modified", "data"}
    store = AgentStore("a", tmp_path / "a.store")
    assert store.put([record]) == [(record, "NEW")]
    assert store.put([ConfigRecord.create("NAME", "[2]", "json")])[0][1] == "UPDATE"
    assert "name" in store and len(store) == 1
    with pytest.raises(ConfigNotFoundError):
        store.get("other")


def test_references_that_would_expand_exponentially_are_refused(tmp_path: Path) -> None:
    from volttron.server.services.config_store.configs import ReferenceExpansionError

    store = AgentStores(tmp_path)
    store.store("a", "c12", '{"v": "' + "z" * 5000 + '"}', "json")
    for i in range(11, -1, -1):
        body = f'{{"a": "config://c{i + 1}", "b": "config://c{i + 1}"}}'
        if i > 0:
            store.store("a", f"c{i}", body, "json")
        else:  # 2**12 copies of 5 kB: over 16 MB
            with pytest.raises(ReferenceExpansionError, match="'c0' would expand"):
                store.store("a", f"c{i}", body, "json")
    assert "c0" not in store.names("a") and len(store.names("a")) == 12
