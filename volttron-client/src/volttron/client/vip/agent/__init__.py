"""The agent side of VIP: ``from volttron.client.vip.agent import Agent, Core, RPC, PubSub``.

The names match the original ``volttron.platform.vip.agent`` so that agents port by changing
imports only.
"""

from volttron.client.vip.agent import errors
from volttron.client.vip.agent.agent import Agent, Subsystems
from volttron.client.vip.agent.core import Core
from volttron.client.vip.agent.errors import (
    Again,
    ConnectError,
    MethodNotFound,
    RemoteError,
    ResultTimeout,
    Unauthorized,
    UnknownSubsystem,
    Unreachable,
    VIPError,
)
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems import (
    RPC,
    Auth,
    Channel,
    ConfigStore,
    Health,
    Heartbeat,
    Hello,
    PeerList,
    Ping,
    PubSub,
    Query,
    WebSubSystem,
)

BasicAgent = Agent

__all__ = [
    "RPC",
    "Again",
    "Agent",
    "AsyncResult",
    "Auth",
    "BasicAgent",
    "Channel",
    "ConfigStore",
    "ConnectError",
    "Core",
    "Health",
    "Heartbeat",
    "Hello",
    "MethodNotFound",
    "PeerList",
    "Ping",
    "PubSub",
    "Query",
    "RemoteError",
    "ResultTimeout",
    "Subsystems",
    "Unauthorized",
    "UnknownSubsystem",
    "Unreachable",
    "VIPError",
    "WebSubSystem",
    "errors",
]
