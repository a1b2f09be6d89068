"""The web service's WSGI application: one dispatcher, in this order.

1. ``/discovery/`` (``GET``) — :mod:`.discovery`
2. ``/authenticate`` (``POST``) — :mod:`.login`
3. ``/jsonrpc/<identity>`` (``POST``) — :mod:`.gateway`
4. agents' endpoints (exact paths) — :mod:`.endpoints`
5. agents' path routes (static files) — :mod:`.static`
6. otherwise 404.

The service's own paths (1-3) are a werkzeug :class:`~werkzeug.routing.Map` (no redirects, slashes
kept as sent); agents' routes are looked up in the :class:`~.routes.RouteTable`, which knows who owns
which URL. Requests and responses are werkzeug's (:mod:`.http_messages`).

Errors are JSON (``{"error": ...}``, or JSON-RPC error objects under ``/jsonrpc``). Nothing that
goes wrong inside reaches the client as a traceback: unexpected exceptions are logged with theirs
and answered ``500 {"error": "internal server error"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, Map, Rule

from volttron.server.services.web.endpoints import EndpointDispatcher
from volttron.server.services.web.gateway import JsonRpcGateway
from volttron.server.services.web.http_messages import (
    BadRequest,
    HttpResponse,
    RequestTooLarge,
    WebRequest,
    error_response,
    json_response,
)
from volttron.server.services.web.login import LoginEndpoint
from volttron.server.services.web.routes import RouteTable
from volttron.server.services.web.static import serve_file

_log = logging.getLogger(__name__)



class _Rest(BaseConverter):
    """The rest of the path, empty or not (``/jsonrpc/`` reaches the gateway, which answers it)."""

    regex = ".*"
    part_isolating = False


Discovery = Callable[[WebRequest], dict[str, Any]]


class WebApplication:
    """A WSGI callable serving the routes above."""

    def __init__(self, routes: RouteTable, discovery: Discovery, login: LoginEndpoint,
                 gateway: JsonRpcGateway, endpoints: EndpointDispatcher, max_body: int) -> None:
        self.routes = routes
        self._discovery = discovery
        self._login = login
        self._gateway = gateway
        self._endpoints = endpoints
        self._max_body = max_body
        self.requests = 0
        self.errors = 0
        own = Map([Rule("/discovery", endpoint="discovery"), Rule("/discovery/", endpoint="discovery"),
                   Rule("/authenticate", endpoint="login"), Rule("/jsonrpc", endpoint="jsonrpc-root"),
                   Rule("/jsonrpc/<rest:peer>", endpoint="jsonrpc")],
                  converters={"rest": _Rest}, strict_slashes=False, merge_slashes=False,
                  redirect_defaults=False)
        self._own = own.bind("web")  # matched by path only: the Host header plays no part

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer one request."""
        self.requests += 1
        request = WebRequest(environ, self._max_body)
        try:
            response = self.respond(request)
        except RequestTooLarge as exc:
            response = error_response(413, str(exc))
        except BadRequest as exc:
            response = error_response(400, str(exc))
        except Exception:
            self.errors += 1
            _log.exception("web request %s %s failed", request.method, request.path[:200])
            response = error_response(500, "internal server error")
        return response(environ, start_response)

    def respond(self, request: WebRequest) -> HttpResponse:
        """The response for ``request`` (exceptions are left to :meth:`__call__`)."""
        path = request.path
        try:
            name, values = self._own.match(path, method=request.method)
        except HTTPException:  # not one of ours (no rule names methods, so only 404 gets here)
            name, values = None, {}
        if name == "discovery":
            if request.method not in ("GET", "HEAD"):
                return error_response(405, "use GET", [("Allow", "GET, HEAD")])
            return json_response(200, self._discovery(request))
        if name == "login":
            return self._login.handle(request)
        if name == "jsonrpc":
            return self._gateway.handle(values["peer"], request)
        if name == "jsonrpc-root":
            return error_response(404, "call /jsonrpc/<agent identity>")
        endpoint = self.routes.endpoint(path)
        if endpoint is not None:
            return self._endpoints.handle(endpoint, request)
        route = self.routes.path_route(path)
        if route is not None:
            return serve_file(route.root, path, request.method, request.environ)
        return error_response(404, "not found")

    def statistics(self) -> dict[str, Any]:
        """Request counts, logins, gateway calls and routes."""
        return {"requests": self.requests, "errors": self.errors, "logins": self._login.logins,
                "login_failures": self._login.failures, "rpc_calls": self._gateway.calls,
                "rpc_refused": self._gateway.refused, **self.routes.statistics()}
