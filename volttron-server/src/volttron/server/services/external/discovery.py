"""The platforms this one links to: ``$VOLTTRON_HOME/external_platform_discovery.json``.

See docs/protocol.md §3.6.

The file maps an instance name to where that platform listens and its public key::

    {"B": {"vip-address": "tcp://10.0.0.7:22916", "instance-name": "B",
           "serverkey": "<43-character key>"}}

It is read once at start. An entry naming this platform itself is skipped. A file that cannot be
used is an error that says which entry and why, never a silently smaller set of links.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volttron.utils.errors import VolttronError
from volttron.utils.keys import is_valid_key, normalize_key

_log = logging.getLogger(__name__)

DISCOVERY_FILE = "external_platform_discovery.json"


class DiscoveryError(VolttronError):
    """The discovery file cannot be read or an entry in it is invalid."""


@dataclass(frozen=True)
class RemotePlatform:
    """One platform to link to."""

    instance_name: str
    vip_address: str
    """``tcp://host:port`` of the remote platform's VIP ROUTER."""
    serverkey: str
    """The remote platform's public key, 43-character form."""


def discovery_path(home: Path) -> Path:
    """Where the discovery file lives in ``home``."""
    return home / DISCOVERY_FILE


def load_discovery(home: Path, own_instance: str) -> list[RemotePlatform]:
    """The remote platforms listed in ``home``'s discovery file; ``[]`` when there is no file."""
    path = discovery_path(home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DiscoveryError(f"cannot read {path}: {exc.strerror}") from None
    try:
        document = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise DiscoveryError(f"{path} is not valid JSON: {exc}") from None
    try:
        return parse_discovery(document, own_instance)
    except DiscoveryError as exc:
        raise DiscoveryError(f"{path}: {exc}") from None


def parse_discovery(document: Any, own_instance: str) -> list[RemotePlatform]:
    """Validate a discovery document (already parsed JSON) and return its remote platforms."""
    if not isinstance(document, dict):
        raise DiscoveryError("the discovery file must hold a JSON object {instance name: entry}")
    remotes = []
    for key, entry in document.items():
        if not isinstance(entry, dict):
            raise DiscoveryError(f"entry {key!r} must be a JSON object")
        name = entry.get("instance-name", key)
        if not isinstance(name, str) or not name or name != key:
            raise DiscoveryError(f"entry {key!r}: instance-name must equal its key, not {name!r}")
        address = entry.get("vip-address")
        if not isinstance(address, str) or not address.startswith("tcp://") or ":" not in address[6:]:
            raise DiscoveryError(f"entry {key!r}: vip-address must be tcp://host:port, not {address!r}")
        serverkey = entry.get("serverkey")
        if not isinstance(serverkey, str) or not is_valid_key(serverkey):
            raise DiscoveryError(f"entry {key!r}: serverkey must be the platform's public key "
                                 "(vctl auth serverkey on that platform)")
        if name == own_instance:
            _log.info("discovery entry %r names this platform; skipped", name)
            continue
        remotes.append(RemotePlatform(name, address, normalize_key(serverkey)))
    return remotes
