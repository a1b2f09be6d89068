"""Platform peers that live in the test process, on a memory router.

:class:`RpcPeer` is a JSON-RPC peer: it answers the requests routed to it from a table of methods
(a value, a callable computing it, or an exception to raise remotely), and can call other peers
itself; it answers pings. :class:`MemoryConfigStore` is the platform's configuration store
(``platform.config_store``) built on it: it answers an agent's ``get_configs``, ``set_config`` and
``delete_config`` (the 10.x API, see ``docs/developer-guide.md``) and pushes changes with
``config.update`` as the platform does, so the agent's real ``vip.config`` subsystem runs against
it. :class:`MemoryAuthService` is ``platform.auth`` as far as an agent asks it: the capability table.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

from volttron.client.known_identities import AUTH, CONFIGURATION_STORE
from volttron.client.messagebus.base import Message
from volttron.client.testing.memory_bus import MemoryRouter
from volttron.client.vip.agent.errors import VIPError
from volttron.client.vip.agent.results import AsyncResult
from volttron.utils import jsonrpc
from volttron.utils.errors import FrameError
from volttron.utils.jsonrpc import METHOD_NOT_FOUND, exception_to_json, json_error, json_method, json_result

_MISSING = object()
Waiter = Callable[[AsyncResult], Any]


class RpcPeer:
    """A JSON-RPC peer named ``identity`` on ``router``; see the module docstring."""

    _ids = itertools.count(1)

    def __init__(self, router: MemoryRouter, identity: str, methods: Mapping[str, Any] | None = None) -> None:
        self.router = router
        self.identity = identity
        self.methods: dict[str, Any] = dict(methods or {})
        self._pending: dict[str, AsyncResult] = {}
        router.add_service(identity, self.handle)

    def close(self) -> None:
        """Leave the router (the agent sees the peer dropped)."""
        self.router.remove_service(self.identity)

    # ----- calling others

    def call(self, peer: str, method: str, *args: Any, **kwargs: Any) -> AsyncResult:
        """Call ``method`` on ``peer``; the result resolves when the answer is routed back."""
        ident = f"{self.identity}.{next(self._ids)}"
        result = AsyncResult(description=f"RPC {method!r} on {peer!r} from {self.identity!r}")
        self._pending[ident] = result
        text = json.dumps(json_method(ident, method, list(args), dict(kwargs)))
        self.router.send_as(self.identity, Message(peer, "RPC", [text.encode("ascii")], ident, self.identity))
        return result

    # ----- being called

    def handle(self, message: Message) -> None:
        """A message routed to this peer (``message.peer`` is the sender)."""
        if message.subsystem == "error":
            result = self._pending.pop(message.id, None)
            if result is not None and len(message.args) >= 4:
                result.set_exception(
                    VIPError.from_errno(
                        int(message.args[0]), message.text(1), message.text(2), message.text(3)
                    )
                )
            return
        if message.subsystem == "ping" and message.args[:1] == [b"ping"]:
            pong = Message(message.peer, "ping", [b"pong", *message.args[1:]], message.id, self.identity)
            self.router.send_as(self.identity, pong)
            return
        if message.subsystem != "RPC":
            return
        answers = []
        for frame in message.args:
            obj = json.loads(frame)
            for item in obj if isinstance(obj, list) else [obj]:
                if isinstance(item, dict) and "method" not in item:
                    self._resolve(item)
                else:
                    answer = self._answer(item, message.peer)
                    if answer is not None:
                        answers.append(answer)
        if answers:
            frames = [a.encode("ascii") for a in answers]
            reply = Message(message.peer, "RPC", frames, message.id, self.identity)
            self.router.send_as(self.identity, reply)

    def _resolve(self, answer: dict[str, Any]) -> None:
        result = self._pending.pop(str(answer.get("id")), None)
        if result is None:
            return
        response = jsonrpc.parse_response(answer)
        if response.error is not None:
            result.set_exception(response.error)
        else:
            result.set(response.result)

    def _answer(self, obj: Any, caller: str) -> str | None:
        request = jsonrpc.parse_request(obj)
        handler = self.methods.get(request.method, _MISSING)
        if handler is _MISSING:
            handler = getattr(self, "rpc_" + request.method.replace(".", "_"), _MISSING)
        if handler is _MISSING:
            response = json_error(
                request.ident, METHOD_NOT_FOUND, "unimplemented method",
                detail=f"method '{request.method}' is not implemented",
            )
        else:
            try:
                if isinstance(handler, BaseException):
                    raise handler
                value = handler(*request.args, **request.kwargs) if callable(handler) else handler
                response = json_result(request.ident, value)
            except Exception as exc:  # the caller gets what the wire would carry
                response = exception_to_json(request.ident, exc)
        if request.is_notification:
            return None
        try:
            return json.dumps(response)
        except (TypeError, ValueError) as exc:
            error = json_error(request.ident, jsonrpc.INTERNAL_ERROR, "internal error", detail=str(exc))
            return json.dumps(error)


class MemoryAuthService(RpcPeer):
    """``platform.auth``: the capability table (``{user: {capability: params}}``) agents fetch."""

    def __init__(self, router: MemoryRouter, table: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(router, AUTH)
        self.table: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (table or {}).items()}

    def rpc_get_user_to_capabilities(self) -> dict[str, dict[str, Any]]:
        """The capability table."""
        return copy.deepcopy(self.table)

    def rpc_update_id_rpc_authorizations(self, identity: str, methods: Any) -> dict[str, Any]:
        """An agent reports what its methods require; no overrides."""
        return {}


class MemoryConfigStore(RpcPeer):
    """``platform.config_store`` for agents on a memory router; see the module docstring.

    The test plays the operator: :meth:`set`, :meth:`delete` and :meth:`delete_all` store and push
    ``config.update`` to ``agent`` (waited for with ``waiter``); :attr:`writes` keeps what the agent
    stored itself.
    """

    def __init__(self, router: MemoryRouter, initial: Mapping[str, Any] | None = None) -> None:
        super().__init__(router, CONFIGURATION_STORE)
        self._configs: dict[str, tuple[str, Any]] = {}
        for name, contents in (initial or {}).items():
            self._put(name, contents)
        self.writes: list[tuple[str, Any]] = []
        """``(name, contents)`` the agent stored itself (contents None for a delete), oldest first."""
        self.agent: str | None = None
        """The identity pushed to."""
        self.waiter: Waiter = lambda result: result.get(timeout=10)

    # ----- read by the test

    def get(self, name: str) -> Any:
        """The stored contents of ``name`` (a copy); KeyError when absent."""
        return copy.deepcopy(self._configs[name.lower()][1])

    def names(self) -> list[str]:
        """The stored names (original case), sorted."""
        return sorted(original for original, _ in self._configs.values())

    # ----- the operator's side (vctl config ...)

    def set(self, name: str, contents: Any, trigger_callback: bool = True) -> None:
        """Store ``contents`` as ``name`` and tell the agent (NEW or UPDATE); returns once it answered."""
        action = "UPDATE" if name.lower() in self._configs else "NEW"
        self._put(name, contents)
        self._wait(self._push(action, name, self.get(name), trigger_callback))

    def delete(self, name: str, trigger_callback: bool = True) -> None:
        """Remove ``name`` and tell the agent (DELETE); KeyError when absent."""
        del self._configs[name.lower()]
        self._wait(self._push("DELETE", name, None, trigger_callback))

    def delete_all(self, trigger_callback: bool = True) -> None:
        """Remove every configuration and tell the agent (DELETE_ALL)."""
        self._configs.clear()
        self._wait(self._push("DELETE_ALL", "", None, trigger_callback))

    # ----- the agent's calls (RPC)

    def rpc_get_configs(self) -> dict[str, Any]:
        """Every stored configuration, keyed by its original name."""
        return {original: copy.deepcopy(contents) for original, contents in self._configs.values()}

    def rpc_set_config(
        self, config_name: str, contents: Any, trigger_callback: bool = False, send_update: bool = True
    ) -> None:
        """The agent stores a configuration of its own."""
        action = "UPDATE" if config_name.lower() in self._configs else "NEW"
        self._put(config_name, contents)
        self.writes.append((config_name, self.get(config_name)))
        if send_update:
            self._push(action, config_name, self.get(config_name), trigger_callback)

    def rpc_delete_config(
        self, config_name: str, trigger_callback: bool = False, send_update: bool = True
    ) -> None:
        """The agent deletes one of its configurations."""
        if config_name.lower() not in self._configs:
            raise KeyError(f"no configuration named {config_name!r} in the store")
        del self._configs[config_name.lower()]
        self.writes.append((config_name, None))
        if send_update:
            self._push("DELETE", config_name, None, trigger_callback)

    # ----- internals

    def _put(self, name: str, contents: Any) -> None:
        try:
            parsed = json.loads(json.dumps(contents))
        except (TypeError, ValueError) as exc:
            raise FrameError(f"configuration {name!r} must be JSON serialisable: {exc}") from exc
        self._configs[name.lower()] = (name, parsed)

    def _push(self, action: str, name: str, contents: Any, trigger_callback: bool) -> AsyncResult | None:
        if self.agent is None:
            return None
        return self.call(
            self.agent, "config.update", action, name, contents, trigger_callback=trigger_callback
        )

    def _wait(self, result: AsyncResult | None) -> None:
        if result is None:
            return
        try:
            self.waiter(result)
        except jsonrpc.MethodNotFound:
            pass  # an agent without the store subsystem: stored, nothing to tell
