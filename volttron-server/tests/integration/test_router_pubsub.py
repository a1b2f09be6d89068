"""Pub/sub served by the router of a real `volttron` process (reference §2.6, §2.13)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

HEADERS = {"min_compatible_version": "3.0", "max_compatible_version": ""}


def subscribe(client, prefix, bus: str = "", all_platforms: bool = False):
    request = json.dumps({"prefix": prefix, "bus": bus, "all_platforms": all_platforms})
    return client.request("", "pubsub", "subscribe", request)


def publish(client, topic: str, message, bus: str = ""):
    body = json.dumps({"bus": bus, "headers": HEADERS, "message": message})
    return client.request("", "pubsub", "publish", topic, body)


def publishes(messages):
    return [m for m in messages if m.subsystem == b"pubsub" and m.args[:1] == [b"publish"]]


def test_publish_subscribe_round_trip(running_platform) -> None:
    alice = running_platform.client("alice")
    carol = running_platform.client("carol", address=running_platform.vip_address)
    reply = subscribe(carol, ["devices", "devices/x"])
    assert (reply.peer, reply.user, reply.args) == (b"", b"carol", [b"request_response", b"true"])
    ack = publish(alice, "devices/x", 42)
    assert (ack.user, ack.args) == (b"alice", [b"request_response", b"1"])
    got = carol.recv_until(lambda m: m.subsystem == b"pubsub" and m.args[0] == b"publish")
    assert got.frames[:7] == [b"", b"VIP1", b"alice", ack.msg_id, b"pubsub", b"publish", b"devices/x"]
    assert json.loads(got.args[2]) == {"sender": "alice", "bus": "", "headers": HEADERS, "message": 42}
    assert publishes(carol.drain(0.2)) == [], "one copy although two prefixes match"


def test_bus_unsubscribe_and_drop_on_disconnect(running_platform) -> None:
    alice = running_platform.client("alice")
    carol = running_platform.client("carol")
    subscribe(carol, "t", bus="special")
    assert publish(alice, "t/1", 1).args[1] == b"0"
    assert publish(alice, "t/1", 1, bus="special").args[1] == b"1"
    carol.request("", "pubsub", "unsubscribe", json.dumps({"internal": {"prefix": None, "bus": "special"}}))
    assert publish(alice, "t/1", 1, bus="special").args[1] == b"0"
    subscribe(carol, "")
    assert publish(alice, "anything", 1).args[1] == b"1"
    carol.close()
    alice.recv_until(lambda m: m.subsystem == b"peerlist" and m.args[:2] == [b"drop", b"carol"], timeout=2)
    assert publish(alice, "anything", 1).args[1] == b"0"


def test_list_and_synchronize(running_platform) -> None:
    carol = running_platform.client("carol")
    subscribe(carol, ["a/1", "b"])
    state = {"subscriptions": {"internal": {"": ["c", "a/1"]}}}
    carol.send("", "pubsub", "synchronize", "connected", json.dumps(state))
    request = {"prefix": "", "all_platforms": False, "subscribed": True, "reverse": False, "bus": ""}
    listing = carol.request("", "pubsub", "list", json.dumps(request))
    assert listing.args[0] == b"list_response"
    assert sorted(json.loads(listing.args[1])) == [["", "a/1", True], ["", "c", True]]


def test_protected_topic_needs_capability(platform_factory) -> None:
    platform = platform_factory()
    platform.home.mkdir(mode=0o700, parents=True)
    (platform.home / "protected_topics.json").write_text(
        json.dumps({"write-protect": [{"topic": "secure/", "capabilities": ["publish_secure"]}]}))
    platform.start()
    allowed = platform.client("allowed", capabilities={"publish_secure": None})
    other = platform.client("other")
    listener = platform.client("listener")
    subscribe(listener, "secure")
    refused = publish(other, "secure/x", 1)
    assert refused.subsystem == b"error" and refused.user == b"other"
    assert refused.args[0] == b"-32001" and refused.args[2:] == [b"", b"pubsub"]
    assert publish(allowed, "secure/x", 1).args == [b"request_response", b"1"]
    assert [json.loads(m.args[2])["sender"] for m in publishes(listener.drain(0.2))] == ["allowed"]


def test_slow_subscriber_never_blocks_the_router(running_platform) -> None:
    """A subscriber that never reads loses publishes beyond its queue; everyone else is served."""
    slow = running_platform.client("slow", hwm=10)
    subscribe(slow, "flood")
    fast = running_platform.client("fast")
    subscribe(fast, "flood")
    alice = running_platform.client("alice")
    body = json.dumps({"bus": "", "headers": {}, "message": "x" * 1000})
    delivered = acks = 0
    for batch in range(20):
        for i in range(500):
            alice.send("", "pubsub", "publish", "flood/1", body, msg_id=f"{batch}.{i}")
        last = f"{batch}.499".encode()
        alice.recv_until(lambda m, last=last: m.msg_id == last, timeout=10)
        acks += 1 + sum(1 for m in alice.pending if m.args[:1] == [b"request_response"])
        alice.pending.clear()
        while delivered < 500 * (batch + 1):
            got = fast.recv(timeout=10)
            delivered += got.args[:1] == [b"publish"]
    assert (acks, delivered) == (10_000, 10_000)
    assert alice.request("", "ping", "ping", timeout=2).args == [b"pong"]
    assert "not keeping up" in running_platform.log_text()
