"""Bearer tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, ``alg`` HS256 only), by PyJWT.

``/authenticate`` issues one per successful login; ``/jsonrpc`` and agents (``get_user_claims``)
check them. Claims: ``iss`` (the instance name), ``sub`` (the user name), ``groups``, ``iat``,
``nbf``, ``exp`` and a random ``jti``. A token whose header names any other algorithm (``none``
included), whose signature does not verify, whose issuer differs or whose time window excludes now
is refused with :class:`~volttron.server.services.web.errors.TokenError`.

Encoding, signature and issuer checks are PyJWT's (``algorithms=["HS256"]`` is the only list it is
given). The time window is checked here against the issuer's clock, with the same leeway, so that
tests (and a platform clock) can move time; PyJWT reads the wall clock only.

The signing secret is ``--web-secret-key`` when given, else 32 random bytes kept in
``$VOLTTRON_HOME/web-secret-key`` (mode 0600) so tokens survive a platform restart. Deleting
that file (or changing the option) invalidates every token issued so far.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

import jwt

from volttron.server.services.web.errors import TokenError, WebConfigError
from volttron.server.services.web.settings import SECRET_FILE
from volttron.utils.files import atomic_write, move_aside

_log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192
CLOCK_LEEWAY = 30.0
ALGORITHM = "HS256"
_RECOMMENDED_SECRET = 32
# A configured secret of 16 to 31 bytes is accepted (and warned about once, at start); PyJWT
# would warn again on every token.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)
_MISSING = {"sub": "token names no user", "exp": "token expired", "iss": "token issued by another platform"}


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TokenIssuer:
    """Issues and checks tokens for one platform instance."""

    def __init__(self, secret: bytes, issuer: str, lifetime: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise WebConfigError("the token signing secret must be at least 16 bytes")
        if lifetime <= 0:
            raise WebConfigError("the token lifetime must be positive")
        if len(secret) < _RECOMMENDED_SECRET:
            _log.warning("the web token secret is %d bytes; %d or more are recommended for HS256",
                         len(secret), _RECOMMENDED_SECRET)
        self._secret = secret
        self.issuer = issuer
        self.lifetime = float(lifetime)
        self._clock = clock

    def issue(self, subject: str, extra: Mapping[str, Any] | None = None) -> str:
        """A signed token for ``subject`` valid for :attr:`lifetime` seconds from now."""
        now = int(self._clock())
        claims = dict(extra or {})
        claims.update({"iss": self.issuer, "sub": subject, "iat": now, "nbf": now,
                       "exp": now + int(self.lifetime), "jti": secrets.token_urlsafe(12)})
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: Any) -> dict[str, Any]:
        """The claims of ``token``; :class:`TokenError` saying why it is refused."""
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token too long")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm != ALGORITHM:
                raise TokenError(f"token algorithm {algorithm!r} is not accepted")
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], issuer=self.issuer,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "require": ["iss", "sub", "exp"]})
        except jwt.InvalidSignatureError:
            raise TokenError("bad token signature") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token issued by another platform") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(_MISSING.get(exc.claim, "malformed token")) from None
        except jwt.InvalidTokenError:  # DecodeError and the rest: not a token we could have issued
            raise TokenError("malformed token") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenError("token names no user")
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not _number(exp) or now >= exp + CLOCK_LEEWAY:
            raise TokenError("token expired")
        if _number(nbf) and now + CLOCK_LEEWAY < nbf:
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
