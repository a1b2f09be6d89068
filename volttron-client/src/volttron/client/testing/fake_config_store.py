"""The platform's configuration store (``platform.config_store``) for a unit-tested agent.

The agent keeps its real ``vip.config`` subsystem; only the service behind it is fake. It answers
the agent's ``get_configs``, ``set_config`` and ``delete_config`` calls (the 10.x API, reference
§2.10) and pushes changes with ``config.update`` as the platform does, so callbacks, defaults,
``config://`` references and name case behave as in production. The test plays the operator::

    harness = AgentHarness(MyAgent, config_store={"config": {"interval": 5}})
    harness.start()                                  # NEW for "config" (and the defaults)
    harness.config_store.set("config", {"interval": 10})   # as `vctl config store`: UPDATE
    harness.config_store.delete("config")                   # DELETE (or UPDATE back to a default)
    assert harness.config_store.writes == [...]      # what the agent itself stored
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from volttron.client.known_identities import CONFIGURATION_STORE
from volttron.utils.errors import FrameError


class FakeConfigStoreService:
    """See the module docstring. ``push`` delivers ``config.update`` calls to the agent."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._configs: dict[str, tuple[str, Any]] = {}
        for name, contents in (initial or {}).items():
            self._put(name, contents)
        self.writes: list[tuple[str, Any]] = []
        """``(name, contents)`` the agent stored itself (contents None for a delete), oldest first."""
        self._push: Callable[..., Any] | None = None

    @property
    def identity(self) -> str:
        """The service's VIP identity."""
        return CONFIGURATION_STORE

    def connect(self, push: Callable[..., Any] | None) -> None:
        """Where to deliver ``config.update`` (the agent's exported method), or None."""
        self._push = push

    def rpc_methods(self) -> dict[str, Callable[..., Any]]:
        """The methods agents call, by name."""
        return {
            "get_configs": self.get_configs,
            "set_config": self.set_config,
            "delete_config": self.delete_config,
        }

    # ----- read by the test

    def get(self, name: str) -> Any:
        """The stored contents of ``name`` (a copy); KeyError when absent."""
        return copy.deepcopy(self._configs[name.lower()][1])

    def names(self) -> list[str]:
        """The stored names (original case), sorted."""
        return sorted(original for original, _ in self._configs.values())

    # ----- the operator's side (vctl config ...)

    def set(self, name: str, contents: Any, trigger_callback: bool = True) -> None:
        """Store ``contents`` as ``name`` and tell the agent (NEW or UPDATE)."""
        action = "UPDATE" if name.lower() in self._configs else "NEW"
        self._put(name, contents)
        self._notify(action, name, self.get(name), trigger_callback)

    def delete(self, name: str, trigger_callback: bool = True) -> None:
        """Remove ``name`` and tell the agent (DELETE); KeyError when absent."""
        del self._configs[name.lower()]
        self._notify("DELETE", name, None, trigger_callback)

    def delete_all(self, trigger_callback: bool = True) -> None:
        """Remove every configuration and tell the agent (DELETE_ALL)."""
        self._configs.clear()
        self._notify("DELETE_ALL", "", None, trigger_callback)

    # ----- the agent's calls (RPC)

    def get_configs(self) -> dict[str, Any]:
        """Every stored configuration, keyed by its original name."""
        return {original: copy.deepcopy(contents) for original, contents in self._configs.values()}

    def set_config(
        self, config_name: str, contents: Any, trigger_callback: bool = False, send_update: bool = True
    ) -> None:
        """The agent stores a configuration of its own."""
        action = "UPDATE" if config_name.lower() in self._configs else "NEW"
        self._put(config_name, contents)
        self.writes.append((config_name, self.get(config_name)))
        if send_update:
            self._notify(action, config_name, self.get(config_name), trigger_callback)

    def delete_config(
        self, config_name: str, trigger_callback: bool = False, send_update: bool = True
    ) -> None:
        """The agent deletes one of its configurations."""
        if config_name.lower() not in self._configs:
            raise KeyError(f"no configuration named {config_name!r} in the store")
        del self._configs[config_name.lower()]
        self.writes.append((config_name, None))
        if send_update:
            self._notify("DELETE", config_name, None, trigger_callback)

    # ----- internals

    def _put(self, name: str, contents: Any) -> None:
        try:
            parsed = json.loads(json.dumps(contents))
        except (TypeError, ValueError) as exc:
            raise FrameError(f"configuration {name!r} must be JSON serialisable: {exc}") from exc
        self._configs[name.lower()] = (name, parsed)

    def _notify(self, action: str, name: str, contents: Any, trigger_callback: bool) -> None:
        if self._push is not None:
            self._push(action, name, contents, trigger_callback=trigger_callback)
