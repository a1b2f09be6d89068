"""``POST /authenticate``: a web user's name and password for a bearer token.

The body is a form (``username=...&password=...``) or JSON (``{"username": ..., "password": ...}``).
The answer is ``{"access_token": "<token>", "token_type": "Bearer", "expires_in": <seconds>}``;
a wrong name or password gives 401 (the same answer, after the same work, for both), a
malformed request 400. Too many failures from one address or for one user name give 429 with
``Retry-After``, before any password is checked (:mod:`.throttle`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from volttron.server.services.web.http_messages import (
    BadRequest,
    HttpResponse,
    WebRequest,
    error_response,
    json_response,
)
from volttron.server.services.web.passwords import verify_password
from volttron.server.services.web.throttle import LoginThrottle
from volttron.server.services.web.tokens import TokenIssuer
from volttron.server.services.web.users import WebUserStore

_log = logging.getLogger(__name__)

PasswordCheck = Callable[[str, str], bool]


def _first(form: dict[str, list[str]], name: str) -> str | None:
    """The first value of field ``name`` of a parsed form, None if it has none."""
    values = form.get(name)
    return values[0] if values else None


class LoginEndpoint:
    """Answers ``/authenticate``.

    ``check`` verifies a password against a stored hash; the web service passes one that runs in
    a thread so that the deliberate cost of hashing does not stall the platform's event loop.
    """

    def __init__(self, users: WebUserStore, tokens: TokenIssuer,
                 check: PasswordCheck = verify_password, throttle: LoginThrottle | None = None) -> None:
        self._users = users
        self._tokens = tokens
        self._check = check
        self.throttle = throttle if throttle is not None else LoginThrottle()
        self.logins = 0
        self.failures = 0

    def _credentials(self, request: WebRequest) -> tuple[str, str]:
        if request.is_json:
            data: Any = request.json_body()
            if not isinstance(data, dict):
                raise BadRequest("the body must be a JSON object with username and password")
            username, password = data.get("username"), data.get("password")
        else:
            form = parse_qs(request.text(), keep_blank_values=True, max_num_fields=10)
            username, password = _first(form, "username"), _first(form, "password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise BadRequest("username and password are required")
        return username, password

    def handle(self, request: WebRequest) -> HttpResponse:
        """The token, or the reason there is none."""
        if request.method != "POST":
            return error_response(405, "use POST with username and password", [("Allow", "POST")])
        try:
            username, password = self._credentials(request)
        except (BadRequest, ValueError) as exc:  # parse_qs refuses too many fields with a ValueError
            return error_response(400, str(exc))
        address = str(request.environ.get("REMOTE_ADDR", ""))
        wait = self.throttle.retry_after(address, username)
        if wait is not None:
            _log.debug("web login for %r from %s refused: too many failures", username[:64], address)
            return error_response(429, f"too many failed logins: try again in {wait} s",
                                  [("Retry-After", str(wait))])
        user = self._users.authenticate(username, password, self._check)
        if user is None:
            self.failures += 1
            self.throttle.failed(address, username)
            _log.warning("failed web login for %r from %s", username[:64], address)
            return error_response(401, "invalid username or password",
                                  [("WWW-Authenticate", 'Bearer realm="volttron"')])
        self.logins += 1
        token = self._tokens.issue(user.name, {"groups": list(user.groups)})
        _log.info("web user %r logged in from %s", user.name, address)
        return json_response(200, {"access_token": token, "token_type": "Bearer",
                                   "expires_in": int(self._tokens.lifetime)})
