"""A request as the web service reads it, and a response as it writes it (plain WSGI, no framework).

Every response carries ``X-Content-Type-Options: nosniff``; JSON answers of the service itself
also carry ``Cache-Control: no-store`` (they may hold tokens). Bodies are read up to a limit;
a longer one is refused with :class:`RequestTooLarge` (413) before it is held in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

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


class WebRequest:
    """One WSGI request: method, path, headers, and its body read at most once."""

    def __init__(self, environ: dict[str, Any], max_body: int) -> None:
        self.environ = environ
        self.max_body = max_body
        self._body: bytes | None = None

    @property
    def method(self) -> str:
        """The HTTP method, upper case."""
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @property
    def path(self) -> str:
        """``PATH_INFO`` (already percent-decoded by the server)."""
        return str(self.environ.get("PATH_INFO", "") or "/")

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters."""
        return str(self.environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()

    @property
    def is_json(self) -> bool:
        """True when the body says it is JSON."""
        return self.content_type == "application/json" or self.content_type.endswith("+json")

    def header(self, name: str) -> str | None:
        """A request header by its HTTP name (``Authorization``)."""
        value = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
        return str(value) if value is not None else None

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
        value = self.header("Authorization")
        if not value:
            return None
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None

    def body(self) -> bytes:
        """The body; :class:`RequestTooLarge` beyond :attr:`max_body` bytes."""
        if self._body is None:
            length_text = str(self.environ.get("CONTENT_LENGTH") or "").strip()
            if length_text:
                try:
                    length = int(length_text)
                except ValueError:
                    raise BadRequest("Content-Length is not a number") from None
                if length > self.max_body:
                    raise RequestTooLarge(f"the body may hold at most {self.max_body} bytes")
            stream = self.environ.get("wsgi.input")
            data = stream.read(self.max_body + 1) if stream is not None else b""
            if len(data) > self.max_body:
                raise RequestTooLarge(f"the body may hold at most {self.max_body} bytes")
            self._body = data
        return self._body

    def text(self) -> str:
        """The body as UTF-8 text; :class:`BadRequest` if it is not."""
        try:
            return self.body().decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the body is not UTF-8 text") from None

    def json(self) -> Any:
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


@dataclass
class HttpResponse:
    """A status, headers and a body (bytes, or an iterable of chunks for files)."""

    status: int
    body: bytes | Iterable[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None
    length: int | None = None
    """Content-Length for an iterable body (bytes bodies are measured)."""

    @property
    def status_line(self) -> str:
        """``"200 OK"``."""
        if self.reason is None:
            try:
                self.reason = HTTPStatus(self.status).phrase
            except ValueError:
                self.reason = "Unknown"
        return f"{self.status} {self.reason}"

    def write(self, start_response: Callable[..., Any], head_only: bool = False) -> Iterable[bytes]:
        """Start the response and return the WSGI body iterable."""
        headers = list(self.headers)
        names = {name.lower() for name, _ in headers}
        if "x-content-type-options" not in names:
            headers.append(("X-Content-Type-Options", "nosniff"))
        body = self.body
        if isinstance(body, (bytes, bytearray)):
            headers.append(("Content-Length", str(len(body))))
            start_response(self.status_line, headers)
            return [] if head_only else [bytes(body)]
        if self.length is not None:
            headers.append(("Content-Length", str(self.length)))
        start_response(self.status_line, headers)
        if head_only:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return []
        return body


def json_response(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """``value`` as a JSON response that is not cached."""
    body = json.dumps(value).encode("utf-8")
    return HttpResponse(status, body, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                       *headers])


def error_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message}, headers)
