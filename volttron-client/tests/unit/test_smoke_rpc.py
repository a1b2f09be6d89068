from __future__ import annotations

import gevent
import pytest

from volttron.client.vip.agent import RPC, Agent, Core, PubSub, Unreachable
from volttron.client.vip.agent.errors import MethodNotFound, RemoteError


class Bob(Agent):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.started = False
        self.seen = []

    @Core.receiver("onstart")
    def on_start(self, sender, **kwargs):
        self.started = True

    @RPC.export
    def add(self, a, b):
        return a + b

    @RPC.export("fail")
    def failing(self):
        raise ValueError("nope")

    @PubSub.subscribe("pubsub", "devices")
    def on_devices(self, peer, sender, bus, topic, headers, message):
        self.seen.append((peer, sender, bus, topic, message))


def test_smoke(start_agent, router):
    bob = start_agent("bob", Bob)
    alice = start_agent("alice")
    assert alice.vip.rpc.call("bob", "add", 1, 2).get(timeout=2) == 3
    with pytest.raises(ValueError):
        alice.vip.rpc.call("bob", "fail").get(timeout=2)
    with pytest.raises(RemoteError):
        alice.vip.rpc.call("bob", "fail").get(timeout=2)
    with pytest.raises(MethodNotFound):
        alice.vip.rpc.call("bob", "nothing").get(timeout=2)
    with pytest.raises(Unreachable):
        alice.vip.rpc.call("carol", "x").get(timeout=2)
    assert alice.vip.pubsub.publish("pubsub", "devices/x", message=42).get(timeout=2) == 1
    with gevent.Timeout(2):
        while not bob.seen:
            gevent.sleep(0.01)
    assert bob.seen == [("pubsub", "alice", "", "devices/x", 42)]
    assert bob.started
