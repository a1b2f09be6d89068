"""Pub/sub over the in-memory router: wire form, matching, resynchronisation, callbacks."""

from __future__ import annotations

import json

import gevent
import pytest

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent import RPC, Agent, PubSub
from volttron.client.vip.agent.dispatch import SerialExecutor
from volttron.utils import jsonrpc
from volttron.utils.errors import FrameError


class Listener(Agent):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.got = []

    @PubSub.subscribe("pubsub", "devices")
    def on_devices(self, peer, sender, bus, topic, headers, message):
        self.got.append(("devices", peer, sender, bus, topic, headers, message))

    @PubSub.subscribe("pubsub", ["devices/campus", "alerts"])
    def on_campus(self, peer, sender, bus, topic, headers, message):
        self.got.append(("campus", topic))

    @RPC.export
    def ping_back(self):
        return "pong"


def test_publish_wire_form_matches_reference(start_agent, router) -> None:
    alice = start_agent("alice")
    assert alice.vip.pubsub.publish("pubsub", "devices/x", message=42).get(timeout=2) == 0
    sent = router.messages("pubsub", "alice")[-1]
    assert sent.peer == "" and sent.user == ""
    assert sent.args == [
        b"publish",
        b"devices/x",
        b'{"bus": "", "headers": {"min_compatible_version": "3.0", "max_compatible_version": ""}, '
        b'"message": 42}',
    ]


def test_user_headers_come_first_and_are_not_changed(start_agent, router) -> None:
    alice = start_agent("alice")
    headers = {"Date": "2024-01-01T00:00:00+00:00"}
    alice.vip.pubsub.publish("pubsub", "t", headers=headers, message={"a": 1}, bus="b2")
    body = json.loads(router.messages("pubsub", "alice")[-1].args[2])
    assert list(body["headers"]) == ["Date", "min_compatible_version", "max_compatible_version"]
    assert body["bus"] == "b2" and headers == {"Date": "2024-01-01T00:00:00+00:00"}


def test_subscribe_wire_form_and_runtime_callback(start_agent, router, wait_until) -> None:
    bob, alice = start_agent("bob"), start_agent("alice")
    seen = []
    assert bob.vip.pubsub.subscribe("pubsub", "devices", lambda *a: seen.append(a)).get(timeout=2) is True
    sent = [m for m in router.messages("pubsub", "bob") if m.args[0] == b"subscribe"][0]
    assert sent.args[1] == b'{"prefix": "devices", "bus": "", "all_platforms": false}'
    alice.vip.pubsub.publish("pubsub", "devices/x", headers={"h": 1}, message=[1, 2])
    wait_until(lambda: seen)
    peer, sender, bus, topic, headers, message = seen[0]
    assert (peer, sender, bus, topic, message) == ("pubsub", "alice", "", "devices/x", [1, 2])
    assert headers["h"] == 1 and headers["min_compatible_version"] == "3.0"


def test_prefix_matching_and_one_call_per_callback(start_agent, router, wait_until) -> None:
    listener, alice = start_agent("listener", Listener), start_agent("alice")
    wait_until(lambda: router.subscriptions.get("listener"))
    for topic in ("devices/campus/b1", "devicesX", "alerts/a", "other"):
        alice.vip.pubsub.publish("pubsub", topic, message=1)
    alice.vip.pubsub.publish("pubsub", "alerts/marker", message=1)  # delivered after all of the above
    wait_until(lambda: ("campus", "alerts/marker") in listener.got)
    names = sorted((g[0], g[4] if g[0] == "devices" else g[1]) for g in listener.got[:-1])
    assert listener.got[-1] == ("campus", "alerts/marker")
    assert names == [
        ("campus", "alerts/a"),
        ("campus", "devices/campus/b1"),
        ("devices", "devices/campus/b1"),
        ("devices", "devicesX"),
    ]


def test_buses_are_separate(start_agent, wait_until) -> None:
    bob, alice = start_agent("bob"), start_agent("alice")
    seen = []
    bob.vip.pubsub.subscribe("pubsub", "", lambda *a: seen.append((a[2], a[3])), bus="b2").get(timeout=2)
    alice.vip.pubsub.publish("pubsub", "x", message=1)
    alice.vip.pubsub.publish("pubsub", "x", message=1, bus="b2")
    alice.vip.pubsub.publish("pubsub", "marker", message=1, bus="b2")  # arrives after the others
    wait_until(lambda: ("b2", "marker") in seen)
    assert seen == [("b2", "x"), ("b2", "marker")]


def test_unsubscribe_and_list(start_agent, router, wait_until) -> None:
    bob = start_agent("bob")
    first, second = [], []

    def cb1(*a):
        first.append(a)

    def cb2(*a):
        second.append(a)

    bob.vip.pubsub.subscribe("pubsub", "a", cb1).get(timeout=2)
    bob.vip.pubsub.subscribe("pubsub", "a", cb2).get(timeout=2)
    bob.vip.pubsub.subscribe("pubsub", "b", cb1).get(timeout=2)
    assert bob.vip.pubsub.list("pubsub").get(timeout=2) == [["", "a", True], ["", "b", True]]
    listed = [m for m in router.messages("pubsub", "bob") if m.args[0] == b"list"][0]
    assert listed.args[1] == (
        b'{"prefix": "", "all_platforms": false, "subscribed": true, "reverse": false, "bus": ""}'
    )
    assert bob.vip.pubsub.unsubscribe("pubsub", "a", cb1).get(timeout=2) is True
    assert not [m for m in router.messages("pubsub", "bob") if m.args[0] == b"unsubscribe"]  # cb2 keeps "a"
    bob.vip.pubsub.unsubscribe("pubsub", None, cb1).get(timeout=2)
    sent = [m for m in router.messages("pubsub", "bob") if m.args[0] == b"unsubscribe"][-1]
    assert json.loads(sent.args[1]) == {"internal": {"prefix": ["b"], "bus": ""}}
    bob.vip.pubsub.unsubscribe("pubsub", None, None).get(timeout=2)
    sent = [m for m in router.messages("pubsub", "bob") if m.args[0] == b"unsubscribe"][-1]
    assert sent.args[1] == b'{"internal": {"prefix": null, "bus": ""}}'
    assert bob.vip.pubsub.subscriptions() == {"internal": {"": []}, "all": {}}


def test_synchronize_message_lists_every_subscription(start_agent, router) -> None:
    listener = start_agent("listener", Listener)
    listener.vip.pubsub.subscribe("pubsub", "x", lambda *a: None, all_platforms=True).get(timeout=2)
    listener.vip.pubsub.synchronize()
    sync = [m for m in router.messages("pubsub", "listener") if m.args[0] == b"synchronize"][-1]
    assert sync.id == "" and sync.args[1] == b"connected"
    body = json.loads(sync.args[2])
    assert body == {
        "subscriptions": {"internal": {"": ["devices", "devices/campus", "alerts"]}, "all": {"": ["x"]}}
    }


def test_unwanted_delivery_triggers_one_resync(start_agent, router, wait_until) -> None:
    bob = start_agent("bob")
    markers = []
    bob.vip.pubsub.subscribe("pubsub", "marker", lambda *a: markers.append(a[3])).get(timeout=2)
    conn = bob.core.connection
    body = b'{"sender": "x", "bus": "", "headers": {}, "message": 1}'
    before = len([m for m in router.messages("pubsub", "bob") if m.args[0] == b"synchronize"])
    for _ in range(3):
        conn.deliver(Message("", "pubsub", [b"publish", b"stray/topic", body], "1", "x"))
    # the marker is delivered after the three strays: once it is in, every resync they caused is spawned,
    # and a round trip to the router after that lets those greenlets send
    conn.deliver(Message("", "pubsub", [b"publish", b"marker", body], "2", "x"))
    wait_until(lambda: markers == ["marker"])
    bob.vip.pubsub.list("pubsub").get(timeout=2)
    after = len([m for m in router.messages("pubsub", "bob") if m.args[0] == b"synchronize"])
    assert after == before + 1  # rate limited


def test_callback_may_wait_on_rpc_and_failures_are_isolated(start_agent, wait_until) -> None:
    responder = start_agent("responder", Listener)
    bob, alice = start_agent("bob"), start_agent("alice")
    answers = []

    def blocking(*args):
        answers.append(bob.vip.rpc.call("responder", "ping_back").get(timeout=2))

    def broken(*args):
        raise RuntimeError("callback bug")

    bob.vip.pubsub.subscribe("pubsub", "q", broken).get(timeout=2)
    bob.vip.pubsub.subscribe("pubsub", "q", blocking).get(timeout=2)
    alice.vip.pubsub.publish("pubsub", "q/1", message=1)
    alice.vip.pubsub.publish("pubsub", "q/2", message=1)
    wait_until(lambda: answers == ["pong", "pong"])
    assert responder.got == []


def test_deliveries_keep_their_order(start_agent, wait_until) -> None:
    bob, alice = start_agent("bob"), start_agent("alice")
    seen = []
    bob.vip.pubsub.subscribe("pubsub", "n", lambda *a: seen.append(a[5])).get(timeout=2)
    for i in range(500):
        alice.vip.pubsub.publish("pubsub", "n", message=i)
    wait_until(lambda: len(seen) == 500)
    assert seen == list(range(500))


@pytest.mark.parametrize("frame,count", [(b"3", 3), (b"true", True), (b"\x82\x00\x00\x00", 130)])
def test_request_response_counts(start_agent, frame, count) -> None:
    bob = start_agent("bob")
    result = bob.vip.pubsub._results.next()
    bob.core.connection.deliver(Message("", "pubsub", [b"request_response", frame], result.ident, "bob"))
    assert result.get(timeout=2) == count


def test_protected_topic_refusal_fails_the_publish(start_agent) -> None:
    bob = start_agent("bob")
    result = bob.vip.pubsub._results.next()
    error = [b"-32001", b"to publish to topic x requires capabilities ['c']", b"", b"pubsub"]
    bob.core.connection.deliver(Message("", "error", error, result.ident, ""))
    with pytest.raises(jsonrpc.Error) as info:
        result.get(timeout=2)
    assert info.value.code == -32001 and "requires capabilities" in str(info.value)


def test_unserialisable_message_fails_at_publish(start_agent) -> None:
    with pytest.raises(FrameError, match="JSON serialisable"):
        start_agent("bob").vip.pubsub.publish("pubsub", "t", message=object())


def test_malformed_deliveries_are_dropped(start_agent, wait_until) -> None:
    listener = start_agent("listener", Listener)
    conn = listener.core.connection
    conn.deliver(Message("", "pubsub", [b"publish", b"devices/x", b"not json"], "1", "x"))
    conn.deliver(Message("", "pubsub", [b"publish", b"devices/x", b"[1]"], "2", "x"))
    conn.deliver(
        Message("", "pubsub", [b"publish", b"devices/x", b'{"sender": "ok", "message": 3}'], "3", "x")
    )
    wait_until(lambda: listener.got)
    assert listener.got[0][2] == "ok" and listener.got[0][6] == 3 and listener.got[0][5] == {}


def test_serial_executor_back_pressure_and_drops(wait_until) -> None:
    executor = SerialExecutor("t", high_water=5, low_water=1, limit=10, stall_seconds=0.05)
    done = []
    for i in range(8):
        executor.submit(done.append, i)
    executor.wait_capacity()  # waits until the worker drained below low water
    assert len(done) >= 7
    gate = gevent.event.Event()
    executor.submit(gate.wait)  # a stuck callback
    wait_until(lambda: executor.statistics()["queued"] == 0)  # the worker has taken it
    accepted = [executor.submit(done.append, i) for i in range(20)]
    executor.wait_capacity()  # returns although the queue is full: the callback is stuck
    assert accepted.count(False) >= 10 and executor.statistics()["dropped"] >= 10
    gate.set()
    executor.stop()


def test_subscribing_before_connecting_is_sent_with_the_welcome(router, start_agent, wait_until) -> None:
    class Early(Agent):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seen = []
            assert self.vip.pubsub.subscribe("pubsub", "early", self.on_early).get(timeout=1) is True

        def on_early(self, *args):
            self.seen.append(args[3])

    early = start_agent("early", Early)
    assert not [m for m in router.messages("pubsub", "early") if m.args[0] == b"subscribe"]
    wait_until(lambda: router.subscriptions.get("early") == {"": {"early"}})
    start_agent("alice").vip.pubsub.publish("pubsub", "early/x", message=1)
    wait_until(lambda: early.seen == ["early/x"])
