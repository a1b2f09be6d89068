"""VIP addresses with their connection parameters (docs/protocol.md §1.1).

``scheme://base[?key=value&...][#identity]``: ``tcp://10.0.0.5:22916?serverkey=...&publickey=...
&secretkey=...``, ``ipc://@/home/me/.volttron/run/vip.socket``, ``inproc://vip``. Known query keys
are ``domain``, ``server``, ``secretkey``, ``publickey``, ``serverkey``, ``ipv6``, ``username`` and
``password``; a ``#fragment`` names the socket identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode

from volttron.utils.errors import ConfigError

SCHEMES = ("tcp", "ipc", "inproc")
QUERY_KEYS = ("domain", "server", "secretkey", "publickey", "serverkey", "ipv6", "username", "password")


@dataclass(frozen=True)
class VipAddress:
    """A parsed VIP address: ``base`` is what the socket connects to."""

    scheme: str
    base: str
    params: dict[str, str] = field(default_factory=dict)
    identity: str | None = None

    @property
    def serverkey(self) -> str | None:
        """The ``serverkey`` query parameter."""
        return self.params.get("serverkey") or None

    @property
    def publickey(self) -> str | None:
        """The ``publickey`` query parameter."""
        return self.params.get("publickey") or None

    @property
    def secretkey(self) -> str | None:
        """The ``secretkey`` query parameter."""
        return self.params.get("secretkey") or None

    def __str__(self) -> str:
        text = self.base
        if self.params:
            text += "?" + urlencode(self.params, safe="@/:")
        if self.identity:
            text += "#" + quote(self.identity, safe="")
        return text

    def redacted(self) -> str:
        """The address for messages and logs: base only, never a secret key."""
        return self.base


def parse_vip_address(address: str) -> VipAddress:
    """Parse ``address``; raises :class:`~volttron.utils.errors.ConfigError` saying what is wrong."""
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(f"a VIP address is needed, got {address!r}")
    text = address.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"VIP address must start with tcp://, ipc:// or inproc://: {_redact(text)!r}")
    rest, _, fragment = rest.partition("#")
    location, _, query = rest.partition("?")
    if not location:
        raise ConfigError(f"VIP address has no host or path: {_redact(text)!r}")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in QUERY_KEYS:
            raise ConfigError(f"unknown VIP address parameter {key!r} (known: {', '.join(QUERY_KEYS)})")
        params[key] = value
    return VipAddress(scheme, f"{scheme}://{location}", params, fragment or None)


def redact_address(text: str) -> str:
    """An address safe to show: no ``?query`` (it may hold keys) and no password before ``@``."""
    base = text.partition("?")[0]
    scheme, sep, rest = base.partition("://")
    if sep and "@" in rest:
        login, _, location = rest.rpartition("@")
        user = login.partition(":")[0]
        return f"{scheme}://{user}:***@{location}" if ":" in login else base
    return base


_redact = redact_address
