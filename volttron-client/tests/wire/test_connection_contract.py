"""The contract every message-bus back-end keeps (idea of kombu's shared integration suite).

Each test runs once per back-end in ``BACKENDS``. A back-end needs a harness: a router at
``harness.address`` that routes peer-to-peer messages the way the platform does (recipient gets
``peer`` = sender and ``user`` = sender), ``harness.restart()`` (every connection loses its link
and must get it back) and ``harness.unreachable`` (an address nothing answers). ZeroMQ runs on the
raw router of conftest.py; RabbitMQ on the local broker, in a vhost of its own prepared as
``vcfg rabbitmq single`` does, where the broker itself routes peer to peer (``restart`` closes the
test's connections on the broker). Skipped without a broker unless
``VOLTTRON_TEST_REQUIRE_RABBITMQ=1``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from volttron.client.messagebus.base import (
    BusClosed,
    BusError,
    BusEvent,
    BusTimeout,
    Connection,
    ConnectionParams,
    Message,
    connection_class,
)
from volttron.client.testing.waiting import wait_until as _wait

BACKENDS = ["zmq", pytest.param("rmq", marks=pytest.mark.rabbitmq)]


class ZmqHarness:
    unreachable = "tcp://127.0.0.1:9"

    def __init__(self, raw_router) -> None:
        self._make = raw_router
        self.router = raw_router(forward=True, auto_welcome=False)
        self.address = self.router.address

    def restart(self) -> None:
        port = self.router.port
        self.router.close()
        self.router = self._make(port, forward=True, auto_welcome=False)


class RmqHarness:
    unreachable = "amqp://nobody:nothing@127.0.0.1:9/none"

    def __init__(self, broker, home: Path) -> None:
        from volttron.utils.config import load_config

        self.broker = broker
        broker.prepare_home(home)
        config = load_config(home / "rabbitmq_config.yml")
        self.address = broker.url(config["user"], config["password"])
        self.identities: set[str] = set()

    def restart(self) -> None:
        for identity in self.identities:
            self.broker.close_connections(f"{self.broker.instance}.{identity}")


@contextlib.contextmanager
def _rmq_harness(home: Path) -> Iterator[RmqHarness]:
    from volttron.client.messagebus.rmq_testing import broker_instance

    with broker_instance("wire") as broker:
        yield RmqHarness(broker, home)


@pytest.fixture(params=BACKENDS)
def bus(request, raw_router, tmp_path):
    """``(connection class, harness)`` of one back-end."""
    if request.param == "zmq":
        yield connection_class("zmq"), ZmqHarness(raw_router)
    elif request.param == "rmq":
        with _rmq_harness(tmp_path / "home") as harness:
            yield connection_class("rmq"), harness
    else:  # pragma: no cover
        raise AssertionError(f"no harness for {request.param}")


@pytest.fixture
def open_connection(bus):
    cls, harness = bus
    made: list[Connection] = []

    def open_(identity: str, **params):
        events: list[BusEvent] = []
        params.setdefault("reconnect_interval", 0.05)
        if hasattr(harness, "identities"):
            harness.identities.add(identity)
        conn = cls(ConnectionParams(params.pop("address", harness.address), identity, **params))
        conn.open(lambda event, detail: events.append(event))
        made.append(conn)
        return conn, events

    yield open_
    for conn in made:
        conn.close(linger=0)


def test_connected_is_reported_and_messages_flow_between_peers(open_connection) -> None:
    alice, alice_events = open_connection("alice")
    bob, bob_events = open_connection("bob")
    _wait(lambda: BusEvent.CONNECTED in alice_events and BusEvent.CONNECTED in bob_events)
    bob.send(Message("", "hello", [b"hello"], "h"))  # make the router know bob
    alice.send(Message("bob", "RPC", [b'{"x": 1}', "text"], "id-1"), timeout=5)
    received = bob.recv(timeout=5)
    assert received == Message("alice", "RPC", [b'{"x": 1}', b"text"], "id-1", "alice")
    assert received.text(1) == "text" and received.json(0) == {"x": 1}


def test_recv_times_out_without_hanging(open_connection) -> None:
    conn, _ = open_connection("idle")
    started = time.monotonic()
    assert conn.recv(timeout=0.1) is None
    assert 0.09 <= time.monotonic() - started < 2


def test_send_without_a_router_times_out(open_connection, bus) -> None:
    cls, harness = bus
    conn, events = open_connection("orphan", address=harness.unreachable)
    started = time.monotonic()
    with pytest.raises(BusTimeout):
        conn.send(Message("", "hello", [b"hello"]), timeout=0.2)
    assert time.monotonic() - started < 2
    assert BusEvent.CONNECTED not in events


def test_close_is_idempotent_and_wakes_a_reader(open_connection) -> None:
    conn, _ = open_connection("closer")
    reader = gevent.spawn(conn.recv)
    gevent.sleep(0)  # one turn: the reader is waiting in recv
    conn.close()
    conn.close()
    with pytest.raises(BusClosed):
        reader.get(timeout=5)
    with pytest.raises(BusClosed):
        conn.send(Message("", "hello", [b"hello"]))
    assert conn.closed


def test_disconnect_and_reconnect_are_reported(open_connection, bus) -> None:
    cls, harness = bus
    assert cls.reports_disconnects, f"{cls.name} must report disconnects (the core reconnects on them)"
    conn, events = open_connection("survivor")
    _wait(lambda: BusEvent.CONNECTED in events)
    harness.restart()
    _wait(lambda: BusEvent.DISCONNECTED in events and events.count(BusEvent.CONNECTED) >= 2, timeout=10)
    conn.send(Message("", "hello", [b"hello"], "again"), timeout=5)


def test_backend_errors_are_bus_errors(bus) -> None:
    cls, harness = bus
    with pytest.raises(BusError):
        cls(ConnectionParams("tcp://not a host:x", "bad")).open(lambda *a: None)
    with pytest.raises(BusError):
        cls(ConnectionParams("udp://somewhere", "bad")).open(lambda *a: None)
    with pytest.raises(BusError):
        cls(ConnectionParams(harness.address, "caf\u20ac")).open(lambda *a: None)
    conn = cls(ConnectionParams(harness.address, "twice"))
    conn.open(lambda *a: None)
    try:
        with pytest.raises(BusError):
            conn.open(lambda *a: None)
        with pytest.raises(BusError):
            conn.send(Message("\u20ac", "x"))
        with pytest.raises(BusError):  # a text argument must encode to Latin-1, as identities do
            conn.send(Message("twice", "x", ["\u20ac"]))
    finally:
        conn.close(linger=0)
