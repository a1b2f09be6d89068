"""Agent library of the modular VOLTTRON platform.

``volttron.client`` holds everything an agent or a tool needs to take part in a platform: the
:class:`~volttron.client.vip.agent.Agent` base class, the VOLTTRON Interconnect Protocol and its
subsystems, the message-bus connections, and the ``vctl``/``vcfg`` commands. It never imports
``volttron.server``.

Importing this package is cheap: it loads neither gevent nor ZeroMQ and patches nothing. The
common entry points are attributes loaded on first use::

    from volttron.client import Agent, Core, RPC, PubSub, vip_main, build_agent
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Agent": "volttron.client.vip.agent",
    "Core": "volttron.client.vip.agent",
    "RPC": "volttron.client.vip.agent",
    "PubSub": "volttron.client.vip.agent",
    "vip_main": "volttron.client.runner",
    "build_agent": "volttron.client.runner",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
