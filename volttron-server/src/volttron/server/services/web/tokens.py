"""Bearer tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, ``alg`` HS256 only).

``/authenticate`` issues one per successful login; ``/jsonrpc`` and agents (``get_user_claims``)
check them. Claims: ``iss`` (the instance name), ``sub`` (the user name), ``groups``, ``iat``,
``nbf``, ``exp`` and a random ``jti``. A token whose header names any other algorithm (``none``
included), whose signature does not verify, whose issuer differs or whose time window excludes now
is refused with :class:`~volttron.server.services.web.errors.TokenError`.

The signing secret is ``--web-secret-key`` when given, else 32 random bytes kept in
``$VOLTTRON_HOME/web-secret-key`` (mode 0600) so tokens survive a platform restart. Deleting
that file (or changing the option) invalidates every token issued so far.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from volttron.server.services.web.errors import TokenError, WebConfigError
from volttron.server.services.web.settings import SECRET_FILE
from volttron.utils.files import atomic_write, move_aside

_log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192
CLOCK_LEEWAY = 30.0
_HEADER = {"alg": "HS256", "typ": "JWT"}


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    if not text or len(text) % 4 == 1:
        raise TokenError("malformed token")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed token") from None


def _json_part(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_decode(text))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("malformed token") from None
    if not isinstance(value, dict):
        raise TokenError("malformed token")
    return value


class TokenIssuer:
    """Issues and checks tokens for one platform instance."""

    def __init__(self, secret: bytes, issuer: str, lifetime: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise WebConfigError("the token signing secret must be at least 16 bytes")
        if lifetime <= 0:
            raise WebConfigError("the token lifetime must be positive")
        self._secret = secret
        self.issuer = issuer
        self.lifetime = float(lifetime)
        self._clock = clock

    def _sign(self, signing_input: bytes) -> bytes:
        return hmac.new(self._secret, signing_input, hashlib.sha256).digest()

    def issue(self, subject: str, extra: Mapping[str, Any] | None = None) -> str:
        """A signed token for ``subject`` valid for :attr:`lifetime` seconds from now."""
        now = int(self._clock())
        claims = dict(extra or {})
        claims.update({"iss": self.issuer, "sub": subject, "iat": now, "nbf": now,
                       "exp": now + int(self.lifetime), "jti": secrets.token_urlsafe(12)})
        head = _encode(json.dumps(_HEADER, separators=(",", ":")).encode())
        body = _encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{head}.{body}".encode("ascii")
        return f"{head}.{body}.{_encode(self._sign(signing_input))}"

    def verify(self, token: Any) -> dict[str, Any]:
        """The claims of ``token``; :class:`TokenError` saying why it is refused."""
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed token")
        header = _json_part(parts[0])
        if header.get("alg") != "HS256":
            raise TokenError(f"token algorithm {header.get('alg')!r} is not accepted")
        try:
            signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        except UnicodeEncodeError:
            raise TokenError("malformed token") from None
        if not hmac.compare_digest(self._sign(signing_input), _decode(parts[2])):
            raise TokenError("bad token signature")
        claims = _json_part(parts[1])
        if claims.get("iss") != self.issuer:
            raise TokenError("token issued by another platform")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenError("token names no user")
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or now >= exp + CLOCK_LEEWAY:
            raise TokenError("token expired")
        if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) and now + CLOCK_LEEWAY < nbf:
            raise TokenError("token not valid yet")
        return claims


def load_or_create_secret(home: Path, configured: str | None = None) -> bytes:
    """The signing secret: ``configured`` if given, else the one kept in ``<home>/web-secret-key``.

    A missing file is created (0600); a file others can read is made 0600 again, with a warning;
    a damaged one is moved aside (and reported) and replaced, which invalidates old tokens.
    """
    if configured:
        return configured.encode("utf-8")
    path = Path(home) / SECRET_FILE
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text, mode = "", None
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"cannot read the web secret {path}: {exc}") from None
    if mode is not None:
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) >= 32:
            if mode & 0o077:
                _log.warning("%s was readable by others (mode %o); made it 0600", path, mode)
                os.chmod(path, 0o600)
            return secret
        kept = move_aside(path)
        _log.error("web secret %s is damaged; kept as %s and replaced (earlier tokens are void)", path, kept)
    secret = secrets.token_bytes(32)
    atomic_write(path, secret.hex() + "\n", 0o600)
    return secret
