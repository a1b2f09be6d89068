"""The RabbitMQ back-end against a real broker: delivery, confirms, losing the link and getting it back.

The broker's connections are closed with ``rabbitmqctl close_connection`` (only this test's own),
which other tests running at the same time never notice.
"""

from __future__ import annotations

import time

import gevent
import gevent.event
import pytest

from volttron.client.messagebus.base import BusEvent, BusTimeout, ConnectionParams, Message, connection_class
from volttron.client.messagebus.rmq_testing import broker_instance
from volttron.client.runner import build_agent
from volttron.client.testing.modules import load_beside
from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import Agent
from volttron.client.vip.agent.errors import Again, ConnectError, VIPError
from volttron.utils.config import load_config

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def load(name: str):
    """A helper module of this folder, imported once by path."""
    return load_beside(__file__, name, f"volttron_client_tests_{name}")


harness = load("rmq_harness")
poll = wait_until


@pytest.fixture
def broker(tmp_path):
    """A prepared vhost (exchanges, platform user) and a URL logging in as the platform user."""
    with broker_instance("conn") as instance:
        home = tmp_path / "home"
        instance.prepare_home(home)
        config = load_config(home / "rabbitmq_config.yml")
        instance.admin_url = instance.url(config["user"], config["password"])
        yield instance


@pytest.fixture
def connect(broker):
    made = []

    def open_(identity: str, address: str | None = None):
        events: list[BusEvent] = []
        conn = connection_class("rmq")(ConnectionParams(address or broker.admin_url, identity,
                                                        reconnect_interval=0.1))
        conn.open(lambda event, detail: events.append(event))
        made.append(conn)
        return conn, events

    yield open_
    for conn in made:
        conn.close(linger=0)


def recv_until(conn, predicate, timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = conn.recv(timeout=0.2)
        if message is not None and predicate(message):
            return message
    raise AssertionError("no matching message in time")


def test_messages_flow_peer_to_peer_and_publishes_are_answered_once_confirmed(connect) -> None:
    alice, alice_events = connect("alice")
    bob, bob_events = connect("bob")
    poll(lambda: BusEvent.CONNECTED in alice_events and BusEvent.CONNECTED in bob_events, 10, "both links")
    alice.send(Message("bob", "RPC", [b'{"x": 1}', b"caf\xe9"], "id-1"), timeout=5)
    assert bob.recv(timeout=5) == Message("alice", "RPC", [b'{"x": 1}', b"caf\xe9"], "id-1", "alice")
    bob.send(Message("", "pubsub", [b"subscribe", b'{"prefix": "t", "bus": ""}'], "s-1"), timeout=5)
    assert recv_until(bob, lambda m: m.id == "s-1").args == [b"request_response", b"true"]
    body = b'{"bus": "", "headers": {}, "message": 7}'
    alice.send(Message("", "pubsub", [b"publish", b"t/x", body], "p-1"))
    assert recv_until(alice, lambda m: m.id == "p-1").args == [b"request_response", b"1"]
    delivery = recv_until(bob, lambda m: m.subsystem == "pubsub")
    assert delivery.args[:2] == [b"publish", b"t/x"] and b'"sender": "alice"' in delivery.args[2]
    assert alice.statistics()["confirmed"] >= 1


def test_a_burst_goes_out_in_order_through_the_coalescing_transport(connect) -> None:
    alice, alice_events = connect("alice")
    bob, bob_events = connect("bob")
    poll(lambda: BusEvent.CONNECTED in alice_events and BusEvent.CONNECTED in bob_events, 10, "both links")
    assert type(alice._connection._transport).__name__ == "_CoalescingTransport"
    bob.send(Message("", "pubsub", [b"subscribe", b'{"prefix": "burst", "bus": "b"}'], "s-1"), timeout=5)
    recv_until(bob, lambda m: m.id == "s-1")
    count = 3000
    for i in range(count):  # without yielding: thousands of frames buffered at once
        if i % 2:
            alice.send(Message("bob", "RPC", [str(i).encode()], f"m-{i}"), timeout=5)
        else:
            body = b'{"bus": "b", "headers": {}, "message": %d}' % i
            alice.send(Message("", "pubsub", [b"publish", b"burst/%d" % i, body], f"m-{i}"), timeout=5)
    got = [recv_until(bob, lambda m: m.id.startswith("m-")) for _ in range(count)]
    # each queue in order (bob's own queue and his pub/sub queue are consumed apart)
    assert [m.id for m in got if m.subsystem == "RPC"] == [f"m-{i}" for i in range(1, count, 2)]
    assert [m.id for m in got if m.subsystem == "pubsub"] == [f"m-{i}" for i in range(0, count, 2)]
    assert Message("alice", "RPC", [b"1"], "m-1", "alice") in got
    first = next(m for m in got if m.id == "m-0")
    assert first.user == "alice" and first.args[:2] == [b"publish", b"burst/0"]
    assert b'"sender": "alice"' in first.args[2]
    answers = [recv_until(alice, lambda m: m.id.startswith("m-")) for _ in range(count // 2)]
    assert {m.args[0] for m in answers} == {b"request_response"}
    # the broker confirms asynchronously: the last answers can arrive before the last confirms
    poll(lambda: alice.statistics()["confirmed"] >= count, 10, "every publish confirmed")


def test_a_bad_request_fails_the_pending_result(connect) -> None:
    conn, events = connect("asker")
    poll(lambda: BusEvent.CONNECTED in events, 10, "the link")
    conn.send(Message("", "pubsub", [b"subscribe", b'{"prefix": 42}'], "bad-1"), timeout=5)
    error = recv_until(conn, lambda m: m.id == "bad-1")
    assert error.subsystem == "error" and error.args[0] == b"22"


def test_a_dropped_link_comes_back_with_its_subscriptions(broker, connect) -> None:
    listener, events = connect("listener")
    talker, talker_events = connect("talker")
    poll(lambda: BusEvent.CONNECTED in events and BusEvent.CONNECTED in talker_events, 10, "both links")
    listener.send(Message("", "pubsub", [b"subscribe", b'{"prefix": "news", "bus": ""}'], "s"), timeout=5)
    recv_until(listener, lambda m: m.id == "s")
    assert broker.close_connections(f"{broker.instance}.listener") == 1
    poll(lambda: events.count(BusEvent.CONNECTED) >= 2, 15, "the link to come back")
    assert BusEvent.DISCONNECTED in events
    talker.send(Message("", "pubsub", [b"publish", b"news/1", b'{"bus": "", "message": 1}'], "p"), timeout=5)
    assert recv_until(listener, lambda m: m.subsystem == "pubsub").args[1] == b"news/1"
    assert listener.statistics()["links"] == 2


def test_a_send_while_the_link_is_down_waits_for_it_or_times_out(broker, connect) -> None:
    conn, events = connect("patient")
    poll(lambda: BusEvent.CONNECTED in events, 10, "the link")
    broker.close_connections(f"{broker.instance}.patient")
    poll(lambda: BusEvent.DISCONNECTED in events, 10, "the link to drop")
    started = time.monotonic()
    try:
        conn.send(Message("patient", "ping", [b"ping"], "x"), timeout=0)
    except BusTimeout:
        assert time.monotonic() - started < 1
    conn.send(Message("patient", "ping", [b"ping"], "y"), timeout=15)  # waits for the new link
    assert recv_until(conn, lambda m: m.id == "y").subsystem == "ping"


def test_nothing_is_reported_sent_and_then_lost(broker, connect) -> None:
    """Publishes racing a dropped link either fail or are confirmed - and then delivered."""
    listener, events = connect("sink")
    source, source_events = connect("source")
    poll(lambda: BusEvent.CONNECTED in events and BusEvent.CONNECTED in source_events, 10, "both links")
    listener.send(Message("", "pubsub", [b"subscribe", b'{"prefix": "load", "bus": ""}'], "s"), timeout=5)
    recv_until(listener, lambda m: m.id == "s")
    sent: list[str] = []
    answers: dict[str, bytes] = {}
    stop = gevent.event.Event()
    answered = gevent.event.Event()

    def publish_until_stopped() -> None:
        n = 0
        while not stop.is_set():
            # at most 50 publishes without an answer: paced by the answers, not by time
            while len(sent) - len(answers) >= 50 and not stop.is_set():
                answered.clear()
                answered.wait(0.2)
            msg_id = f"m{n}"
            sent.append(msg_id)
            try:
                source.send(Message("", "pubsub", [b"publish", b"load/x", b'{"message": %d}' % n], msg_id),
                            timeout=0.2)
            except BusTimeout:
                answers[msg_id] = b"timeout"
            n += 1

    def collect() -> None:
        while True:
            message = source.recv(timeout=0.2)
            if message is not None and message.id.startswith("m"):
                answers[message.id] = message.args[0] if message.subsystem == "pubsub" else b"error"
                answered.set()

    collector = gevent.spawn(collect)
    publisher = gevent.spawn(publish_until_stopped)
    poll(lambda: len(answers) > 20, 10, "publishes to be confirmed")
    assert broker.close_connections(f"{broker.instance}.source") == 1
    poll(lambda: source_events.count(BusEvent.CONNECTED) >= 2, 15, "the link to come back")
    after = len(sent)
    poll(lambda: len(sent) > after + 20, 10, "publishes on the new link")
    stop.set()
    publisher.join(5)
    poll(lambda: all(msg_id in answers for msg_id in sent), 15, "an answer to every publish")
    collector.kill()
    confirmed = {int(k[1:]) for k, v in answers.items() if v == b"request_response"}
    assert confirmed and set(answers.values()) <= {b"request_response", b"error", b"timeout"}
    got: set[int] = set()
    deadline = time.monotonic() + 15
    while not confirmed <= got and time.monotonic() < deadline:
        message = listener.recv(timeout=0.2)
        if message is not None and message.subsystem == "pubsub" and message.args[0] == b"publish":
            got.add(int(message.args[2].rsplit(b":", 1)[1].strip(b" }")))
    assert confirmed <= got, f"confirmed but never delivered: {sorted(confirmed - got)[:10]}"


def test_a_second_agent_with_the_same_identity_is_refused_clearly(tmp_path) -> None:
    with broker_instance("twin") as instance:
        platform = harness.RmqPlatform(tmp_path, instance).start()
        bus = harness.RmqBus(platform)
        try:
            first = bus.agent("twin")
            keys = platform.authorize("twin")
            with pytest.raises(ConnectError, match="may already be connected"):
                build_agent(address=instance.url(), identity="twin", publickey=keys.public,
                            secretkey=keys.secret, serverkey=platform.serverkey, message_bus="rmq", timeout=3)
            assert first.core.connected
            assert first.vip.rpc.call("twin", "agent.version").get(timeout=5) == "0.1"
        finally:
            bus.close()
            platform.stop()


def test_a_refused_login_is_one_clear_error(broker) -> None:
    with pytest.raises(ConnectError, match="refused the security handshake"):
        build_agent(address=broker.url("nobody", "wrong"), identity="stranger", message_bus="rmq", timeout=3)


def test_agents_reconnect_resubscribe_and_fail_pending_calls_rather_than_lose_them(tmp_path) -> None:
    with broker_instance("reconnect") as instance:
        platform = harness.RmqPlatform(tmp_path, instance).start()
        bus = harness.RmqBus(platform)
        try:
            subscriber = bus.agent("re.subscriber")
            publisher = bus.agent("re.publisher")
            got = []
            subscriber.vip.pubsub.subscribe("pubsub", "re/topic", lambda *a: got.append(a[5])).get(timeout=5)
            links = []
            subscriber.core.onconnected.connect(lambda *a, **k: links.append("connected"))
            assert instance.close_connections(f"{instance.instance}.re.subscriber") == 1
            poll(lambda: links and subscriber.core.connected, 20, "the subscriber to be welcomed again")
            publisher.vip.pubsub.publish("pubsub", "re/topic", message="after").get(timeout=5)
            poll(lambda: "after" in got, 10, "the publish after the reconnection")
            assert publisher.vip.rpc.call("re.subscriber", "agent.version").get(timeout=5) == "0.1"

            instance.close_connections(f"{instance.instance}.re.publisher")
            try:
                outcome = publisher.vip.pubsub.publish("pubsub", "re/topic", message="racing").get(timeout=20)
            except (Again, VIPError) as exc:
                outcome = exc
            if not isinstance(outcome, Exception):
                poll(lambda: "racing" in got, 10, "the confirmed publish")
        finally:
            bus.close()
            platform.stop()


def test_an_agent_class_runs_unchanged_on_rabbitmq(tmp_path) -> None:
    class Greeter(Agent):
        from volttron.client.vip.agent import RPC

        @RPC.export
        def greet(self, name: str) -> str:
            return f"hello {name}"

    with broker_instance("same") as instance:
        platform = harness.RmqPlatform(tmp_path, instance).start()
        bus = harness.RmqBus(platform)
        try:
            bus.agent("same.greeter", Greeter)
            caller = bus.agent("same.caller")
            assert caller.vip.rpc.call("same.greeter", "greet", "rmq").get(timeout=5) == "hello rmq"
            # the in-process services answer over RabbitMQ too (through the queues the router holds)
            health = caller.vip.rpc.call("platform.health", "get_platform_health").get(timeout=10)
            assert isinstance(health, dict)
        finally:
            bus.close()
            platform.stop()
