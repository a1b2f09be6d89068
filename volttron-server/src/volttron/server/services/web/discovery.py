"""``GET /discovery/``: how another platform or a remote agent reaches this one (docs/protocol.md §3.5).

``{"serverkey": ..., "vip-address": ..., "instance-name": ...}``. The address is the first tcp
address that is not private, else the first tcp address (the original gave none on a private
network, which made discovery useless there); a wildcard host (``0.0.0.0``, ``*``, ``::``) is
replaced by the host name the client used to reach the web service. ``serverkey`` and
``vip-address`` are left out when the platform has no tcp address; ``serverkey`` also when
authentication is disabled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

_WILDCARDS = ("0.0.0.0", "*", "::", "[::]")


def _tcp_host_port(address: str) -> tuple[str, str] | None:
    if not address.startswith("tcp://"):
        return None
    netloc = address[len("tcp://"):].split("?", 1)[0].split("#", 1)[0]
    host, sep, port = netloc.rpartition(":")
    if not sep or not host or not port:
        return None
    return host, port


def _is_private(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_private
    except ValueError:
        return host == "localhost"


def _request_host(host_header: str | None) -> str | None:
    if not host_header:
        return None
    try:
        return urlsplit(f"//{host_header}").hostname
    except ValueError:
        return None


def discovery_document(instance_name: str, serverkey: str | None, addresses: Sequence[str],
                       host_header: str | None = None) -> dict[str, Any]:
    """The discovery answer for a platform with these VIP ``addresses``."""
    tcp = [hp for hp in (_tcp_host_port(a) for a in addresses) if hp is not None]
    chosen = next((hp for hp in tcp if not _is_private(hp[0])), tcp[0] if tcp else None)
    document: dict[str, Any] = {}
    if chosen is not None:
        host, port = chosen
        if host in _WILDCARDS:
            host = _request_host(host_header) or "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
        if serverkey:
            document["serverkey"] = serverkey
        document["vip-address"] = f"tcp://{host}:{port}"
    document["instance-name"] = instance_name
    return document
