"""The :class:`Agent` base class (docs/protocol.md §4.1)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from volttron.client.vip.agent.clock import Clock
from volttron.client.vip.agent.core import ConnectionFactory, Core
from volttron.client.vip.agent.subsystems.auth import Auth
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

_log = logging.getLogger(__name__)

# Arguments the original Agent (or vip_main) passed that have no effect here.
_IGNORED_KWARGS = frozenset(
    {
        "config_path",
        "tag_vip_id",
        "tag_refresh_interval",
    }
)


def auth_enabled_from_env(env: Mapping[str, str] | None = None) -> bool:
    """``AUTH_ENABLED`` as the platform sets it for its agents: anything but false/0/no means on."""
    value = (os.environ if env is None else env).get("AUTH_ENABLED")
    return value is None or value.strip().lower() not in ("false", "0", "no", "off")


class Subsystems:
    """``agent.vip``: the subsystems of one agent as attributes (``vip.rpc``, ``vip.pubsub`` ...)."""

    def __init__(
        self,
        owner: Agent,
        core: Core,
        heartbeat_autostart: bool,
        heartbeat_period: float,
        enable_store: bool,
        enable_web: bool,
        enable_channel: bool,
        enable_auth: bool,
    ) -> None:
        self.peerlist = PeerList(core)
        self.ping = Ping(core)
        self.rpc = RPC(core, owner, auth_enabled=enable_auth)
        self.hello = Hello(core)
        self.query = Query(core)
        self.pubsub = PubSub(core, owner)
        self.health = Health(core, owner, self.rpc, self.pubsub)
        self.heartbeat = Heartbeat(
            core, owner, self.rpc, self.pubsub, self.health, heartbeat_autostart, heartbeat_period
        )
        self.channel = Channel(core) if enable_channel else None
        self.config = ConfigStore(core, owner, self.rpc, enable_auth) if enable_store else None
        self.web = WebSubSystem(core, owner, self.rpc) if enable_web else None
        self.auth = Auth(core, owner, self.rpc) if enable_auth else None
        self.peerlist.ondrop.connect(self.rpc.peer_dropped, self.rpc)
        if self.channel is not None:
            self.peerlist.ondrop.connect(self.channel.peer_dropped, self.channel)
        for subsystem in (
            self.peerlist,
            self.ping,
            self.rpc,
            self.hello,
            self.query,
            self.pubsub,
            self.health,
            self.heartbeat,
            self.channel,
            self.config,
            self.web,
            self.auth,
        ):
            if subsystem is not None:
                core.add_extension(subsystem)


class Agent:
    """Base class of every agent: ``self.core`` runs it, ``self.vip`` holds its subsystems.

    Subclass it, decorate methods (``@Core.receiver('onstart')``, ``@RPC.export``,
    ``@PubSub.subscribe('pubsub', 'devices')``, ``@Core.schedule(periodic(60))``) and start it with
    :func:`volttron.client.vip_main`. Every agent exports ``agent.version`` over RPC.

    The positional order of the arguments is the original's (docs/protocol.md §4.1).
    ``reconnect_interval`` is in milliseconds, as in the original. ``enable_fncs`` and the
    ``volttron_central_*`` arguments are accepted and have no effect. ``connection_factory``
    (keyword only) replaces the message bus and ``clock`` (keyword only,
a :class:`~volttron.client.vip.agent.clock.Clock`) the time every timer of the agent follows;
the testing kit passes an in-memory connection and a clock it advances by hand. Other keyword
    arguments the original passed (``config_path``...) are accepted and ignored.
    """

    def __init__(
        self,
        identity: str | None = None,
        address: str | None = None,
        context: Any = None,
        publickey: str | None = None,
        secretkey: str | None = None,
        serverkey: str | None = None,
        heartbeat_autostart: bool = True,
        heartbeat_period: float = 60,
        volttron_home: str | None = None,
        agent_uuid: str | None = None,
        enable_store: bool = True,
        enable_web: bool = False,
        enable_channel: bool = False,
        reconnect_interval: float | None = None,
        version: str = "0.1",
        enable_fncs: bool = False,
        instance_name: str | None = None,
        message_bus: str | None = None,
        volttron_central_address: str | None = None,
        volttron_central_instance_name: str | None = None,
        enable_auth: bool | None = None,
        *,
        connection_factory: ConnectionFactory | None = None,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _IGNORED_KWARGS)
        if unknown:
            _log.warning("%s ignores unknown arguments: %s", type(self).__name__, ", ".join(unknown))
        if enable_auth is None:
            enable_auth = auth_enabled_from_env()
        self.core = Core(
            self,
            address=address,
            identity=identity,
            context=context,
            publickey=publickey,
            secretkey=secretkey,
            serverkey=serverkey,
            volttron_home=volttron_home,
            agent_uuid=agent_uuid,
            reconnect_interval=reconnect_interval / 1000.0 if reconnect_interval else None,
            version=version,
            instance_name=instance_name,
            messagebus=message_bus or os.environ.get("MESSAGEBUS") or "zmq",
            connection_factory=connection_factory,
            clock=clock,
        )
        self.vip = Subsystems(
            self,
            self.core,
            heartbeat_autostart,
            heartbeat_period,
            enable_store,
            enable_web,
            enable_channel,
            enable_auth,
        )
        self.vip.rpc.export(self.core.version, "agent.version")
