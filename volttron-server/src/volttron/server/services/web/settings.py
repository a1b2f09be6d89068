"""What the web service is told: where to listen, which certificate, which secret, which limits.

Read from the platform options (``--bind-web-address``, ``--web-ssl-cert``, ``--web-ssl-key``,
``--web-secret-key``, or the same keys in ``$VOLTTRON_HOME/config``). With ``https`` and no
certificate given, the platform's own CA issues one (:mod:`.certificates`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from volttron.server.services.web.errors import WebConfigError

DEFAULT_TOKEN_LIFETIME = 3600.0
DEFAULT_CALLBACK_TIMEOUT = 30.0
DEFAULT_RPC_TIMEOUT = 30.0
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_SOCKET_TIMEOUT = 60.0
WEB_USERS_FILE = "web-users.json"
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
    """Idle time after which a client connection (or a stalled TLS handshake) is closed."""

    def __post_init__(self) -> None:
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise WebConfigError("web-ssl-cert and web-ssl-key must be given together")
        if self.ssl_cert is not None and self.address.scheme != "https":
            raise WebConfigError(f"web-ssl-cert and web-ssl-key need an https bind-web-address, "
                                 f"not {self.address.url}")
        if self.secret_key is not None and len(self.secret_key) < 16:
            raise WebConfigError("web-secret-key must be at least 16 characters long")

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
