"""The VIP identities the platform itself uses (reference §3.1, modular C10 column).

One place for the platform's service identities, so the router, the auth entries written at start
and the services agree. ``LEGACY_ALIASES`` are the names 9.x agents and tools use for the same
services.
"""

from __future__ import annotations

PLATFORM = "platform"
"""The platform's own key and auth user."""
CONTROL = "platform.control"
CONTROL_CONNECTION = "control.connection"
"""The identity vctl connects as."""
CONFIGURATION_STORE = "platform.config_store"
AUTH = "platform.auth"
PLATFORM_HEALTH = "platform.health"
PLATFORM_WEB = "platform.web"
KEY_DISCOVERY = "keydiscovery"
PROXY_ROUTER = "zmq.proxy.router"
PUBSUB = "pubsub"
"""The pub/sub "peer" name agents pass; pub/sub is served by the router itself on ZeroMQ."""

LEGACY_ALIASES = {
    "control": CONTROL,
    "config.store": CONFIGURATION_STORE,
    "platform_web": PLATFORM_WEB,
}
"""9.x identity -> modular identity of the same service."""

QUIT_ALLOWED = frozenset({CONTROL, "control"})
"""Identities whose ``quit`` request stops the platform (reference §1.4)."""

PLATFORM_SERVICES = (CONTROL, CONFIGURATION_STORE, AUTH, PLATFORM_HEALTH, PLATFORM_WEB)
"""Services that run inside the platform process and get an auth entry at start (reference §8.4)."""
