"""Test helpers for agent developers, shipped with ``volttron-client``.

Unit tests (no platform): :class:`AgentHarness` builds an agent with fake subsystems and drives it.
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
    "FakeClock": "volttron.client.testing.clock",
    "FakeCore": "volttron.client.testing.fake_core",
    "FakePubSub": "volttron.client.testing.fake_pubsub",
    "Publication": "volttron.client.testing.fake_pubsub",
    "FakeRPC": "volttron.client.testing.fake_rpc",
    "RpcCall": "volttron.client.testing.fake_rpc",
    "FakeConfigStoreService": "volttron.client.testing.fake_config_store",
    "VolttronPlatform": "volttron.client.testing.platform",
    "PlatformError": "volttron.client.testing.platform",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
