"""Agent endpoints: the HTTP request goes to the agent as ``route.callback(env, data)``.

``env`` is the JSON-safe subset of the WSGI environ the original passed
(:data:`~volttron.server.services.web.http_messages.AGENT_ENV_KEYS`); ``data`` is the body as
text, or the parsed value when the request says it is JSON. The agent's answer becomes the
response according to the endpoint's ``res_type`` (the original's rules):

``jsonrpc``
    an object: JSON, 200 (401 when it is a JSON-RPC error with code -32001); a list
    ``[content, headers]`` or ``[status, content, headers]`` (text content, valid headers);
    anything else (other lists included): JSON, 200.
``raw``
    a list ``[status]``, ``[status, base64 content]`` or ``[status, base64 content, headers]``.

``status`` is ``"200 OK"`` or ``"404"``; ``headers`` a list of ``[name, value]`` pairs (names
and values are checked: no line breaks; ``Content-Length`` and hop-by-hop headers are dropped).
An answer that fits none of these is a 502. An agent that does not answer in time gives 504, one
that is gone 502, and an exception in the agent 500; its detail goes to the platform log, never
to the client.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any

from volttron.client.vip.agent.errors import ResultTimeout, VIPError
from volttron.server.services.web.calls import AgentCaller
from volttron.server.services.web.http_messages import (
    BadRequest,
    HttpResponse,
    WebRequest,
    error_response,
)
from volttron.server.services.web.routes import Endpoint
from volttron.utils.jsonrpc import UNAUTHORIZED, Error

_log = logging.getLogger(__name__)

_STATUS = re.compile(r"([1-5][0-9][0-9])(?: ([^\r\n\x00]*))?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_JSON_TYPE = ("Content-Type", "application/json")
_DROPPED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
                      "proxy-connection", "te", "trailer"})


class InvalidAgentAnswer(ValueError):
    """The agent's answer is not one of the forms a response can be made from."""


def parse_status(value: Any) -> tuple[int, str | None]:
    """``(code, reason)`` from ``"200 OK"``, ``"404"`` or ``404``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _STATUS.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidAgentAnswer(f"bad status {value!r}")
    return int(match.group(1)), match.group(2) or None


def parse_headers(value: Any) -> list[tuple[str, str]]:
    """Checked ``(name, value)`` pairs from a list of pairs or an object."""
    items = value.items() if isinstance(value, dict) else value
    if items is None:
        return []
    if not isinstance(items, (list, tuple, type({}.items()))):
        raise InvalidAgentAnswer("headers must be a list of [name, value] pairs")
    headers: list[tuple[str, str]] = []
    item: Any
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InvalidAgentAnswer(f"bad header {item!r}")
        name, text = item
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidAgentAnswer(f"bad header name {name!r}")
        text = str(text)
        if any(c in text for c in "\r\n\x00"):
            raise InvalidAgentAnswer(f"header {name} holds a line break")
        if name.lower() not in _DROPPED:
            headers.append((name, text))
    return headers


def _content(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        return b""
    raise InvalidAgentAnswer(f"content must be text, not {type(value).__name__}")


def jsonrpc_answer(result: Any) -> HttpResponse:
    """The response for a ``jsonrpc`` endpoint's answer."""
    if isinstance(result, dict):
        error = result.get("error")
        status = 401 if isinstance(error, dict) and error.get("code") == UNAUTHORIZED else 200
        return HttpResponse(status, json.dumps(result).encode("utf-8"), [_JSON_TYPE])
    try:
        if isinstance(result, list) and len(result) == 2:
            return HttpResponse(200, _content(result[0]), parse_headers(result[1]))
        if isinstance(result, list) and len(result) == 3:
            code, reason = parse_status(result[0])
            return HttpResponse(code, _content(result[1]), parse_headers(result[2]), reason=reason)
    except InvalidAgentAnswer:
        pass  # a plain list of values that only looks like [content, headers]
    return HttpResponse(200, json.dumps(result).encode("utf-8"), [_JSON_TYPE])


def raw_answer(result: Any) -> HttpResponse:
    """The response for a ``raw`` endpoint's answer."""
    if not isinstance(result, list) or not 1 <= len(result) <= 3:
        raise InvalidAgentAnswer("a raw answer is [status], [status, content] or [status, content, headers]")
    code, reason = parse_status(result[0])
    body = b""
    if len(result) > 1 and result[1] is not None:
        if not isinstance(result[1], str):
            raise InvalidAgentAnswer("raw content must be base64 text")
        try:
            body = base64.b64decode(result[1].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise InvalidAgentAnswer("raw content is not valid base64") from None
    headers = parse_headers(result[2]) if len(result) == 3 else []
    return HttpResponse(code, body, headers, reason=reason)


class EndpointDispatcher:
    """Answers requests for agent endpoints by calling the agents back."""

    def __init__(self, caller: AgentCaller, timeout: float) -> None:
        self._caller = caller
        self._timeout = timeout

    def handle(self, endpoint: Endpoint, request: WebRequest) -> HttpResponse:
        """Call ``route.callback`` on the endpoint's agent and turn its answer into a response."""
        data: Any = request.text()
        if request.is_json and data.strip():
            data = request.json_body()
        elif not isinstance(data, str):
            raise BadRequest("unreadable body")
        who = endpoint.identity
        try:
            result = self._caller.call(who, "route.callback", [request.agent_env(), data], {}, self._timeout)
        except ResultTimeout:
            _log.warning("agent %r did not answer %s within %.0f s", who, endpoint.path, self._timeout)
            return error_response(504, f"the agent serving {endpoint.path} did not answer in time")
        except VIPError as exc:
            _log.warning("agent %r serving %s unreachable: %s", who, endpoint.path, exc)
            return error_response(502, f"the agent serving {endpoint.path} is not available")
        except Error as exc:
            _log.error("agent %r failed to answer %s: %s", who, endpoint.path, exc)
            return error_response(500, f"the agent serving {endpoint.path} failed")
        try:
            return raw_answer(result) if endpoint.res_type == "raw" else jsonrpc_answer(result)
        except InvalidAgentAnswer as exc:
            _log.error("agent %r answered %s with an unusable value: %s", who, endpoint.path, exc)
            return error_response(502, f"the agent serving {endpoint.path} gave an invalid answer")
