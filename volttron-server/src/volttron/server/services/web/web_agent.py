"""``platform.web``: the web service's agent on the VIP bus (docs/protocol.md §2.12).

Agents register routes with it over RPC (the caller's identity owns the route):

* ``register_endpoint(endpoint, res_type="jsonrpc")`` — answer the exact path ``endpoint``
  through ``route.callback(env, data)``;
* ``register_path_route(prefix, root_dir)`` — serve files from ``root_dir`` for paths starting
  with ``prefix`` (``^/myagent/`` or ``^/myagent/.*``); needs the capability ``web.serve_path``
  (:mod:`.access`); :mod:`.routes` explains the path mapping and which folders are refused;
* ``unregister_all_agent_routes()`` — drop the caller's routes (also done when it leaves);
* ``get_user_claims(bearer)`` — the verified claims of a web user's token (``sub``, ``groups``,
  ``exp``...), for agents that guard their own endpoints; raises when the token is not good;
* ``get_bind_web_address()``, ``get_serverkey()``.

Websocket registration is not offered (calls to it answer "unimplemented method").
"""

from __future__ import annotations

import logging
from typing import Any

from volttron.client.vip.agent import Agent
from volttron.client.vip.agent.subsystems.rpc import RPC
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.web.access import check_serve_path
from volttron.server.services.web.errors import RouteError, TokenError
from volttron.server.services.web.routes import RouteTable
from volttron.server.services.web.tokens import TokenIssuer
from volttron.server.services.web.users import WebUserStore
from volttron.utils import jsonrpc

_log = logging.getLogger(__name__)


class WebAgent(Agent):
    """The agent behind the web service; see the module docstring."""

    def __init__(self, routes: RouteTable, tokens: TokenIssuer, users: WebUserStore, web_address: str,
                 platform_serverkey: str | None = None, policy: AuthPolicy | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy
        self._platform_serverkey = platform_serverkey
        self.routes = routes
        self._tokens = tokens
        self._users = users
        self._web_address = web_address
        self.vip.peerlist.ondrop.connect(self._peer_dropped, self)

    def _caller(self) -> str:
        message = self.vip.rpc.context.vip_message
        if message is None or not message.peer:
            raise RouteError("routes can only be registered over RPC")
        return message.peer

    @RPC.export
    def register_endpoint(self, endpoint: str, res_type: str = "jsonrpc") -> None:
        """Answer the exact path ``endpoint`` by calling the caller's ``route.callback``."""
        identity = self._caller()
        self.routes.add_endpoint(identity, endpoint, res_type)
        _log.info("%s serves endpoint %s (%s)", identity, endpoint, res_type)

    @RPC.export
    def register_path_route(self, regex: str, root_dir: str) -> None:
        """Serve files under ``root_dir`` for URL paths starting with the prefix ``regex``."""
        identity = self._caller()
        check_serve_path(self._policy.current() if self._policy is not None else None, identity)
        route = self.routes.add_path_route(identity, regex, root_dir)
        _log.info("%s serves files of %s for %s", identity, route.root, regex)

    @RPC.export
    def unregister_all_agent_routes(self) -> None:
        """Forget every route of the caller."""
        identity = self._caller()
        count = self.routes.remove_identity(identity)
        _log.info("%s unregistered %d web routes", identity, count)

    @RPC.export
    def get_user_claims(self, bearer: str) -> dict[str, Any]:
        """The claims of a valid token (``"Bearer "`` prefix allowed) of a current web user."""
        token = bearer.strip() if isinstance(bearer, str) else bearer
        if isinstance(token, str) and token[:7].lower() == "bearer ":
            token = token[7:].strip()
        claims = self._tokens.verify(token)
        user = self._users.get(claims["sub"])
        if user is None:
            raise TokenError("the token's user no longer exists")
        return {**claims, "groups": list(user.groups)}

    @RPC.export
    def get_bind_web_address(self) -> str:
        """The address the web service listens on."""
        return self._web_address

    @RPC.export
    def get_serverkey(self) -> str | None:
        """The platform's public key (None with authentication disabled)."""
        return self._platform_serverkey

    def _peer_dropped(self, sender: Any, peer: str = "", **kwargs: Any) -> None:
        count = self.routes.remove_identity(peer)
        if count:
            _log.info("%s left the platform: %d web routes removed", peer, count)


class VipCaller:
    """:class:`~volttron.server.services.web.calls.AgentCaller` over the web agent's RPC subsystem."""

    def __init__(self, agent: Agent) -> None:
        self._rpc = agent.vip.rpc

    @staticmethod
    def _check(kwargs: dict[str, Any]) -> None:
        # rpc.call would take it as "route to another platform", past the checks made here
        if "external_platform" in kwargs:
            raise jsonrpc.Error(jsonrpc.INVALID_PARAMS, "invalid params",
                                {"detail": "'external_platform' cannot be passed through the web service"})

    def call(self, peer: str, method: str, args: list[Any], kwargs: dict[str, Any], timeout: float) -> Any:
        """The result of ``peer.method(*args, **kwargs)`` within ``timeout`` seconds."""
        self._check(kwargs)
        return self._rpc.call(peer, method, *args, **kwargs).get(timeout=timeout)

    def notify(self, peer: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Call without an answer."""
        self._check(kwargs)
        self._rpc.notify(peer, method, *args, **kwargs)
