"""``agent.vip`` in a unit test: fakes where the platform would answer, real subsystems elsewhere.

========== ====================================================================================
pubsub     :class:`~volttron.client.testing.fake_pubsub.FakePubSub`
rpc        :class:`~volttron.client.testing.fake_rpc.FakeRPC`
config     the real ``ConfigStore`` subsystem, talking to a
           :class:`~volttron.client.testing.fake_config_store.FakeConfigStoreService`
health     the real ``Health`` subsystem (its alerts are publications on the fake pub/sub)
heartbeat  the real ``Heartbeat`` subsystem (timed by the test clock, publishing on the fake
           pub/sub)
peerlist   :class:`FakePeerList`: the peers the fake RPC can reach
query      :class:`FakeQuery`: values the test sets
ping/hello answered locally
channel,   :class:`UnavailableSubsystem` when enabled: they need a platform (use an integration
web, auth  test); None otherwise, as on a real agent
========== ====================================================================================
"""

from __future__ import annotations

import errno
from typing import Any

from volttron.client.testing.fake_pubsub import FakePubSub
from volttron.client.testing.fake_rpc import FakeRPC
from volttron.client.vip.agent.dispatch import Signal
from volttron.client.vip.agent.errors import Unreachable
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.client.vip.agent.subsystems.configstore import ConfigStore
from volttron.client.vip.agent.subsystems.health import Health
from volttron.client.vip.agent.subsystems.heartbeat import Heartbeat
from volttron.utils.errors import VolttronError


class UnavailableSubsystemError(VolttronError):
    """Agent code used a subsystem the unit-test kit does not fake."""


class UnavailableSubsystem:
    """Stands for ``vip.channel``, ``vip.web`` or ``vip.auth``: any use raises a clear error."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise UnavailableSubsystemError(
            f"vip.{self._name}.{attribute}: the unit-test kit has no fake {self._name} subsystem; "
            "test this with the volttron_platform fixture"
        )


class FakePeerList(SubsystemBase):
    """``vip.peerlist``: the agent itself and every peer the fake RPC answers for."""

    def __init__(self, core: Any, rpc: FakeRPC) -> None:
        super().__init__(core)
        self._rpc = rpc
        self.onadd = Signal("onadd")
        self.ondrop = Signal("ondrop")

    @property
    def peers_list(self) -> set[str]:
        """The reachable identities."""
        return {self.core.identity, *self._rpc._peers}

    def list(self) -> AsyncResult:
        """The reachable identities, sorted."""
        return _done(sorted(self.peers_list))

    __call__ = list


class FakeQuery(SubsystemBase):
    """``vip.query``: ``query(prop)`` answers from :attr:`values`, which a test may change."""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.values: dict[str, Any] = {
            "instance-name": core.instance_name,
            "serverkey": None,
            "addresses": [],
            "local_address": None,
        }

    def query(self, prop: str, peer: str = "") -> AsyncResult:
        """The value of ``prop`` (None when unknown, as the router answers)."""
        return _done(self.values.get(prop))


class FakePing(SubsystemBase):
    """``vip.ping``: answers for the peers the fake RPC can reach."""

    def __init__(self, core: Any, peers: FakePeerList) -> None:
        super().__init__(core)
        self._peers = peers

    def ping(self, peer: str, *args: Any) -> AsyncResult:
        """Resolves to ``[peer]`` like the router's answer."""
        return _done([peer])

    __call__ = ping

    def ping_peer(self, peer: str, *args: Any) -> AsyncResult:
        """Echoes ``args`` from a reachable peer; Unreachable otherwise."""
        if peer in self._peers.peers_list:
            return _done(list(args))
        result = AsyncResult(description=f"ping of {peer!r}")
        result.set_exception(Unreachable(errno.EHOSTUNREACH, "no such peer", peer, "ping"))
        return result


class FakeHello(SubsystemBase):
    """``vip.hello``: the welcome the router would send."""

    def hello(self, peer: str = "") -> AsyncResult:
        """``['welcome', '1.0', '', <identity>]``."""
        return _done(["welcome", "1.0", "", self.core.identity])


class FakeSubsystems:
    """``agent.vip`` built by the harness; the arguments are those of the real ``Subsystems``."""

    def __init__(
        self,
        owner: Any,
        core: Any,
        heartbeat_autostart: bool,
        heartbeat_period: float,
        enable_store: bool,
        enable_web: bool,
        enable_channel: bool,
        enable_auth: bool,
    ) -> None:
        self.rpc = FakeRPC(core, owner, auth_enabled=enable_auth)
        self.pubsub = FakePubSub(core, owner)
        self.peerlist = FakePeerList(core, self.rpc)
        self.ping = FakePing(core, self.peerlist)
        self.hello = FakeHello(core)
        self.query = FakeQuery(core)
        self.health = Health(core, owner, self.rpc, self.pubsub)
        self.heartbeat = Heartbeat(
            core, owner, self.rpc, self.pubsub, self.health, heartbeat_autostart, heartbeat_period
        )
        self.config = ConfigStore(core, owner, self.rpc, auth_enabled=False) if enable_store else None
        self.channel = UnavailableSubsystem("channel") if enable_channel else None
        self.web = UnavailableSubsystem("web") if enable_web else None
        self.auth = UnavailableSubsystem("auth") if enable_auth else None
        for subsystem in (
            self.peerlist,
            self.ping,
            self.rpc,
            self.hello,
            self.query,
            self.pubsub,
            self.health,
            self.heartbeat,
            self.config,
        ):
            if subsystem is not None:
                core.add_extension(subsystem)


def _done(value: Any) -> AsyncResult:
    result = AsyncResult(description="fake request")
    result.set(value)
    return result
