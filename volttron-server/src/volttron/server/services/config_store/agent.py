"""``platform.config_store``: the configuration store's RPC interface (docs/protocol.md §2.10, §8.4).

Agents, on their own store (the identity is always the caller's)::

    get_configs() -> {name: parsed}           # and pushes config.initial_update during the call
    set_config(config_name, contents, trigger_callback=False, send_update=True)
    delete_config(config_name, trigger_callback=False, send_update=True)

Administrators, on any store their ``edit_config_store`` capability covers (the capability may be
restricted, ``{"edit_config_store": {"identity": "/listener.*/"}}``)::

    manage_store(identity, config_name, raw_contents, config_type="raw")
    manage_store_configs(identity, configs)   # [{"name", "raw_contents", "config_type"}], all or none
    manage_delete_config(identity, config_name)
    manage_delete_store(identity)
    manage_list_configs(identity) -> [names]
    manage_get(identity, config_name, raw=True) -> raw text, or the parsed value
    manage_get_metadata(identity, config_name) -> {"type", "modified", "data"}
    manage_get_all(identity) -> {name: value with config:// references resolved}
    manage_list_stores() -> [identities]      # those the caller may manage (its own store included)

The 9.x / 2.x forms are served too: ``initialize_configs(identity)``, ``set_config(identity,
config_name, raw_contents, config_type='raw', trigger_callback=True, send_update=True)``,
``delete_config(identity, config_name, trigger_callback=True, send_update=True)`` (told apart from
the 10.x forms by their arguments), and ``delete_store``, ``list_configs``, ``list_stores``,
``get_config``, ``get_metadata``. With one of these an agent may name its own identity freely;
any other identity needs ``edit_config_store``.

Capabilities are checked by ``@RPC.allow`` against the platform's ``auth.json``, read directly
(this service runs in the platform process); with authentication disabled nothing is checked.
Writes are durable before the reply. An agent's own ``set_config``/``delete_config`` waits (briefly)
for the resulting ``config.update`` to reach it, so that its ``vip.config.get`` sees the change as
soon as ``set`` returns; administrators' changes are acknowledged once stored and reach the agent
asynchronously, in order.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from gevent.event import AsyncResult

from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.capabilities import CapabilitySource, check_capabilities
from volttron.server.services.config_store.configs import InvalidConfigError, from_contents
from volttron.server.services.config_store.pusher import UpdatePusher
from volttron.server.services.config_store.store import AgentStores
from volttron.utils.jsonrpc import Unauthorized

_log = logging.getLogger(__name__)

EDIT_CAPABILITY = "edit_config_store"
OWN_PUSH_WAIT = 5.0
"""How long an agent's own set/delete waits for its update to arrive (agents wait 10 s in all)."""


class ConfigStoreAgent(Agent):
    """The ``platform.config_store`` agent; see the module docstring."""

    def __init__(self, store: AgentStores, capabilities: CapabilitySource | None = None,
                 push_timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self._capabilities = capabilities
        if capabilities is not None:
            self.vip.rpc.set_capability_source(capabilities)
        store.pusher = UpdatePusher(self.vip.rpc.call, self._connected, timeout=push_timeout,
                                    clock=self.core.clock)
        self.core.onconnected.connect(self._list_peers, self)

    # -- peers -----------------------------------------------------------------------------------
    def _list_peers(self, sender: Any, **kwargs: Any) -> None:
        self.core.spawn(self._refresh_peers)

    def _refresh_peers(self) -> None:
        try:
            self.vip.peerlist.list().get(timeout=10.0)  # seeds peers_list; add/drop keep it current
        except Exception as exc:  # the list comes again with the add/drop notices
            _log.warning("could not list the platform's peers: %s", exc)

    def _connected(self, identity: str) -> bool:
        return identity in self.vip.peerlist.peers_list

    def _caller(self) -> str:
        message = self.vip.rpc.context.vip_message
        if message is None:
            raise RuntimeError("not called over RPC")
        return message.peer

    # -- an agent's own store --------------------------------------------------------------------
    @RPC.export
    def get_configs(self) -> dict[str, Any]:
        """Every configuration of the caller, parsed; also pushed as ``config.initial_update``."""
        identity = self._caller()
        push = self.store.send_initial(identity)
        if push is not None:
            outcome: Any = push.get()  # bounded by the push timeout
            if outcome.delivered:
                return outcome.sent[0]
        return self.store.snapshot(identity)

    @RPC.export
    def set_config(self, *args: Any, **kwargs: Any) -> None:
        """10.x ``set_config(config_name, contents, trigger_callback=False, send_update=True)``
        or 9.x ``set_config(identity, config_name, raw_contents, config_type='raw', ...)``."""
        if _is_9x_set(args, kwargs):
            self._authorize("set_config", _set_config_9x, args, kwargs)
            call = _bind(_set_config_9x, args, kwargs)
            push = self.store.store(call["identity"], call["config_name"], call["raw_contents"],
                                    call["config_type"], trigger_callback=call["trigger_callback"],
                                    send_update=call["send_update"])
        else:
            call = _bind(_set_config_10x, args, kwargs)
            raw, config_type = from_contents(call["contents"], repr(call["config_name"]))
            push = self.store.store(self._caller(), call["config_name"], raw, config_type,
                                    trigger_callback=call["trigger_callback"],
                                    send_update=call["send_update"])
        self._wait_if_own(push, call)

    @RPC.export
    def delete_config(self, *args: Any, **kwargs: Any) -> None:
        """10.x ``delete_config(config_name, trigger_callback=False, send_update=True)``
        or 9.x ``delete_config(identity, config_name, trigger_callback=True, send_update=True)``."""
        if _is_9x_delete(args, kwargs):
            self._authorize("delete_config", _delete_config_9x, args, kwargs)
            call = _bind(_delete_config_9x, args, kwargs)
            identity = call["identity"]
        else:
            call = _bind(_delete_config_10x, args, kwargs)
            identity = self._caller()
        push = self.store.delete(identity, call["config_name"], trigger_callback=call["trigger_callback"],
                                 send_update=call["send_update"])
        self._wait_if_own(push, {**call, "identity": identity})

    @RPC.export
    def initialize_configs(self, identity: str) -> None:
        """9.x start-up: push ``config.initial_update`` to ``identity`` (normally the caller)."""
        self._authorize("initialize_configs", _initialize_configs_9x, [identity], {})
        push = self.store.send_initial(identity, only_if_connected=identity != self._caller())
        if push is not None:
            push.get()

    def _wait_if_own(self, push: AsyncResult | None, call: Mapping[str, Any]) -> None:
        if push is not None and call.get("identity", self._caller()) == self._caller():
            push.wait(OWN_PUSH_WAIT)

    def _authorize(self, name: str, signature: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> None:
        """For the 9.x forms: another identity than the caller's needs ``edit_config_store``."""
        call = _bind(signature, args, kwargs)
        if call["identity"] == self._caller() or not self.vip.rpc.auth_enabled:
            return
        message = self.vip.rpc.context.vip_message
        check_capabilities(name, signature, list(args), dict(kwargs), {EDIT_CAPABILITY},
                           self._capabilities, message.user if message is not None else "")

    # -- administration --------------------------------------------------------------------------
    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_store(self, identity: str, config_name: str, raw_contents: str,
                     config_type: str = "raw") -> None:
        """Store ``raw_contents`` of ``config_type`` (json, csv or raw) as ``config_name``."""
        self.store.store(identity, config_name, raw_contents, config_type)

    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_store_configs(self, identity: str, configs: list[Mapping[str, Any]]) -> list[str]:
        """Store several configurations in one write, all or none; returns their names.

        Each item is ``{"name": ..., "raw_contents": ..., "config_type": "json|csv|raw"}``
        (``config_type`` defaults to raw).
        """
        if not isinstance(configs, list):
            raise InvalidConfigError("configs must be a list of {name, raw_contents, config_type} objects")
        items = []
        for item in configs:
            if not isinstance(item, Mapping) or "name" not in item or "raw_contents" not in item:
                raise InvalidConfigError(f"each configuration needs a name and raw_contents: {item!r:.80}")
            items.append((item["name"], item["raw_contents"], item.get("config_type", "raw")))
        self.store.store_many(identity, items)
        return [name for name, _, _ in items]

    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_delete_config(self, identity: str, config_name: str) -> None:
        """Delete one configuration."""
        self.store.delete(identity, config_name)

    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_delete_store(self, identity: str) -> None:
        """Delete every configuration of ``identity``."""
        self.store.delete_store(identity)

    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_list_configs(self, identity: str) -> list[str]:
        """The configuration names of ``identity``, sorted."""
        return self.store.names(identity)

    @RPC.export
    def manage_list_stores(self) -> list[str]:
        """The identities with configurations that the caller may manage, sorted."""
        return [i for i in self.store.identities() if self._may_manage(i)]

    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_get(self, identity: str, config_name: str, raw: bool = True) -> Any:
        """The raw text of a configuration, or its parsed value with ``raw=False``."""
        record = self.store.record(identity, config_name)
        return record.data if raw else record.parsed

    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_get_metadata(self, identity: str, config_name: str) -> dict[str, Any]:
        """``{"type", "modified", "data"}`` of a configuration."""
        return self.store.record(identity, config_name).to_file()

    @RPC.export
    @RPC.allow(EDIT_CAPABILITY)
    def manage_get_all(self, identity: str) -> dict[str, Any]:
        """Every configuration of ``identity`` with references resolved, as the agent sees them."""
        return self.store.assembled(identity)

    def _may_manage(self, identity: str) -> bool:
        if not self.vip.rpc.auth_enabled or identity == self._caller():
            return True
        message = self.vip.rpc.context.vip_message
        try:
            check_capabilities("manage_list_configs", self.manage_list_configs, [identity], {},
                               {EDIT_CAPABILITY}, self._capabilities, message.user if message else "")
        except Unauthorized:
            return False
        return True

    # -- 9.x names of the administration methods ------------------------------------------------
    @RPC.export("delete_store")
    @RPC.allow(EDIT_CAPABILITY)
    def delete_store_9x(self, identity: str) -> None:
        """9.x name of :meth:`manage_delete_store`."""
        self.manage_delete_store(identity)

    @RPC.export("list_configs")
    @RPC.allow(EDIT_CAPABILITY)
    def list_configs_9x(self, identity: str) -> list[str]:
        """9.x name of :meth:`manage_list_configs`."""
        return self.manage_list_configs(identity)

    @RPC.export("list_stores")
    def list_stores_9x(self) -> list[str]:
        """9.x name of :meth:`manage_list_stores`."""
        return self.manage_list_stores()

    @RPC.export("get_config")
    @RPC.allow(EDIT_CAPABILITY)
    def get_config_9x(self, identity: str, config_name: str, raw: bool = True) -> Any:
        """9.x name of :meth:`manage_get`."""
        return self.manage_get(identity, config_name, raw)

    @RPC.export("get_metadata")
    @RPC.allow(EDIT_CAPABILITY)
    def get_metadata_9x(self, identity: str, config_name: str) -> dict[str, Any]:
        """9.x name of :meth:`manage_get_metadata`."""
        return self.manage_get_metadata(identity, config_name)

    def statistics(self) -> dict[str, Any]:
        """The store's counts and the connection's."""
        return {"store": self.store.statistics(), "core": self.core.statistics()}


# -- the two generations' signatures, for binding and for capability checks ------------------------

def _set_config_10x(config_name: str, contents: Any, trigger_callback: bool = False,
                    send_update: bool = True) -> None: ...


def _set_config_9x(identity: str, config_name: str, raw_contents: str, config_type: str = "raw",
                   trigger_callback: bool = True, send_update: bool = True) -> None: ...


def _delete_config_10x(config_name: str, trigger_callback: bool = False,
                       send_update: bool = True) -> None: ...


def _delete_config_9x(identity: str, config_name: str, trigger_callback: bool = True,
                      send_update: bool = True) -> None: ...


def _initialize_configs_9x(identity: str) -> None: ...


def _is_9x_set(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    # 10.x's third positional argument is the boolean trigger_callback; 9.x's is the raw text
    return bool({"identity", "raw_contents", "config_type"} & set(kwargs)) or (
        len(args) >= 3 and isinstance(args[2], str))


def _is_9x_delete(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    # 10.x's second positional argument is the boolean trigger_callback; 9.x's is the name
    return "identity" in kwargs or (len(args) >= 2 and isinstance(args[1], str)) or (
        len(args) == 1 and "config_name" in kwargs)


def _bind(signature: Callable[..., Any], args: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        bound = inspect.signature(signature).bind(*args, **kwargs)
    except TypeError as exc:
        name = signature.__name__.lstrip("_").rsplit("_", 1)[0]
        raise InvalidConfigError(f"{name}: {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)
