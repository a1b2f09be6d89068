"""Where each monolithic name lives in the modular packages.

See docs/protocol.md §7.2, checked against this tree.

A unit test imports every target, so a table entry that points nowhere fails the build.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util

from volttron.utils.errors import VolttronError

MONOLITHIC_ROOT = "volttron.platform"
UTILS_MODULE = "volttron.platform.agent.utils"

MODULE_MAP: tuple[tuple[str, str], ...] = (
    ("volttron.platform.vip.agent.subsystems", "volttron.client.vip.agent.subsystems"),
    ("volttron.platform.vip.agent", "volttron.client.vip.agent"),
    ("volttron.platform.messaging.health", "volttron.client.messaging.health"),
    ("volttron.platform.messaging.headers", "volttron.client.messaging.headers"),
    ("volttron.platform.messaging.topics", "volttron.client.messaging.topics"),
    ("volttron.platform.agent.known_identities", "volttron.client.known_identities"),
    ("volttron.platform.jsonapi", "volttron.utils.jsonapi"),
    ("volttron.platform.jsonrpc", "volttron.utils.jsonrpc"),
    ("volttron.platform.keystore", "volttron.utils.keystore"),
    ("volttron.platform.scheduling", "volttron.utils.scheduling"),
)
"""Modules that moved whole, by dotted prefix (checked in this order)."""

NAME_MAP: dict[tuple[str, str], tuple[str, str]] = {
    (UTILS_MODULE, "vip_main"): ("volttron.client.runner", "vip_main"),
    (UTILS_MODULE, "load_config"): ("volttron.utils.config", "load_config"),
    (UTILS_MODULE, "update_kwargs_with_config"): ("volttron.utils.config", "update_kwargs_with_config"),
    (UTILS_MODULE, "load_platform_config"): ("volttron.utils.config", "load_platform_config"),
    (UTILS_MODULE, "strip_comments"): ("volttron.utils.config", "strip_comments"),
    (UTILS_MODULE, "setup_logging"): ("volttron.utils.logging", "setup_logging"),
    (UTILS_MODULE, "format_timestamp"): ("volttron.utils.time", "format_timestamp"),
    (UTILS_MODULE, "parse_timestamp_string"): ("volttron.utils.time", "parse_timestamp_string"),
    (UTILS_MODULE, "get_aware_utc_now"): ("volttron.utils.time", "get_aware_utc_now"),
    (UTILS_MODULE, "get_utc_seconds_from_epoch"): ("volttron.utils.time", "get_utc_seconds_from_epoch"),
    (UTILS_MODULE, "is_valid_identity"): ("volttron.utils.identities", "is_valid_identity"),
    (UTILS_MODULE, "normalize_identity"): ("volttron.utils.identities", "normalize_identity"),
    (UTILS_MODULE, "get_fq_identity"): ("volttron.utils.identities", "get_fq_identity"),
    ("volttron.platform.vip.agent.utils", "build_agent"): ("volttron.client.runner", "build_agent"),
    ("volttron.platform.keystore", "KnownHostsStore"): ("volttron.utils.keystore", "KnownHosts"),
    ("volttron.platform.vip.socket", "encode_key"): ("volttron.utils.keys", "encode_key"),
    ("volttron.platform.vip.socket", "decode_key"): ("volttron.utils.keys", "decode_key"),
    ("volttron.platform", "get_home"): ("volttron.utils.home", "get_home"),
}
"""Single names that moved, ``(old module, name) -> (new module, new name)``."""

HINTS: dict[str, str] = {
    UTILS_MODULE: "not part of the modular packages; keep a copy in the agent or drop the use",
    "volttron.platform.vip.socket": "addresses are plain strings here; keys are in volttron.utils.keys",
    "volttron.platform.storeutils": "config:// references are resolved by vip.config itself",
    "volttron.platform.agent.base_historian": "historians are separate packages in the modular platform",
    "volttron.platform": "get_address: pass address= to the agent, or set VOLTTRON_VIP_ADDR",
}
"""Why names of a module have no equivalent (shown with each unmapped name)."""

DEFAULT_CLIENT_REQUIREMENT = "volttron-client>=0.1,<0.2"


class PortingError(VolttronError):
    """A project that cannot be ported as asked (a missing folder, an unreadable file)."""


def map_module(module: str) -> str | None:
    """The modular module for a monolithic one that moved whole, or None."""
    for old, new in MODULE_MAP:
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return None


def map_name(module: str, name: str) -> tuple[str, str] | None:
    """``(new module, new name)`` for ``from module import name``, or None when it has no equivalent."""
    if (module, name) in NAME_MAP:
        return NAME_MAP[(module, name)]
    new_module = map_module(module)
    return (new_module, name) if new_module else None


def is_module(dotted: str) -> bool:
    """True when ``dotted`` names an importable module of this installation."""
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def provides(module: str, name: str) -> bool:
    """True when ``from module import name`` works in this installation."""
    if is_module(f"{module}.{name}"):
        return True
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


def hint(module: str) -> str:
    for prefix in sorted(HINTS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return HINTS[prefix]
    return "no equivalent in the modular packages"


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None
