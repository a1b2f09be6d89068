"""``POST /jsonrpc/<identity>``: web users call agents' RPC methods with a bearer token.

The body is one JSON-RPC 2.0 request whose ``method`` and ``params`` are those of the agent's
method (VOLTTRON's params convention: a list, an object, or ``{"*args": [...], "**kwargs":
{...}}``). A request without ``id`` is a notification (answered 204). Batches are refused.

Before anything is forwarded: the token must verify (:mod:`.tokens`) and name a current web user;
with authentication enabled, the agent is asked which capabilities the method requires
(``auth.get_rpc_authorizations``) and the user's capabilities (:mod:`.users`) must satisfy them,
checked by the client's own :func:`~volttron.client.vip.agent.capabilities.check_capabilities`,
parameter restrictions included (the method's signature comes from ``<method>.inspect``). When the
agent cannot say what the method requires, the call is refused. The agent then checks the caller
``platform.web`` as it checks every caller, so a capability-protected method is reachable from the
web only when both the web user and ``platform.web`` hold what it requires.

========================================  ======  ===============================
Outcome                                   HTTP    JSON-RPC error code
========================================  ======  ===============================
success                                   200     (result)
notification sent                         204     (no body)
body not JSON / not a request / batch     400     -32700 / -32600 / -32602
no, bad or expired token; unknown user    401     -32001
missing capability (ours or the agent's)  403     -32001
no such agent / method                    404     -32006 / -32601
body too large                            413     -32600
method raised                             500     -32000 (no traceback)
no answer within the timeout              504     -32603
========================================  ======  ===============================
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from volttron.client.vip.agent.capabilities import check_capabilities
from volttron.client.vip.agent.errors import ResultTimeout, VIPError
from volttron.server.services.web.calls import AgentCaller
from volttron.server.services.web.errors import TokenError
from volttron.server.services.web.http_messages import (
    BadRequest,
    HttpResponse,
    RequestTooLarge,
    WebRequest,
    json_response,
)
from volttron.server.services.web.tokens import TokenIssuer
from volttron.server.services.web.users import WebUserStore
from volttron.utils import jsonrpc
from volttron.utils.identities import is_valid_identity

_log = logging.getLogger(__name__)

_STATUS_BY_CODE = {
    jsonrpc.PARSE_ERROR: 400, jsonrpc.INVALID_REQUEST: 400, jsonrpc.INVALID_PARAMS: 400,
    jsonrpc.UNAUTHORIZED: 403, jsonrpc.METHOD_NOT_FOUND: 404, jsonrpc.UNAVAILABLE_AGENT: 404,
}


_KINDS = {kind.name: kind for kind in (
    inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)}


def _error(status: int, ident: Any, code: int, message: str, detail: str,
           headers: tuple[tuple[str, str], ...] = (), **data: Any) -> HttpResponse:
    return json_response(status, jsonrpc.json_error(ident, code, message, detail=detail, **data), headers)


def _unauthenticated(detail: str) -> HttpResponse:
    challenge = (("WWW-Authenticate", 'Bearer realm="volttron"'),)
    return _error(401, None, jsonrpc.UNAUTHORIZED, "unauthorized", detail, challenge)


def signature_from_description(info: Any) -> inspect.Signature:
    """An :class:`inspect.Signature` from a ``<method>.inspect`` answer; ValueError if it has none."""
    params = info.get("params") if isinstance(info, Mapping) else None
    if not isinstance(params, Mapping):
        raise ValueError("the method's parameters are unknown")
    parameters = []
    for name, spec in params.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = _KINDS.get(str(spec.get("kind", "POSITIONAL_OR_KEYWORD")))
        if kind is None:
            raise ValueError(f"unknown parameter kind {spec.get('kind')!r}")
        default = spec.get("default", inspect.Parameter.empty)
        parameters.append(inspect.Parameter(str(name), kind, default=default))
    return inspect.Signature(parameters)  # raises ValueError on an impossible order


class _RemoteMethod:
    """Stands for a peer's method in capability checks: only its signature is ever read."""

    def __init__(self, caller: AgentCaller, peer: str, method: str, timeout: float) -> None:
        self._caller, self._peer, self._method, self._timeout = caller, peer, method, timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a remote method is called through the gateway, not directly")

    @property
    def __signature__(self) -> inspect.Signature:
        try:
            info = self._caller.call(self._peer, f"{self._method}.inspect", [], {}, self._timeout)
        except (ResultTimeout, VIPError, jsonrpc.Error) as exc:
            raise ValueError(f"the signature of {self._method!r} is unavailable: {exc}") from None
        return signature_from_description(info)


class JsonRpcGateway:
    """Answers ``/jsonrpc/<identity>``; see the module docstring."""

    def __init__(self, caller: AgentCaller, users: WebUserStore, tokens: TokenIssuer, *,
                 check_capabilities: bool, timeout: float, own_identity: str) -> None:
        self._caller = caller
        self._users = users
        self._tokens = tokens
        self._check = check_capabilities
        self._timeout = timeout
        self._own_identity = own_identity
        self.calls = 0
        self.refused = 0

    def handle(self, peer: str, request: WebRequest) -> HttpResponse:
        """The response to one JSON-RPC request for ``peer``."""
        response = self._handle(peer, request)
        if response.status_code in (401, 403):
            self.refused += 1
        return response

    def _handle(self, peer: str, request: WebRequest) -> HttpResponse:
        if request.method != "POST":
            return _error(405, None, jsonrpc.INVALID_REQUEST, "invalid request", "use POST",
                          (("Allow", "POST"),))
        token = request.bearer_token()
        if token is None:
            return _unauthenticated("an 'Authorization: Bearer <token>' header is required")
        try:
            claims = self._tokens.verify(token)
        except TokenError as exc:
            return _unauthenticated(str(exc))
        user = self._users.get(claims["sub"])
        if user is None:
            return _unauthenticated("the token's user no longer exists")
        try:
            body = request.json_body()
        except RequestTooLarge as exc:
            return _error(413, None, jsonrpc.INVALID_REQUEST, "invalid request", str(exc))
        except BadRequest as exc:
            return _error(400, None, jsonrpc.PARSE_ERROR, "parse error", str(exc))
        if isinstance(body, list):
            return _error(400, None, jsonrpc.INVALID_REQUEST, "invalid request", "batches are not supported")
        ident = body.get("id") if isinstance(body, dict) else None
        try:
            call = jsonrpc.parse_request(body)
        except jsonrpc.Error as exc:
            return json_response(400, exc.to_json(ident))
        if not is_valid_identity(peer):
            return _error(404, ident, jsonrpc.UNAVAILABLE_AGENT, "unavailable agent", f"no agent {peer!r}")
        if peer == self._own_identity:
            return _error(403, ident, jsonrpc.UNAUTHORIZED, "unauthorized",
                          f"{peer} cannot be called through itself")
        if self._check:
            refusal = self._authorize(peer, call, user.name, ident)
            if refusal is not None:
                _log.info("web user %r refused %s.%s: %s", user.name, peer, call.method,
                          refusal.get_data(as_text=True))
                return refusal
        return self._forward(peer, call, ident, user.name)

    def _authorize(self, peer: str, call: jsonrpc.Request, user: str, ident: Any) -> HttpResponse | None:
        try:
            required = self._caller.call(peer, "auth.get_rpc_authorizations", [call.method], {},
                                         self._timeout)
        except (ResultTimeout, VIPError) as exc:
            return self._failure(exc, ident, peer, call.method)
        except jsonrpc.Error:
            return _error(403, ident, jsonrpc.UNAUTHORIZED, "unauthorized",
                          f"{peer} does not say which capabilities {call.method!r} requires")
        if not isinstance(required, list) or not all(isinstance(c, str) for c in required):
            return _error(403, ident, jsonrpc.UNAUTHORIZED, "unauthorized",
                          f"{peer} gave an unreadable capability list for {call.method!r}")
        needed = set(required)
        if not needed or needed == {""}:
            return None
        try:
            check_capabilities(call.method, _RemoteMethod(self._caller, peer, call.method, self._timeout),
                               call.args, call.kwargs, needed, self._users.capabilities, user)
        except jsonrpc.Unauthorized as exc:
            return json_response(403, exc.to_json(ident))
        return None

    def _forward(self, peer: str, call: jsonrpc.Request, ident: Any, user: str) -> HttpResponse:
        self.calls += 1
        try:
            if call.is_notification:
                self._caller.notify(peer, call.method, call.args, call.kwargs)
                return HttpResponse(204)
            result = self._caller.call(peer, call.method, call.args, call.kwargs, self._timeout)
        except (ResultTimeout, VIPError, jsonrpc.Error) as exc:
            return self._failure(exc, ident, peer, call.method)
        _log.debug("web user %r called %s.%s", user, peer, call.method)
        return json_response(200, jsonrpc.json_result(ident, result))

    def _failure(self, exc: BaseException, ident: Any, peer: str, method: str) -> HttpResponse:
        if isinstance(exc, ResultTimeout):
            return _error(504, ident, jsonrpc.INTERNAL_ERROR, "timeout",
                          f"{peer} did not answer {method!r} within {self._timeout:g} s")
        if isinstance(exc, VIPError):
            return _error(404, ident, jsonrpc.UNAVAILABLE_AGENT, "unavailable agent",
                          f"{peer} is not connected to the platform")
        assert isinstance(exc, jsonrpc.Error)
        if isinstance(exc, jsonrpc.RemoteError):
            # the exception's type and text, never its traceback
            info: dict[str, Any] = {"exception.py": {"exc_type": exc.exc_type, "exc_args": exc.exc_args}}
            return _error(500, ident, exc.code, exc.message, exc.detail, **info)
        status = _STATUS_BY_CODE.get(exc.code, 500)
        data = dict(exc.data) if isinstance(exc.data, Mapping) else {}
        data.pop("exception.py", None)
        return json_response(status, jsonrpc.json_error(ident, exc.code, exc.message, **data))
