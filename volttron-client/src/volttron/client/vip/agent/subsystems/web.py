"""The ``web`` subsystem: routes served by the platform's web service (docs/protocol.md §2.12).

Enabled with ``Agent(enable_web=True)``; the platform must run with ``--bind-web-address``.
Registration calls go to ``platform.web``::

    self.vip.web.register_endpoint("/myagent/status", self.status)          # JSON answer
    self.vip.web.register_endpoint("/myagent/raw", self.raw, res_type="raw")
    self.vip.web.register_path_route(r"^/myagent/", "/abs/path/webroot")    # static files

An endpoint's callback gets ``(env, data)``: ``env`` holds the request's ``PATH_INFO``,
``REQUEST_METHOD``, ``QUERY_STRING``, ``CONTENT_TYPE``, ``HTTP_AUTHORIZATION`` and a few more;
``data`` is the body (parsed when it is JSON). A ``jsonrpc`` endpoint returns any JSON value
(or ``[status, text, [[header, value], ...]]``); a ``raw`` one returns ``[status, base64 body,
headers]``. A path route serves ``webroot`` joined with the **whole** URL path, as in the
original (``/myagent/index.html`` comes from ``/abs/path/webroot/myagent/index.html``).

What the platform's web service allows (docs/web.md): a path route's pattern is a URL prefix
(``^/myagent/`` or ``^/myagent/.*``; other regular-expression features are refused); its folder
must lie below the agent's own directory (``$VOLTTRON_HOME/agents/<identity>/``, e.g. its
``data/``) or its installed package, and registering one needs the capability
``web.serve_path``. A URL belongs to the first agent that registers it, also while that agent
restarts: another agent's overlapping route or endpoint is refused with a ``RemoteError``.
``get_user_claims(bearer)`` checks a web user's token for endpoints that need a login.

The service calls back ``route.callback`` (HTTP requests) and ``client.opened`` /
``client.closed`` / ``client.message`` (websockets; the platform's web service of this version
offers none). Routes are registered again after the agent reconnects to a restarted platform,
and unregistered when the agent stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from volttron.client.known_identities import PLATFORM_WEB
from volttron.client.vip.agent.errors import Unreachable
from volttron.client.vip.agent.subsystems.base import SubsystemBase

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core
    from volttron.client.vip.agent.subsystems.rpc import RPC

_log = logging.getLogger(__name__)

WEB_TIMEOUT = 10.0
REREGISTER_ATTEMPTS = 8
REREGISTER_INTERVAL = 0.5


class WebSubSystem(SubsystemBase):
    """Register HTTP endpoints, static paths and websockets with the platform's web service."""

    def __init__(self, core: Core, owner: Any, rpc: RPC) -> None:
        super().__init__(core)
        self.owner = owner
        self._rpc = rpc
        self._endpoints: dict[str, Callable[..., Any]] = {}
        self._res_types: dict[str, str] = {}
        self._paths: dict[str, str] = {}
        self._websockets: dict[str, tuple[Any, Any, Any]] = {}
        self._registered = False
        self._connections = 0
        rpc.export(self._route_callback, "route.callback")
        rpc.export(self._opened, "client.opened")
        rpc.export(self._closed, "client.closed")
        rpc.export(self._message, "client.message")

    def _call(self, method: str, *args: Any) -> Any:
        result = self._rpc.call(PLATFORM_WEB, method, *args).get(timeout=WEB_TIMEOUT)
        self._registered = True
        return result

    def register_endpoint(
        self, endpoint: str, callback: Callable[[dict[str, Any], Any], Any], res_type: str = "jsonrpc"
    ) -> None:
        """Serve ``endpoint``: ``callback(env, data)`` answers (``res_type`` 'jsonrpc' or 'raw')."""
        self._call("register_endpoint", endpoint, res_type)
        self._endpoints[endpoint] = callback
        self._res_types[endpoint] = res_type

    def register_path(self, prefix: str, static_path: str) -> None:
        """Serve files of folder ``static_path`` for URL paths starting with ``prefix`` (``^/myagent/``)."""
        self._call("register_path_route", prefix, static_path)
        self._paths[prefix] = static_path

    register_path_route = register_path

    def unregister_all_routes(self) -> None:
        """Stop serving every endpoint and path route of this agent."""
        self._rpc.call(PLATFORM_WEB, "unregister_all_agent_routes").get(timeout=WEB_TIMEOUT)
        self._endpoints.clear()
        self._res_types.clear()
        self._paths.clear()

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

    def on_connected(self) -> None:
        self._connections += 1
        if self._connections > 1 and (self._res_types or self._paths):
            self.core.spawn(self._register_again)

    def _register_again(self) -> None:
        """A restarted platform forgot our routes: send them again (its web service may start late)."""
        for attempt in range(REREGISTER_ATTEMPTS):
            try:
                for endpoint, res_type in list(self._res_types.items()):
                    self._call("register_endpoint", endpoint, res_type)
                for prefix, static_path in list(self._paths.items()):
                    self._call("register_path_route", prefix, static_path)
                return
            except Unreachable:
                gevent.sleep(REREGISTER_INTERVAL * (attempt + 1))
            except Exception as exc:  # refused: nothing to gain by retrying
                _log.warning("web routes not registered again after reconnecting: %s", exc)
                return
        _log.warning("web routes not registered again: %s did not come back", PLATFORM_WEB)

    def on_stop(self) -> None:
        if not self._registered:
            return
        try:
            self._rpc.call(PLATFORM_WEB, "unregister_all_agent_routes").get(timeout=WEB_TIMEOUT)
        except Exception as exc:  # the web service may be gone already
            _log.debug("web routes not unregistered: %s", exc)

    def _route_callback(self, env: dict[str, Any], data: Any) -> Any:
        path = env.get("PATH_INFO", "") if isinstance(env, dict) else ""
        if path in self._endpoints:
            return self._endpoints[path](env, data)
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
