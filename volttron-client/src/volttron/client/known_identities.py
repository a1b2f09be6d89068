"""Well-known VIP identities of the modular platform (docs/protocol.md §3.1)."""

from __future__ import annotations

ROUTER = ""
CONTROL = "platform.control"
CONTROL_CONNECTION = "control.connection"
CONFIGURATION_STORE = "platform.config_store"
AUTH = "platform.auth"
PLATFORM_HEALTH = "platform.health"
PLATFORM_WEB = "platform.web"
KEY_DISCOVERY = "keydiscovery"
PROXY_ROUTER = "zmq.proxy.router"
PLATFORM = "platform"
PLATFORM_HISTORIAN = "platform.historian"
PLATFORM_DRIVER = "platform.driver"
PLATFORM_TOPIC_WATCHER = "platform.topic_watcher"
PLATFORM_ALERTER = PLATFORM_TOPIC_WATCHER
PLATFORM_SYSMON = "platform.sysmon"
PLATFORM_EMAILER = "platform.emailer"
PLATFORM_MARKET_SERVICE = "platform.market"
PLATFORM_TAGGING = "platform.tagging"
PLATFORM_FEDERATION = "platform.federation"
VOLTTRON_CENTRAL = "volttron.central"
VOLTTRON_CENTRAL_PLATFORM = "platform.agent"
PUBSUB = "pubsub"
"""The conventional ``peer`` argument of pub/sub calls; not a real peer."""

PROCESS_IDENTITIES = frozenset(
    {AUTH, PLATFORM_HEALTH, CONFIGURATION_STORE, CONTROL, PLATFORM_WEB, KEY_DISCOVERY, PROXY_ROUTER}
)
"""Services that run inside the platform process."""

LEGACY_ALIASES = {"control": CONTROL, "config.store": CONFIGURATION_STORE, "platform_web": PLATFORM_WEB}
"""Identities of the 9.x platform and their modular equivalents."""
