"""What the web service is told: where to listen, which certificate, which secret, which limits.

Read from the platform options (``--bind-web-address``, ``--web-ssl-cert``, ``--web-ssl-key``,
``--web-secret-key``, or the same keys in ``$VOLTTRON_HOME/config``). With ``https`` and no
certificate given, the platform's own CA issues one (:mod:`.certificates`).

The limits (:data:`LIMIT_NAMES`) have defaults; ``$VOLTTRON_HOME/web-limits.json`` may change any
of them, e.g. ``{"max_connections_per_address": 64, "login_failures_per_user": 50}``. The file is
read when the web service starts; a bad file stops it with one line naming the problem.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from volttron.server.services.web.errors import WebConfigError
from volttron.server.services.web.throttle import LoginLimits
from volttron.utils.errors import CorruptFileError
from volttron.utils.files import read_json_file

DEFAULT_TOKEN_LIFETIME = 3600.0
DEFAULT_CALLBACK_TIMEOUT = 30.0
DEFAULT_RPC_TIMEOUT = 30.0
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_SOCKET_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 32
DEFAULT_HEADER_TIMEOUT = 10.0
WEB_USERS_FILE = "web-users.json"
LIMITS_FILE = "web-limits.json"
SECRET_FILE = "web-secret-key"


@dataclass(frozen=True)
class WebAddress:
    """A parsed ``http(s)://host:port`` bind address."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """The address as a URL (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def is_wildcard(self) -> bool:
        """True when the service listens on every interface (``0.0.0.0`` or ``::``)."""
        return self.host in ("0.0.0.0", "::", "")

    @property
    def host_is_ip(self) -> bool:
        """True when the host is an IP address rather than a name."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_web_address(text: str) -> WebAddress:
    """``http(s)://host:port`` as a :class:`WebAddress`; :class:`WebConfigError` naming the problem."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise WebConfigError(f"bind-web-address {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebConfigError(f"bind-web-address {text!r} must start with http:// or https://")
    if not parts.hostname:
        raise WebConfigError(f"bind-web-address {text!r} has no host")
    if port is None or not 0 < port < 65536:
        raise WebConfigError(f"bind-web-address {text!r} needs a port from 1 to 65535, "
                             "e.g. https://127.0.0.1:8443")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise WebConfigError(f"bind-web-address {text!r} must be only scheme, host and port")
    return WebAddress(parts.scheme, parts.hostname, port)


@dataclass(frozen=True)
class WebSettings:
    """Everything the web service needs besides the platform context."""

    address: WebAddress
    ssl_cert: Path | None = None
    ssl_key: Path | None = None
    secret_key: str | None = field(default=None, repr=False)
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME
    callback_timeout: float = DEFAULT_CALLBACK_TIMEOUT
    """How long an agent may take to answer ``route.callback``."""
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT
    """How long a method called through ``/jsonrpc`` may take."""
    max_body: int = DEFAULT_MAX_BODY
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    """Idle time after which a client connection is closed."""
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    """Connections one client address may hold at once; more are answered 503 and closed."""
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """Time a client has for its TLS handshake, and for each request line and headers (408 after)."""
    login_failures_per_address: int = LoginLimits.per_address
    """Failed logins from one address within ``login_window`` before 429."""
    login_failures_per_user: int = LoginLimits.per_user
    """Failed logins for one user name within ``login_window`` before 429."""
    login_window: float = LoginLimits.window
    login_tracked_clients: int = LoginLimits.max_tracked
    """Addresses (and, apart, user names) whose failures are remembered."""

    def __post_init__(self) -> None:
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise WebConfigError("web-ssl-cert and web-ssl-key must be given together")
        if self.ssl_cert is not None and self.address.scheme != "https":
            raise WebConfigError(f"web-ssl-cert and web-ssl-key need an https bind-web-address, "
                                 f"not {self.address.url}")
        if self.secret_key is not None and len(self.secret_key) < 16:
            raise WebConfigError("web-secret-key must be at least 16 characters long")
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
                raise WebConfigError(f"web limit {name} must be a positive number, not {value!r}")

    @property
    def login_limits(self) -> LoginLimits:
        """The login throttle's limits."""
        return LoginLimits(self.login_failures_per_address, self.login_failures_per_user, self.login_window,
                           self.login_tracked_clients)

    def with_limits_file(self, path: Path) -> WebSettings:
        """These settings with the limits ``path`` (a JSON object) changes; unchanged when it is missing."""
        try:
            values = read_json_file(path, {}, expect=dict, move_corrupt=False)
        except CorruptFileError as exc:
            raise WebConfigError(str(exc)) from None
        except OSError as exc:
            raise WebConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        unknown = sorted(set(values) - set(LIMIT_NAMES))
        if unknown:
            raise WebConfigError(f"{path}: unknown web limit(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(LIMIT_NAMES)}")
        integers = {n for n in LIMIT_NAMES if isinstance(getattr(self, n), int)}
        for name, value in values.items():
            if name in integers and not (isinstance(value, int) and not isinstance(value, bool)):
                raise WebConfigError(f"{path}: {name} must be a whole number, not {value!r}")
        return replace(self, **values)

    @property
    def tls(self) -> bool:
        """True when the service speaks https."""
        return self.address.scheme == "https"

    @classmethod
    def from_options(cls, options: Any, **overrides: Any) -> WebSettings:
        """Settings from :class:`~volttron.server.options.PlatformOptions` (which has a web address)."""
        if not options.bind_web_address:
            raise WebConfigError("the web service needs --bind-web-address")

        def path(value: str | None) -> Path | None:
            return Path(value).expanduser().absolute() if value else None

        values: dict[str, Any] = {
            "address": parse_web_address(options.bind_web_address),
            "ssl_cert": path(getattr(options, "web_ssl_cert", None)),
            "ssl_key": path(getattr(options, "web_ssl_key", None)),
            "secret_key": getattr(options, "web_secret_key", None) or None,
        }
        values.update(overrides)
        return cls(**values)


LIMIT_NAMES = ("callback_timeout", "rpc_timeout", "max_body", "max_connections", "socket_timeout",
               "max_connections_per_address", "header_timeout", "login_failures_per_address",
               "login_failures_per_user", "login_window", "login_tracked_clients", "token_lifetime")
"""The settings ``web-limits.json`` may change."""
