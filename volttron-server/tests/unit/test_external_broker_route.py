"""external_rpc on a RabbitMQ platform: through the broker when no ZeroMQ link names the platform (§6.5).

A fake broker route stands in for the router's broker link; this platform is ``A``.
"""

from __future__ import annotations

import json

import pytest

from volttron.server.router.routing import EHOSTUNREACH, PeerUnreachable, VipRouter
from volttron.server.services.external.service import ExternalRouting, LinkDown
from volttron.server.services.pubsub.service import PubSubService
from volttron.utils.jsonrpc import UNAVAILABLE_AGENT


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send(self, frames: list[bytes]) -> None:
        if frames[0] == b"gone":
            raise PeerUnreachable(frames[0])
        self.sent.append(list(frames))


class FakeBroker:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.sent: list[tuple[str, str, str, bytes, bytes, dict]] = []

    def send_external(self, to_platform: str, to_peer: str, from_peer: str, user: bytes, msg_id: bytes,
                      body: bytes) -> None:
        if not self.up:
            raise LinkDown("no link to the broker")
        self.sent.append((to_platform, to_peer, from_peer, user, msg_id, json.loads(body)))


@pytest.fixture
def wired():
    sock = FakeSocket()
    router = VipRouter(b"rid", sock.send)
    pubsub = PubSubService(router)
    pubsub.attach()
    broker = FakeBroker()
    routing = ExternalRouting(router, pubsub, "A", broker=broker)
    routing.attach()
    return router, routing, broker, sock


REQUEST = json.dumps({"jsonrpc": "2.0", "id": "r1", "method": "echo", "params": [1]})


def send_platform(router: VipRouter, to_platform: str = "B", to_peer: str = "callee") -> None:
    envelope = {"to_platform": to_platform, "to_peer": to_peer, "from_platform": "", "from_peer": "",
                "args": [REQUEST]}
    router.route([b"caller", b"", b"VIP1", b"caller", b"m1", b"external_rpc", b"send_platform",
                  json.dumps(envelope).encode()])


def test_a_platform_without_a_zeromq_link_is_reached_through_the_broker(wired) -> None:
    router, routing, broker, _sock = wired
    send_platform(router)
    [(to_platform, to_peer, from_peer, user, msg_id, envelope)] = broker.sent
    assert (to_platform, to_peer, from_peer, user, msg_id) == ("B", "callee", "caller", b"caller", b"m1")
    assert (envelope["from_platform"], envelope["from_peer"], envelope["args"]) == ("A", "caller", [REQUEST])
    assert routing.rpc_sent == 1


def test_a_broker_without_a_link_is_refused_at_once(wired) -> None:
    router, _routing, broker, sock = wired
    broker.up = False
    send_platform(router)
    [error] = sock.sent
    assert error[0] == b"caller" and error[5] == b"error" and int(error[6]) == EHOSTUNREACH
    assert b"cannot be reached through the broker" in error[7]


def test_what_no_link_carried_fails_the_caller_with_ehostunreach(wired) -> None:
    _router, routing, _broker, sock = wired
    envelope = {"to_platform": "B", "to_peer": "callee", "from_platform": "A", "from_peer": "caller",
                "args": [REQUEST]}
    routing.undeliverable(b"m1", json.dumps(envelope).encode(), ours=True)
    [error] = sock.sent
    assert error[:2] == [b"caller", b""] and error[4] == b"m1" and int(error[6]) == EHOSTUNREACH
    assert b"no federation or shovel carries messages for 'callee' to platform 'B'" in error[7]
    answers_only = dict(envelope, args=[json.dumps({"jsonrpc": "2.0", "id": "r1", "result": 1})])
    routing.undeliverable(b"m2", json.dumps(answers_only).encode(), ours=True)
    assert len(sock.sent) == 1  # a lost answer is nobody's error


def test_another_instances_call_for_a_missing_agent_is_answered_with_32006(wired) -> None:
    _router, routing, broker, _sock = wired
    envelope = {"to_platform": "A", "to_peer": "ghost", "from_platform": "B", "from_peer": "caller",
                "args": [REQUEST]}
    routing.undeliverable(b"m1", json.dumps(envelope).encode(), ours=False)
    [(to_platform, to_peer, from_peer, _user, msg_id, reply)] = broker.sent
    assert (to_platform, to_peer, from_peer, msg_id) == ("B", "caller", "ghost", b"m1")
    [answer] = [json.loads(text) for text in reply["args"]]
    assert answer["id"] == "r1" and answer["error"]["code"] == UNAVAILABLE_AGENT
    routing.undeliverable(b"m2", json.dumps(dict(envelope, to_platform="C")).encode(), ours=False)
    routing.undeliverable(b"m3", b"not json", ours=False)
    assert len(broker.sent) == 1  # not ours to answer, or not an envelope
