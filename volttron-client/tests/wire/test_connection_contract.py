"""The contract every message-bus back-end keeps (idea of kombu's shared integration suite).

Each test runs once per back-end in ``BACKENDS``. A back-end needs a harness: a router at
``harness.address`` that routes peer-to-peer messages the way the platform does (recipient gets
``peer`` = sender and ``user`` = sender), and ``harness.restart()``. The RabbitMQ back-end adds its
entry here with a broker-backed harness.
"""

from __future__ import annotations

import time

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

BACKENDS = ["zmq"]


class ZmqHarness:
    def __init__(self, raw_router) -> None:
        self._make = raw_router
        self.router = raw_router(forward=True, auto_welcome=False)
        self.address = self.router.address

    def restart(self) -> None:
        port = self.router.port
        self.router.close()
        self.router = self._make(port, forward=True, auto_welcome=False)


@pytest.fixture(params=BACKENDS)
def bus(request, raw_router):
    """``(connection class, harness)`` of one back-end."""
    if request.param == "zmq":
        return connection_class("zmq"), ZmqHarness(raw_router)
    raise AssertionError(f"no harness for {request.param}")  # pragma: no cover


@pytest.fixture
def open_connection(bus):
    cls, harness = bus
    made: list[Connection] = []

    def open_(identity: str, **params):
        events: list[BusEvent] = []
        params.setdefault("reconnect_interval", 0.05)
        conn = cls(ConnectionParams(params.pop("address", harness.address), identity, **params))
        conn.open(lambda event, detail: events.append(event))
        made.append(conn)
        return conn, events

    yield open_
    for conn in made:
        conn.close(linger=0)


def _wait(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.005)


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
    conn, events = open_connection("orphan", address="tcp://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(BusTimeout):
        conn.send(Message("", "hello", [b"hello"]), timeout=0.2)
    assert time.monotonic() - started < 2
    assert BusEvent.CONNECTED not in events


def test_close_is_idempotent_and_wakes_a_reader(open_connection) -> None:
    conn, _ = open_connection("closer")
    reader = gevent.spawn(conn.recv)
    gevent.sleep(0.02)
    conn.close()
    conn.close()
    with pytest.raises(BusClosed):
        reader.get(timeout=5)
    with pytest.raises(BusClosed):
        conn.send(Message("", "hello", [b"hello"]))
    assert conn.closed


def test_disconnect_and_reconnect_are_reported(open_connection, bus) -> None:
    cls, harness = bus
    if not cls.reports_disconnects:
        pytest.skip(f"{cls.name} does not report disconnects")
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
    finally:
        conn.close(linger=0)
