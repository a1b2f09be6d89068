"""Configurations as the store keeps them: types, names and ``config://`` references (docs/protocol.md §2.10).

A configuration is stored as its raw text and a type:

- ``json``: JSON with ``#``, ``//`` and ``/* */`` comments; the value must be an object or a list;
- ``csv``: a header row and data rows, delivered as a list of objects (``csv.DictReader``);
- ``raw``: the text as is.

Names are case-insensitive (the store keys them in lower case and reports the case last written).
A string ``config://<name>`` anywhere inside a JSON or CSV configuration refers to another
configuration of the same agent: agents receive the parsed values and resolve the references when
they deliver a configuration; :func:`resolve` does the same for the store's own "assembled" view.
References may point at configurations that do not exist (yet); a chain of references that comes
back to where it started is refused when it would be stored (:func:`find_cycle`), and so is one that
would resolve to more than :data:`MAX_EXPANDED_BYTES` or nest deeper than :data:`MAX_REFERENCE_DEPTH`
(:func:`expansion_problem`): a configuration referring twice to the next, 22 deep, resolves to
2**22 copies of the last, which every agent and ``vctl config get-all`` would build.

Errors::

    VolttronError
     +-- ConfigStoreError
          +-- InvalidConfigError (also ValueError)   contents, type or name that cannot be stored
          |    +-- ReferenceCycleError               config:// references that loop
          |    +-- ReferenceExpansionError           config:// references that resolve too big or deep
          +-- ConfigNotFoundError (also KeyError)    no such configuration or store
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from volttron.utils.config import strip_comments
from volttron.utils.errors import VolttronError

CONFIG_TYPES = ("json", "csv", "raw")
LINK_PREFIX = "config://"
MAX_NAME_LENGTH = 1024
MAX_EXPANDED_BYTES = 16 * 1024 * 1024
"""Largest size a configuration may resolve to, its references replaced (estimated from raw sizes)."""
MAX_REFERENCE_DEPTH = 16
"""Longest chain of ``config://`` references from a configuration."""


class ConfigStoreError(VolttronError):
    """A configuration store request that cannot be done (the message says why)."""


class InvalidConfigError(ConfigStoreError, ValueError):
    """Contents, a type or a name that cannot be stored."""


class ReferenceCycleError(InvalidConfigError):
    """``config://`` references that would lead from a configuration back to itself."""


class ReferenceExpansionError(InvalidConfigError):
    """``config://`` references that would resolve to too much text or nest too deep."""


class ConfigNotFoundError(ConfigStoreError, KeyError):
    """No configuration of that name (or no store for that identity)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def normalize_name(name: Any) -> str:
    """The configuration name to store: ``config://`` prefix and surrounding blanks removed.

    Raises :class:`InvalidConfigError` for a name that is not text, is empty, too long, or holds
    control characters.
    """
    if not isinstance(name, str):
        raise InvalidConfigError(f"a configuration name must be a string, not {type(name).__name__}")
    text = name.strip()
    if text.lower().startswith(LINK_PREFIX):
        text = text[len(LINK_PREFIX):].strip()
    if not text:
        raise InvalidConfigError("a configuration name must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidConfigError(f"a configuration name is at most {MAX_NAME_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidConfigError(f"configuration name {text!r} holds control characters")
    return text


def check_type(config_type: Any) -> str:
    """``config_type`` in lower case when it is one of :data:`CONFIG_TYPES`."""
    if not isinstance(config_type, str) or config_type.lower() not in CONFIG_TYPES:
        raise InvalidConfigError(
            f"unknown configuration type {config_type!r}; use one of {', '.join(CONFIG_TYPES)}")
    return config_type.lower()


def parse(raw: Any, config_type: str, name: str = "configuration") -> Any:
    """The value an agent receives for ``raw`` text of ``config_type``; ``name`` appears in errors.

    JSON errors name the line and column. CSV needs a header row.
    """
    config_type = check_type(config_type)
    if not isinstance(raw, str):
        raise InvalidConfigError(f"{name}: the raw contents must be text, not {type(raw).__name__}")
    if config_type == "raw":
        return raw
    if config_type == "json":
        return _parse_json(raw, name)
    return _parse_csv(raw, name)


def _parse_json(raw: str, name: str) -> Any:
    try:
        value = json.loads(strip_comments(raw))
    except json.JSONDecodeError as exc:
        raise InvalidConfigError(
            f"{name}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InvalidConfigError(f"{name}: JSON nested too deeply") from None
    if not isinstance(value, (dict, list)):
        raise InvalidConfigError(
            f"{name}: a JSON configuration must be an object or a list, not {_kind(value)}")
    return value


def _parse_csv(raw: str, name: str) -> list[dict[str, Any]]:
    try:
        reader = csv.DictReader(io.StringIO(raw))
        rows = [dict(row) for row in reader]
    except csv.Error as exc:
        raise InvalidConfigError(f"{name}: invalid CSV: {exc}") from None
    if reader.fieldnames is None:
        raise InvalidConfigError(f"{name}: a CSV configuration needs a header row")
    return rows


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__)


def from_contents(contents: Any, name: str = "configuration") -> tuple[str, str]:
    """``(raw, type)`` for parsed ``contents`` an agent sends (``set_config``, 10.x form).

    A dict or a list is stored as JSON, a string as raw text; anything else is refused.
    """
    if isinstance(contents, (dict, list)):
        try:
            return json.dumps(contents), "json"
        except (TypeError, ValueError) as exc:
            raise InvalidConfigError(f"{name}: contents cannot be written as JSON: {exc}") from None
    if isinstance(contents, str):
        return contents, "raw"
    raise InvalidConfigError(
        f"{name}: contents must be an object, a list or a string, not {type(contents).__name__}")


# -- references ----------------------------------------------------------------------------------

def link_target(value: Any) -> str | None:
    """The lower-case name a ``config://`` string refers to, or None for any other value."""
    if isinstance(value, str) and value[:len(LINK_PREFIX)].lower() == LINK_PREFIX:
        return value[len(LINK_PREFIX):].lower() or None
    return None


def links(value: Any) -> set[str]:
    """The lower-case names of every configuration ``value`` refers to (nested anywhere)."""
    return set(link_counts(value))


def link_counts(value: Any) -> Counter[str]:
    """How often ``value`` refers to each configuration (lower-case names), nested anywhere."""
    found: Counter[str] = Counter()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            target = link_target(item)
            if target is not None:
                found[target] += 1
    return found


def expansion_problem(sizes: Mapping[str, int], counts: Mapping[str, Counter[str]],
                      names: Mapping[str, str]) -> str | None:
    """Why some configuration would resolve too big or too deep, or None when none would.

    ``sizes`` maps lower-case names to their own raw sizes, ``counts`` to :func:`link_counts`; the
    graph must be free of cycles. Linear in the number of references: nothing is expanded.
    """
    cap = MAX_EXPANDED_BYTES + 1
    expanded: dict[str, int] = {}
    depth: dict[str, int] = {}
    for root in sizes:
        stack = [(root, False)]
        while stack:  # post-order without recursion: a long chain must not exhaust the stack
            key, children_done = stack.pop()
            if key in expanded:
                continue
            targets = [t for t in counts.get(key, ()) if t in sizes]
            if not children_done:
                stack.append((key, True))
                stack.extend((t, False) for t in targets if t not in expanded)
                continue
            total = sizes[key]
            for target in targets:
                total += counts[key][target] * max(0, expanded[target] - len(LINK_PREFIX) - len(target))
            expanded[key] = min(total, cap)
            depth[key] = 1 + max((depth[t] for t in targets), default=-1)
            if expanded[key] > MAX_EXPANDED_BYTES:
                return (f"configuration {names.get(key, key)!r} would expand to more than "
                        f"{MAX_EXPANDED_BYTES} bytes through its config:// references")
            if depth[key] > MAX_REFERENCE_DEPTH:
                return (f"configuration {names.get(key, key)!r} has config:// references nested "
                        f"{depth[key]} deep; at most {MAX_REFERENCE_DEPTH}")
    return None


def find_cycle(graph: Mapping[str, Iterable[str]], start: str) -> list[str] | None:
    """A path ``[start, ..., start]`` through ``graph`` (name -> referenced names), or None.

    Names are lower case. Only cycles through ``start`` are looked for: the graph without it is
    already free of them.
    """
    parents: dict[str, str | None] = {start: None}
    stack = [start]
    while stack:
        node = stack.pop()
        for target in graph.get(node, ()):
            if target == start:
                path = [start]
                at: str | None = node
                while at is not None:
                    path.append(at)
                    at = parents[at]
                return path[::-1]
            if target not in parents:
                parents[target] = node
                stack.append(target)
    return None


def describe_cycle(path: list[str], names: Mapping[str, str]) -> str:
    """``'a' -> 'b' -> 'a'`` with the names in the case they were written."""
    return " -> ".join(repr(names.get(n, n)) for n in path)


def resolve(name: str, configs: Mapping[str, Any]) -> Any:
    """The value of configuration ``name`` (lower case) with every reference replaced, recursively.

    ``configs`` maps lower-case names to parsed values. A reference to a missing configuration
    stays as written. Values are copied, never shared with ``configs``.
    """
    done: dict[str, Any] = {}

    def value_of(key: str, active: tuple[str, ...]) -> Any:
        if key in done:
            return done[key]
        if key in active:  # refused when stored; kept as written if a file was edited by hand
            return LINK_PREFIX + key
        result = substitute(configs[key], (*active, key))
        done[key] = result
        return result

    def substitute(value: Any, active: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: substitute(v, active) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v, active) for v in value]
        target = link_target(value)
        if target is not None and target in configs:
            return value_of(target, active)
        return value

    return value_of(name, ())


def dependency_order(names: list[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """``names`` (lower case) reordered so that a configuration comes after those it refers to.

    Otherwise the given order is kept. ``graph`` must be free of cycles among ``names``.
    """
    wanted = set(names)
    placed: set[str] = set()
    order: list[str] = []

    def place(name: str) -> None:
        if name in placed:
            return
        placed.add(name)
        for target in sorted(graph.get(name, ())):
            if target in wanted:
                place(target)
        order.append(name)

    for name in names:
        place(name)
    return order
