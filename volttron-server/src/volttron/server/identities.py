"""The VIP identities the platform itself uses (docs/protocol.md §3.1, the modular names).

The names come from :mod:`volttron.client.known_identities`, the one list agents and tools use too;
this module adds what only the server needs: who may stop the platform, and which services get an
auth entry at start.
"""

from __future__ import annotations

from volttron.client.known_identities import (
    AUTH,
    CONFIGURATION_STORE,
    CONTROL,
    CONTROL_CONNECTION,
    KEY_DISCOVERY,
    LEGACY_ALIASES,
    PLATFORM,
    PLATFORM_HEALTH,
    PLATFORM_WEB,
    PROXY_ROUTER,
    PUBSUB,
)

__all__ = [
    "AUTH", "CONFIGURATION_STORE", "CONTROL", "CONTROL_CONNECTION", "KEY_DISCOVERY", "LEGACY_ALIASES",
    "PLATFORM", "PLATFORM_HEALTH", "PLATFORM_SERVICES", "PLATFORM_WEB", "PROXY_ROUTER", "PUBSUB",
    "QUIT_ALLOWED",
]

QUIT_ALLOWED = frozenset({CONTROL, "control"})
"""Identities whose ``quit`` request stops the platform (docs/protocol.md §1.4).

``control`` is the 9.x name.
"""

PLATFORM_SERVICES = (CONTROL, CONFIGURATION_STORE, AUTH, PLATFORM_HEALTH, PLATFORM_WEB)
"""Services that run inside the platform process and get an auth entry at start (docs/protocol.md §8.4)."""
