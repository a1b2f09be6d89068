"""Test helpers for agent developers, shipped with ``volttron-client``.

Unit tests (no platform): :class:`AgentHarness` runs the real agent on an in-memory bus
(:class:`MemoryRouter`) and a clock the test advances (:class:`ManualClock`), and drives it.
Integration tests: :class:`VolttronPlatform` runs a real ``volttron`` in a temporary home (needs
``volttron-server``). The pytest plugin (:mod:`volttron.client.testing.plugin`, registered as the
``volttron`` ``pytest11`` entry point) provides the fixtures ``agent_harness``,
``volttron_platform`` and ``volttron_platform_factory``. See ``docs/developer-guide.md``.

Importing this package is cheap: the names below load on first use, so the plugin adds nothing
(no gevent, no ZeroMQ) to a test run that does not use them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AgentHarness": "volttron.client.testing.harness",
    "AgentCallbackError": "volttron.client.testing.harness",
    "HarnessError": "volttron.client.testing.harness",
    "ManualClock": "volttron.client.testing.clock",
    "MemoryRouter": "volttron.client.testing.memory_bus",
    "MemoryConnection": "volttron.client.testing.memory_bus",
    "Publication": "volttron.client.testing.controls",
    "RpcCall": "volttron.client.testing.controls",
    "RpcPeer": "volttron.client.testing.services",
    "MemoryConfigStore": "volttron.client.testing.services",
    "VolttronPlatform": "volttron.client.testing.platform",
    "VolttronPlatformError": "volttron.client.testing.errors",
    "PlatformUnavailable": "volttron.client.testing.errors",
    "wait_until": "volttron.client.testing.waiting",
    "WaitTimeout": "volttron.client.testing.waiting",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
