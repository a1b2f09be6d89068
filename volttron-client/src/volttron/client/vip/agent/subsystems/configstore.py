"""The ``config`` subsystem: the agent's side of the configuration store (docs/protocol.md §2.10).

::

    self.vip.config.set_default('config', {'interval': 5})        # in __init__ / onsetup
    self.vip.config.subscribe(self.configure, actions=['NEW', 'UPDATE'], pattern='config')
    def configure(self, config_name, action, contents): ...

Right after the first welcome the agent asks ``platform.config_store`` for its configurations
(``get_configs``, the 10.x call; the store may instead push them with ``config.initial_update``
during that call) and fires ``NEW`` for every stored and default configuration, ``config``
first. Later changes arrive as ``config.update``. If the store service is not running the agent
still starts: it logs, uses its defaults, and applies updates once the store pushes them.

Names are case-insensitive (callbacks get the original case). A string ``config://<name>`` inside
a configuration is replaced by that configuration's contents when it is delivered.
"""

from __future__ import annotations

import builtins
import copy
import fnmatch
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import gevent.local
from gevent.event import Event
from gevent.lock import Semaphore

from volttron.client.known_identities import CONFIGURATION_STORE
from volttron.client.vip.agent.callbacks import ConfigCallback
from volttron.client.vip.agent.errors import Unreachable
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.utils.jsonrpc import MethodNotFound

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core
    from volttron.client.vip.agent.subsystems.rpc import RPC

_log = logging.getLogger(__name__)

VALID_ACTIONS = ("NEW", "UPDATE", "DELETE")
CONFIG_LINK_PREFIX = "config://"
SYNC_CAPABILITY = "sync_agent_config"
STORE_TIMEOUT = 10.0
INITIAL_CALLBACKS_WAIT = 60.0
"""Longest a change waits for the first callbacks (``NEW`` for every configuration) to finish."""


class ConfigStore(SubsystemBase):
    """Stored and default configurations, and callbacks on their changes."""

    def __init__(self, core: Core, owner: Any, rpc: RPC, auth_enabled: bool = True) -> None:
        super().__init__(core)
        self.owner = owner
        self._rpc = rpc
        self._store: dict[str, Any] = {}
        self._defaults: dict[str, Any] = {}
        self._names: dict[str, str] = {}
        self._default_names: dict[str, str] = {}
        self._refs: dict[str, set[str]] = {}
        self._subscriptions: dict[str, dict[str, list[ConfigCallback]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._initialized = False
        self._initial_callbacks_done = False
        self._initial_done = Event()
        self._init_lock = Semaphore()
        self._in_callback = gevent.local.local()
        rpc.export(self._update_config, "config.update")
        rpc.export(self._initial_update, "config.initial_update")
        if auth_enabled:
            rpc.allow("config.update", SYNC_CAPABILITY)
            rpc.allow("config.initial_update", SYNC_CAPABILITY)
        core.configuration.connect(self._on_configuration, self)

    # ------------------------------------------------------------------ start-up

    def _on_configuration(self, sender: Any, **kwargs: Any) -> None:
        self._initialize()
        affected = {name: "NEW" for name in self._all_names()}
        self._process_callbacks(affected)
        self._initial_callbacks_done = True
        self._initial_done.set()

    def _initialize(self) -> None:
        with self._init_lock:
            if self._initialized:
                return
            configs = None
            try:
                configs = self._rpc.call(CONFIGURATION_STORE, "get_configs").get(timeout=STORE_TIMEOUT)
            except MethodNotFound:
                try:  # a 9.x-style store: it pushes config.initial_update during the call
                    self._rpc.call(CONFIGURATION_STORE, "initialize_configs", self.core.identity).get(
                        timeout=STORE_TIMEOUT
                    )
                except Exception as exc:  # the store is optional: defaults still apply
                    _log.warning("configuration store %s failed: %s", CONFIGURATION_STORE, exc)
            except Unreachable:
                _log.info(
                    "no configuration store (%s) on this platform; using default configurations",
                    CONFIGURATION_STORE,
                )
            except Exception as exc:  # the store is optional: defaults still apply
                _log.warning("could not get configurations from %s: %s", CONFIGURATION_STORE, exc)
            if not self._initialized and isinstance(configs, dict):
                self._initial_update(configs)
            self._initialized = True

    def _initial_update(self, configs: dict[str, Any], reset_name_map: bool = True) -> None:
        """RPC ``config.initial_update``: every stored configuration, parsed, keyed by name."""
        self._store = {str(name).lower(): contents for name, contents in configs.items()}
        if reset_name_map:
            self._names = {str(name).lower(): str(name) for name in configs}
        self._rebuild_refs()
        self._initialized = True

    # ------------------------------------------------------------------ reading

    def get(self, config_name: str = "config") -> Any:
        """The contents of ``config_name`` with ``config://`` references resolved (a copy)."""
        if not self._initialized:
            self._initialize()
        return self._gather(config_name.lower())

    def list(self) -> list[str]:
        """The names of the stored and default configurations, sorted."""
        if not self._initialized:
            self._initialize()
        names = dict(self._default_names)
        names.update(self._names)
        return sorted(names[key] for key in self._all_names())

    def _all_names(self) -> builtins.list[str]:
        return list(dict.fromkeys([*self._store, *self._defaults]))

    def _raw(self, name: str) -> Any:
        if name in self._store:
            return self._store[name]
        if name in self._defaults:
            return self._defaults[name]
        raise KeyError(f"{name} not in store")

    def _gather(self, name: str, seen: dict[str, Any] | None = None) -> Any:
        seen = {} if seen is None else seen
        if name in seen:
            return seen[name]
        contents = copy.deepcopy(self._raw(name))
        seen[name] = contents
        resolved = self._resolve_links(contents, seen)
        seen[name] = resolved
        return resolved

    def _resolve_links(self, value: Any, seen: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                value[key] = self._resolve_links(item, seen)
            return value
        if isinstance(value, list):
            return [self._resolve_links(item, seen) for item in value]
        if isinstance(value, str) and value.lower().startswith(CONFIG_LINK_PREFIX):
            target = value[len(CONFIG_LINK_PREFIX) :].lower()
            try:
                return self._gather(target, seen)
            except KeyError:
                return value  # a dangling reference stays as written
        return value

    # ------------------------------------------------------------------ writing

    def set(
        self, config_name: str, contents: Any, trigger_callback: bool = False, send_update: bool = True
    ) -> None:
        """Store ``contents`` as ``config_name`` in the platform's store (not from a callback)."""
        self._check_not_in_callback()
        self._rpc.call(
            CONFIGURATION_STORE,
            "set_config",
            config_name,
            contents,
            trigger_callback=trigger_callback,
            send_update=send_update,
        ).get(timeout=STORE_TIMEOUT)

    def delete(self, config_name: str, trigger_callback: bool = False, send_update: bool = True) -> None:
        """Delete ``config_name`` from the platform's store (not from a callback)."""
        self._check_not_in_callback()
        self._rpc.call(
            CONFIGURATION_STORE,
            "delete_config",
            config_name,
            trigger_callback=trigger_callback,
            send_update=send_update,
        ).get(timeout=STORE_TIMEOUT)

    def set_default(self, config_name: str, contents: Any) -> None:
        """A configuration used when the store has none of that name; only before start-up."""
        if self._initialized:
            raise RuntimeError("default configurations can be set only before the agent starts (onsetup)")
        key = config_name.lower()
        self._defaults[key] = contents
        self._default_names[key] = config_name

    def delete_default(self, config_name: str) -> None:
        """Remove a default configuration; only before start-up."""
        if self._initialized:
            raise RuntimeError("default configurations can be changed only before the agent starts (onsetup)")
        key = config_name.lower()
        self._defaults.pop(key, None)
        self._default_names.pop(key, None)

    def _check_not_in_callback(self) -> None:
        if getattr(self._in_callback, "active", False):
            raise RuntimeError("cannot change the configuration store from a configuration callback")

    # ------------------------------------------------------------------ callbacks

    def subscribe(
        self, callback: ConfigCallback, actions: str | Iterable[str] = VALID_ACTIONS, pattern: str = "*"
    ) -> None:
        """Call ``callback(config_name, action, contents)`` for ``actions`` on names matching ``pattern``."""
        chosen = [actions] if isinstance(actions, str) else list(actions)
        for action in chosen:
            if action not in VALID_ACTIONS:
                raise ValueError(
                    f"invalid configuration action {action!r}; one of {', '.join(VALID_ACTIONS)}"
                )
            self._subscriptions[pattern.lower()][action].append(callback)

    def unsubscribe_all(self) -> None:
        """Remove every callback."""
        self._subscriptions.clear()

    def _update_config(
        self, action: str, config_name: str, contents: Any = None, trigger_callback: bool = False
    ) -> None:
        """RPC ``config.update`` from the store: NEW, UPDATE, DELETE or DELETE_ALL."""
        if not self._initialized:
            return  # the initial fetch will see the change
        if trigger_callback and not self._initial_callbacks_done:
            # the first callbacks are still running: apply the change after them, or its callback
            # would be lost (the store sends the next change only when this one is answered)
            self._initial_done.wait(INITIAL_CALLBACKS_WAIT)
        affected: dict[str, str] = {}
        key = config_name.lower() if config_name else ""
        if action in ("NEW", "UPDATE"):
            self._store[key] = contents
            self._names[key] = config_name
            affected[key] = "UPDATE" if key in self._defaults else action
            self._gather_affected(key, affected)
        elif action == "DELETE":
            if key in self._store:
                del self._store[key]
                affected[key] = "UPDATE" if key in self._defaults else "DELETE"
                self._gather_affected(key, affected)
        elif action == "DELETE_ALL":
            for name in self._store:
                affected[name] = "DELETE"
            for name in self._defaults:
                affected[name] = "UPDATE"
            self._store = {}
        else:
            raise ValueError(f"unknown configuration action {action!r}")
        self._rebuild_refs()
        if trigger_callback and self._initial_callbacks_done:
            self._process_callbacks(affected)
        if action == "DELETE" and key not in self._store:
            self._names.pop(key, None)
        elif action == "DELETE_ALL":
            self._names.clear()

    def _rebuild_refs(self) -> None:
        refs: dict[str, set[str]] = defaultdict(set)
        for name in self._all_names():
            for target in _links(self._raw(name)):
                refs[target].add(name)
        self._refs = refs

    def _gather_affected(self, name: str, affected: dict[str, str]) -> None:
        for referrer in self._refs.get(name, ()):
            if referrer not in affected:
                affected[referrer] = "UPDATE"
                self._gather_affected(referrer, affected)

    def _process_callbacks(self, affected: dict[str, str]) -> None:
        order = sorted(affected, key=lambda name: name != "config")  # "config" first
        names = dict(self._default_names)
        names.update(self._names)
        self._in_callback.active = True
        try:
            for name in order:
                action = affected[name]
                callbacks: list[ConfigCallback] = []
                for pattern, by_action in self._subscriptions.items():
                    if fnmatch.fnmatchcase(name, pattern):
                        callbacks.extend(cb for cb in by_action.get(action, ()) if cb not in callbacks)
                for callback in callbacks:
                    try:
                        contents = None if action == "DELETE" else self._gather(name)
                        callback(names.get(name, name), action, contents)
                    except Exception:
                        _log.exception("configuration callback %r failed for %r", callback, name)
        finally:
            self._in_callback.active = False


def _links(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= _links(item)
    elif isinstance(value, list):
        for item in value:
            found |= _links(item)
    elif isinstance(value, str) and value.lower().startswith(CONFIG_LINK_PREFIX):
        found.add(value[len(CONFIG_LINK_PREFIX) :].lower())
    return found
