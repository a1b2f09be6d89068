"""The agent subsystems, one module each, all written against the message-bus interface.

Importing this package imports every subsystem class (for ``from ...subsystems import RPC``);
nothing registers itself: :class:`~volttron.client.vip.agent.Agent` builds the ones it needs.
"""

from volttron.client.vip.agent.subsystems.auth import Auth
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.client.vip.agent.subsystems.channel import Channel
from volttron.client.vip.agent.subsystems.configstore import ConfigStore
from volttron.client.vip.agent.subsystems.health import Health
from volttron.client.vip.agent.subsystems.heartbeat import Heartbeat
from volttron.client.vip.agent.subsystems.hello import Hello
from volttron.client.vip.agent.subsystems.peerlist import PeerList
from volttron.client.vip.agent.subsystems.ping import Ping
from volttron.client.vip.agent.subsystems.pubsub import PubSub
from volttron.client.vip.agent.subsystems.query import Query
from volttron.client.vip.agent.subsystems.rpc import RPC
from volttron.client.vip.agent.subsystems.web import WebSubSystem

__all__ = [
    "RPC",
    "Auth",
    "Channel",
    "ConfigStore",
    "Health",
    "Heartbeat",
    "Hello",
    "PeerList",
    "Ping",
    "PubSub",
    "Query",
    "SubsystemBase",
    "WebSubSystem",
]
