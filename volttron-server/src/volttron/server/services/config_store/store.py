"""Every agent's configurations, and telling agents when theirs change.

:class:`AgentStores` owns the ``configuration_store/`` folder: one :class:`AgentStore` per identity
that has configurations. Each change is validated first (name, type, contents, reference cycles),
written durably, applied in memory, and only then queued for the agent as a ``config.update`` push
(:class:`~volttron.server.services.config_store.pusher.UpdatePusher`). Changes to one identity are
serialised by a per-identity lock, so the order of pushes is the order of writes; writes may run in
a thread (``run_io``) so that ``fsync`` does not stall the platform's event loop.

What agents receive are parsed values with ``config://`` references left in place: the agent's
config subsystem resolves them when it delivers a configuration, and fires ``UPDATE`` for every
configuration that refers to a changed one (docs/protocol.md §2.10). :meth:`AgentStores.assembled` gives
the resolved view for tools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gevent.event import AsyncResult
from gevent.lock import Semaphore

from volttron.server.services.config_store.agent_store import (
    STORE_SUFFIX,
    AgentStore,
    ConfigRecord,
    identity_of,
    remove_files,
    stale_temporary_files,
    store_path,
)
from volttron.server.services.config_store.configs import (
    ConfigNotFoundError,
    ConfigStoreError,
    InvalidConfigError,
    check_type,
    dependency_order,
    normalize_name,
    resolve,
)
from volttron.server.services.config_store.pusher import UpdatePusher
from volttron.utils.errors import IdentityError
from volttron.utils.files import fsync_directory
from volttron.utils.identities import check_agent_identity

_log = logging.getLogger(__name__)

UPDATE = "config.update"
INITIAL_UPDATE = "config.initial_update"
MAX_BATCH = 10000

RunIO = Callable[..., Any]
"""``run_io(function, *args)``: run blocking file I/O and return its result."""


def _direct(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


class AgentStores:
    """The configuration stores of all agents; see the module docstring."""

    def __init__(self, directory: Path, pusher: UpdatePusher | None = None, run_io: RunIO = _direct) -> None:
        self.directory = Path(directory)
        self.pusher = pusher
        self._run_io = run_io
        self._stores: dict[str, AgentStore] = {}
        self._unusable: dict[str, str] = {}
        self._locks: dict[str, Semaphore] = {}

    # -- start-up --------------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Read every ``.store`` file; returns the problems found (each already dealt with).

        Corrupt files are moved aside; leftovers of interrupted writes are removed. A file that
        cannot be read at all makes that identity's store unusable until the next start (never
        overwritten).
        """
        try:
            if not self.directory.is_dir():
                self.directory.mkdir(mode=0o700, parents=True)
                fsync_directory(self.directory.parent)  # the folder itself must survive a crash too
        except OSError as exc:
            raise ConfigStoreError(f"cannot create {self.directory}: {exc.strerror or exc}") from None
        problems = []
        leftovers = stale_temporary_files(self.directory)
        if leftovers:
            remove_files(leftovers)
            _log.info("removed %d unfinished write(s) in %s", len(leftovers), self.directory)
        for path in sorted(self.directory.iterdir()):
            identity = identity_of(path)
            if identity is None and path.name.endswith(STORE_SUFFIX) and path.name.startswith("."):
                # written for an identity starting with '.' by an older version: report, never lose
                problems.append(f"{path} is not loaded: an identity must not start with '.'; the file "
                                "is kept, rename it to <valid identity>.store to use it")
            if identity is None or not path.is_file():
                continue
            try:
                store, found = AgentStore.load(identity, path)
            except ConfigStoreError as exc:
                self._unusable[identity] = str(exc)
                problems.append(f"{exc}; the store of {identity!r} is unavailable")
                continue
            problems.extend(found)
            if len(store):
                self._stores[identity] = store
        return problems

    # -- reading ---------------------------------------------------------------------------------
    def identities(self) -> list[str]:
        """Identities that have at least one configuration, sorted."""
        return sorted(i for i, s in self._stores.items() if len(s))

    def names(self, identity: str) -> list[str]:
        """The configuration names of ``identity`` (``[]`` when it has none)."""
        store = self._existing(identity)
        return store.names() if store is not None else []

    def record(self, identity: str, name: str) -> ConfigRecord:
        """One configuration; :class:`ConfigNotFoundError` when there is none of that name."""
        name = normalize_name(name)
        store = self._existing(identity)
        if store is None:
            raise ConfigNotFoundError(f"no configuration {name!r} for {identity!r}")
        return store.get(name)

    def snapshot(self, identity: str) -> dict[str, Any]:
        """``{name: parsed value}`` as ``config.initial_update`` sends it, ``config`` first."""
        store = self._stores.get(identity)
        return {r.name: r.parsed for r in store.records()} if store is not None else {}

    def assembled(self, identity: str) -> dict[str, Any]:
        """``{name: value}`` with every ``config://`` reference resolved, ``config`` first."""
        store = self._existing(identity)
        if store is None:
            return {}
        parsed = store.parsed()
        return {r.name: resolve(r.key, parsed) for r in store.records()}

    def _existing(self, identity: str) -> AgentStore | None:
        self._check_identity(identity)
        return self._stores.get(identity)

    def _check_identity(self, identity: Any) -> None:
        try:
            check_agent_identity(identity)
        except IdentityError as exc:
            raise InvalidConfigError(f"cannot have a configuration store: {exc}") from None
        reason = self._unusable.get(identity)
        if reason is not None:
            raise ConfigStoreError(f"the configuration store of {identity!r} is unavailable: {reason}")

    # -- changing --------------------------------------------------------------------------------
    def store(self, identity: str, name: str, data: Any, config_type: str = "raw", *,
              trigger_callback: bool = True, send_update: bool = True) -> AsyncResult | None:
        """Store one configuration; returns its push (None when ``send_update`` is false)."""
        pushes = self.store_many(identity, [(name, data, config_type)], trigger_callback=trigger_callback,
                                 send_update=send_update)
        return pushes[0] if pushes else None

    def store_many(self, identity: str, items: Iterable[tuple[str, Any, str]], *,
                   trigger_callback: bool = True, send_update: bool = True) -> list[AsyncResult]:
        """Store several configurations ``(name, raw text, type)`` at once (one file write).

        All are checked before anything is written: one bad item stores none. Agents are told in
        an order where a configuration comes after those it refers to.
        """
        self._check_identity(identity)
        records = self._prepare(list(items))
        with self._lock(identity):
            store = self._stores.get(identity) or AgentStore(identity, store_path(self.directory, identity))
            actions = self._run_io(store.put, records)
            self._stores[identity] = store
            for record, action in actions:
                _log.debug("%s configuration %r of %r (%s)", action.lower(), record.name, identity,
                           record.type)
            if not send_update or self.pusher is None:
                return []
            by_key = {record.key: (record, action) for record, action in actions}
            order = dependency_order([record.key for record, _ in actions], store.graph())
            return [self.pusher.push(identity, UPDATE, by_key[key][1], by_key[key][0].name,
                                     contents=by_key[key][0].parsed, trigger_callback=trigger_callback)
                    for key in order]

    def _prepare(self, items: list[tuple[str, Any, str]]) -> list[ConfigRecord]:
        if not items:
            raise InvalidConfigError("no configurations to store")
        if len(items) > MAX_BATCH:
            raise InvalidConfigError(f"at most {MAX_BATCH} configurations can be stored at once")
        records: dict[str, ConfigRecord] = {}
        for name, data, config_type in items:
            name = normalize_name(name)
            record = ConfigRecord.create(name, data, check_type(config_type))
            if record.key in records:
                raise InvalidConfigError(f"configuration {name!r} is given twice "
                                         f"(names are case-insensitive: {records[record.key].name!r})")
            records[record.key] = record
        return list(records.values())

    def delete(self, identity: str, name: str, *, trigger_callback: bool = True,
               send_update: bool = True) -> AsyncResult | None:
        """Delete one configuration; :class:`ConfigNotFoundError` when there is none of that name."""
        name = normalize_name(name)
        self._check_identity(identity)
        with self._lock(identity):
            store = self._stores.get(identity)
            if store is None or name not in store:
                raise ConfigNotFoundError(f"no configuration {name!r} for {identity!r}")
            record = self._run_io(store.delete, name)
            if not len(store):
                self._stores.pop(identity, None)
            _log.debug("deleted configuration %r of %r", record.name, identity)
            if not send_update or self.pusher is None:
                return None
            return self.pusher.push(identity, UPDATE, "DELETE", record.name,
                                    trigger_callback=trigger_callback)

    def delete_store(self, identity: str) -> AsyncResult | None:
        """Delete every configuration of ``identity`` (nothing happens when it has none)."""
        self._check_identity(identity)
        with self._lock(identity):
            store = self._stores.get(identity)
            if store is None:
                return None
            removed = self._run_io(store.clear)
            self._stores.pop(identity, None)
            _log.debug("deleted the %d configuration(s) of %r", len(removed), identity)
            if self.pusher is None:
                return None
            return self.pusher.push(identity, UPDATE, "DELETE_ALL", None, trigger_callback=True)

    def send_initial(self, identity: str, *, only_if_connected: bool = False) -> AsyncResult | None:
        """Queue ``config.initial_update`` with everything ``identity`` has, made when it is sent."""
        if self.pusher is None:
            return None
        return self.pusher.push_built(identity, INITIAL_UPDATE, lambda: ((self.snapshot(identity),), {}),
                                      only_if_connected=only_if_connected)

    def _lock(self, identity: str) -> Semaphore:
        lock = self._locks.get(identity)
        if lock is None:
            lock = self._locks[identity] = Semaphore()
        return lock

    def statistics(self) -> dict[str, Any]:
        """Counts of stores and configurations, unusable stores, and pushes."""
        stats: dict[str, Any] = {
            "stores": len(self._stores),
            "configurations": sum(len(s) for s in self._stores.values()),
            "unavailable": sorted(self._unusable),
        }
        if self.pusher is not None:
            stats["pushes"] = self.pusher.statistics()
        return stats
