"""One agent's configurations: in memory, and in ``configuration_store/<identity>.store``.

See docs/protocol.md §2.10.

The file is a JSON object ``{name: {"type": "json|raw|csv", "modified": "<iso ts>", "data": "<raw
text>"}}``, names in the case they were last written. Every change rewrites the file with
:func:`~volttron.utils.files.atomic_write` (temporary file, fsync, rename, fsync of the folder)
*before* memory changes, so what a caller has been told is stored survives ``kill -9`` and a
failed write leaves both as they were.

Loading never loses data silently. A file that is not a JSON object is moved aside as
``<identity>.store.corrupt-<timestamp>`` and the agent starts with an empty store; a file whose
entries are partly unusable (unknown type, contents that no longer parse, two names differing only
in case, references that loop) is moved aside the same way and the usable entries are written
back. Either way :meth:`AgentStore.load` returns a description of what happened, for the log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volttron.server.services.config_store.configs import (
    CONFIG_TYPES,
    ConfigNotFoundError,
    ConfigStoreError,
    InvalidConfigError,
    ReferenceCycleError,
    ReferenceExpansionError,
    describe_cycle,
    expansion_problem,
    find_cycle,
    link_counts,
    links,
    parse,
)
from volttron.utils.errors import CorruptFileError
from volttron.utils.files import atomic_write, fsync_directory, move_aside, read_json_file
from volttron.utils.time import format_timestamp, get_aware_utc_now

STORE_SUFFIX = ".store"
FILE_MODE = 0o600


@dataclass(frozen=True)
class ConfigRecord:
    """One stored configuration: its name as written, type, raw text, parsed value and time."""

    name: str
    type: str
    data: str
    parsed: Any
    modified: str | None = None

    @property
    def key(self) -> str:
        """The lower-case name the store is keyed by."""
        return self.name.lower()

    def to_file(self) -> dict[str, Any]:
        """The record as the ``.store`` file holds it."""
        return {"type": self.type, "modified": self.modified, "data": self.data}

    @classmethod
    def create(cls, name: str, data: str, config_type: str) -> ConfigRecord:
        """A new record stamped now; :class:`InvalidConfigError` when ``data`` does not parse."""
        return cls(name, config_type, data, parse(data, config_type, repr(name)),
                   format_timestamp(get_aware_utc_now()))


class AgentStore:
    """The configurations of one agent identity; see the module docstring."""

    def __init__(self, identity: str, path: Path, records: Iterable[ConfigRecord] = ()) -> None:
        self.identity = identity
        self.path = path
        self._records: dict[str, ConfigRecord] = {r.key: r for r in records}

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._records

    def names(self) -> list[str]:
        """The configuration names in the case they were written, sorted."""
        return sorted(r.name for r in self._records.values())

    def get(self, name: str) -> ConfigRecord:
        """The record of ``name`` (any case); :class:`ConfigNotFoundError` if there is none."""
        record = self._records.get(name.lower())
        if record is None:
            raise ConfigNotFoundError(f"no configuration {name!r} for {self.identity!r}")
        return record

    def records(self) -> list[ConfigRecord]:
        """Every record, ``config`` first, then in the order they were first stored."""
        ordered = list(self._records.values())
        ordered.sort(key=lambda r: r.key != "config")
        return ordered

    def parsed(self) -> dict[str, Any]:
        """``{lower-case name: parsed value}``."""
        return {key: record.parsed for key, record in self._records.items()}

    def graph(self) -> dict[str, set[str]]:
        """``{lower-case name: lower-case names it refers to}``."""
        return {key: links(record.parsed) for key, record in self._records.items()}

    def display_names(self) -> dict[str, str]:
        """``{lower-case name: name as written}``."""
        return {key: record.name for key, record in self._records.items()}

    # -- checking --------------------------------------------------------------------------------
    def check_references(self, new: Iterable[ConfigRecord]) -> None:
        """Raise :class:`ReferenceCycleError` if storing ``new`` would make references loop, and
        :class:`ReferenceExpansionError` if some configuration would resolve too big or too deep."""
        new = list(new)
        records = dict(self._records)
        for record in new:
            records[record.key] = record
        counts = {key: link_counts(record.parsed) for key, record in records.items()}
        graph = {key: set(found) for key, found in counts.items()}
        names = {key: record.name for key, record in records.items()}
        for record in new:
            path = find_cycle(graph, record.key)
            if path is not None:
                raise ReferenceCycleError(
                    f"configuration {record.name!r} of {self.identity!r} would refer to itself: "
                    f"{describe_cycle(path, names)}")
        problem = expansion_problem({key: len(record.data) for key, record in records.items()}, counts, names)
        if problem is not None:
            raise ReferenceExpansionError(f"{problem} (store of {self.identity!r}); not stored")

    # -- changing (file first, then memory) ----------------------------------------------------
    def put(self, records: Iterable[ConfigRecord]) -> list[tuple[ConfigRecord, str]]:
        """Store ``records`` (one file write); ``[(record, "NEW"|"UPDATE")]`` in the given order."""
        records = list(records)
        self.check_references(records)
        changed = dict(self._records)
        actions = []
        for record in records:
            actions.append((record, "UPDATE" if record.key in changed else "NEW"))
            changed.pop(record.key, None)  # a new spelling of the name takes the new case
            changed[record.key] = record
        self._write(changed)
        self._records = changed
        return actions

    def delete(self, name: str) -> ConfigRecord:
        """Remove ``name`` (any case) and return its record; :class:`ConfigNotFoundError` if absent."""
        record = self.get(name)
        changed = {k: r for k, r in self._records.items() if k != record.key}
        self._write(changed)
        self._records = changed
        return record

    def clear(self) -> list[ConfigRecord]:
        """Remove every configuration (and the file); returns what was removed."""
        removed = list(self._records.values())
        self._write({})
        self._records = {}
        return removed

    def _write(self, records: Mapping[str, ConfigRecord]) -> None:
        if not records:
            try:
                self.path.unlink()
            except FileNotFoundError:
                return
            except OSError as exc:
                raise ConfigStoreError(f"cannot remove {self.path}: {exc.strerror or exc}") from None
            fsync_directory(self.path.parent)
            return
        document = {r.name: r.to_file() for r in records.values()}
        try:
            atomic_write(self.path, json.dumps(document, indent=2) + "\n", FILE_MODE)
        except OSError as exc:
            raise ConfigStoreError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, identity: str, path: Path) -> tuple[AgentStore, list[str]]:
        """The store in ``path`` and the problems found (empty when the file was fine).

        :class:`ConfigStoreError` when the file cannot be read at all (permissions): then nothing
        is moved or written and the caller must not use the identity's store.
        """
        try:
            document = read_json_file(path, {}, expect=dict)
        except CorruptFileError as exc:
            return cls(identity, path), [f"{exc}; {identity!r} starts with an empty store"]
        except OSError as exc:
            raise ConfigStoreError(f"cannot read {path}: {exc.strerror or exc}") from None
        store = cls(identity, path)
        dropped = []
        for name, entry in document.items():
            try:
                record = _record_from_file(name, entry)
                if record.key in store._records:
                    raise InvalidConfigError(
                        f"its name differs only in case from {store._records[record.key].name!r}")
                store.check_references([record])
            except InvalidConfigError as exc:
                dropped.append(f"{name!r} ({exc})")
                continue
            store._records[record.key] = record
        if not dropped:
            return store, []
        kept = move_aside(path)
        store._write(store._records)
        return store, [f"{path}: dropped {len(dropped)} unusable configuration(s): {'; '.join(dropped)}; "
                       f"the original file is kept as {kept}"]


def _record_from_file(name: str, entry: Any) -> ConfigRecord:
    if not isinstance(entry, dict):
        raise InvalidConfigError(f"the entry is a JSON {type(entry).__name__}, not an object")
    config_type = entry.get("type")
    if config_type not in CONFIG_TYPES:
        raise InvalidConfigError(f"unknown type {config_type!r}")
    data = entry.get("data")
    if not isinstance(data, str):
        raise InvalidConfigError("its data is not text")
    modified = entry.get("modified")
    if not name.strip():
        raise InvalidConfigError("the name is empty")
    return ConfigRecord(name, config_type, data, parse(data, config_type, repr(name)),
                        modified if isinstance(modified, str) else None)


def store_path(directory: Path, identity: str) -> Path:
    """``<directory>/<identity>.store``."""
    return directory / f"{identity}{STORE_SUFFIX}"


def identity_of(path: Path) -> str | None:
    """The identity a ``.store`` file belongs to, or None for any other file."""
    name = path.name
    if not name.endswith(STORE_SUFFIX) or name.startswith(".") or len(name) == len(STORE_SUFFIX):
        return None
    return name[: -len(STORE_SUFFIX)]


def stale_temporary_files(directory: Path) -> list[Path]:
    """Temporary files an interrupted :func:`atomic_write` of a ``.store`` file left behind."""
    return sorted(p for p in directory.glob(f".*{STORE_SUFFIX}.*.tmp") if p.is_file())


def remove_files(paths: Iterable[Path]) -> None:
    """Remove ``paths``, ignoring those already gone."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
