"""A request as the web service reads it, and a response as it writes it: werkzeug's, with our limits.

Every response carries ``X-Content-Type-Options: nosniff``; JSON answers of the service itself
also carry ``Cache-Control: no-store`` (they may hold tokens). Bodies are read up to a limit
(werkzeug's ``max_content_length``, which also bounds a chunked body); a longer one is refused with
:class:`RequestTooLarge` (413) before it is held in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from volttron.server.services.web.errors import WebError

AGENT_ENV_KEYS = (
    "HTTP_USER_AGENT", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "SERVER_PROTOCOL", "REMOTE_ADDR",
    "HTTP_ACCEPT_ENCODING", "HTTP_COOKIE", "CONTENT_TYPE", "HTTP_AUTHORIZATION", "SERVER_NAME",
    "wsgi.url_scheme", "HTTP_HOST",
)
"""The WSGI environ keys an agent's ``route.callback`` receives (those the original passed)."""


class RequestTooLarge(WebError):
    """The request body is longer than the service accepts."""


class BadRequest(WebError):
    """The request cannot be read (body encoding, JSON); answered with 400."""


class WebRequest(Request):
    """One WSGI request (werkzeug's) whose body may hold at most ``max_body`` bytes."""

    def __init__(self, environ: dict[str, Any], max_body: int) -> None:
        super().__init__(environ)
        # One byte over the limit is read, so a chunked body that is too long is refused, not cut.
        self.max_content_length = max_body + 1
        self.max_body = max_body

    def header(self, name: str) -> str | None:
        """A request header by its HTTP name (``Authorization``)."""
        return self.headers.get(name)

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
        auth = self.authorization
        if auth is None or auth.type != "bearer" or not auth.token:
            return None
        return auth.token

    def body(self) -> bytes:
        """The body; :class:`RequestTooLarge` beyond :attr:`max_body` bytes."""
        try:
            data = self.get_data(cache=True)
        except RequestEntityTooLarge:
            data = None
        if data is None or len(data) > self.max_body:
            raise RequestTooLarge(f"the body may hold at most {self.max_body} bytes")
        return data

    def text(self) -> str:
        """The body as UTF-8 text; :class:`BadRequest` if it is not."""
        try:
            return self.body().decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the body is not UTF-8 text") from None

    def json_body(self) -> Any:
        """The body parsed as JSON; :class:`BadRequest` if it is not."""
        try:
            return json.loads(self.text())
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("the body's JSON is nested too deeply") from None

    def agent_env(self) -> dict[str, str]:
        """The JSON-safe subset of the environ an agent's ``route.callback`` receives."""
        return {key: str(self.environ[key]) for key in AGENT_ENV_KEYS if key in self.environ}


class HttpResponse(Response):
    """werkzeug's response with a status code first, no default Content-Type, and ``nosniff``.

    ``reason`` replaces the standard phrase of ``status`` (agents' endpoints may name their own).
    """

    default_mimetype = None

    def __init__(self, status: int, body: bytes | Iterable[bytes] = b"",
                 headers: Iterable[tuple[str, str]] = (), reason: str | None = None) -> None:
        if reason is None:  # the standard phrase as RFC 9110 writes it (werkzeug's are upper case)
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = "Unknown"
        super().__init__(body, status=f"{status} {reason}", headers=list(headers))
        self.headers.setdefault("X-Content-Type-Options", "nosniff")


def json_response(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """``value`` as a JSON response that is not cached."""
    body = json.dumps(value).encode("utf-8")
    return HttpResponse(status, body, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                       *headers])


def error_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message}, headers)
