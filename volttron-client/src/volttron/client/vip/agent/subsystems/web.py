"""The ``web`` subsystem: routes served by the platform's web service (reference §2.12).

Enabled with ``Agent(enable_web=True)``. Registration calls go to ``platform.web``; the service
calls back ``route.callback`` (HTTP requests) and ``client.opened`` / ``client.closed`` /
``client.message`` (websockets). Routes are unregistered when the agent stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from volttron.client.known_identities import PLATFORM_WEB
from volttron.client.vip.agent.subsystems.base import SubsystemBase

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core
    from volttron.client.vip.agent.subsystems.rpc import RPC

_log = logging.getLogger(__name__)

WEB_TIMEOUT = 10.0


class WebSubSystem(SubsystemBase):
    """Register HTTP endpoints, static paths and websockets with the platform's web service."""

    def __init__(self, core: Core, owner: Any, rpc: RPC) -> None:
        super().__init__(core)
        self.owner = owner
        self._rpc = rpc
        self._endpoints: dict[str, Callable[..., Any]] = {}
        self._websockets: dict[str, tuple[Any, Any, Any]] = {}
        self._registered = False
        rpc.export(self._route_callback, "route.callback")
        rpc.export(self._opened, "client.opened")
        rpc.export(self._closed, "client.closed")
        rpc.export(self._message, "client.message")

    def _call(self, method: str, *args: Any) -> Any:
        result = self._rpc.call(PLATFORM_WEB, method, *args).get(timeout=WEB_TIMEOUT)
        self._registered = True
        return result

    def register_endpoint(
        self, endpoint: str, callback: Callable[[dict, Any], Any], res_type: str = "jsonrpc"
    ) -> None:
        """Serve ``endpoint``: ``callback(env, data)`` answers (``res_type`` 'jsonrpc' or 'raw')."""
        self._call("register_endpoint", endpoint, res_type)
        self._endpoints[endpoint] = callback

    def register_path(self, prefix: str, static_path: str) -> None:
        """Serve the files under ``static_path`` at URL ``prefix``."""
        self._call("register_path_route", prefix, static_path)

    def register_websocket(
        self,
        endpoint: str,
        opened: Callable[..., Any] | None = None,
        closed: Callable[..., Any] | None = None,
        received: Callable[..., Any] | None = None,
    ) -> None:
        """Serve a websocket at ``endpoint`` with optional opened/closed/received callbacks."""
        self._call("register_websocket", endpoint)
        self._websockets[endpoint] = (opened, closed, received)

    def unregister_websocket(self, endpoint: str) -> None:
        """Stop serving the websocket at ``endpoint``."""
        self._rpc.call(PLATFORM_WEB, "unregister_websocket", endpoint).get(timeout=WEB_TIMEOUT)
        self._websockets.pop(endpoint, None)

    def send(self, endpoint: str, message: Any = "") -> None:
        """Send ``message`` to the clients of websocket ``endpoint``."""
        self._rpc.notify(PLATFORM_WEB, "websocket_send", endpoint, message)

    def get_user_claims(self, bearer: str) -> Any:
        """The claims of a bearer token, as the web service decodes them."""
        return self._rpc.call(PLATFORM_WEB, "get_user_claims", bearer).get(timeout=WEB_TIMEOUT)

    def on_stop(self) -> None:
        if not self._registered:
            return
        try:
            self._rpc.call(PLATFORM_WEB, "unregister_all_agent_routes").get(timeout=WEB_TIMEOUT)
        except Exception as exc:  # the web service may be gone already
            _log.debug("web routes not unregistered: %s", exc)

    def _route_callback(self, env: dict[str, Any], data: Any) -> Any:
        path = env.get("PATH_INFO", "") if isinstance(env, dict) else ""
        for endpoint in sorted(self._endpoints, key=len, reverse=True):
            if path.startswith(endpoint):
                return self._endpoints[endpoint](env, data)
        raise LookupError(f"no endpoint registered for {path!r}")

    def _opened(self, fromip: str, endpoint: str) -> Any:
        callback = self._websockets.get(endpoint, (None, None, None))[0]
        return callback(fromip, endpoint) if callback else True

    def _closed(self, endpoint: str) -> None:
        callback = self._websockets.get(endpoint, (None, None, None))[1]
        if callback:
            callback(endpoint)

    def _message(self, endpoint: str, message: Any) -> None:
        callback = self._websockets.get(endpoint, (None, None, None))[2]
        if callback:
            callback(endpoint, message)
