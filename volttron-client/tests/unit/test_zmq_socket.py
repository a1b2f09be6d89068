"""The ZeroMQ back-end's cooperative socket: waits in the gevent hub, wakes only when there is work."""

from __future__ import annotations

import gevent
import pytest
import zmq

from volttron.client.messagebus import zmq as backend
from volttron.client.messagebus.zmq import CooperativeSocket
from volttron.client.testing.waiting import wait_until


@pytest.fixture
def pair():
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind("inproc://cooperative")
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"agent")
    dealer.connect("inproc://cooperative")
    sock = CooperativeSocket(dealer)
    try:
        yield router, sock
    finally:
        sock.close()
        router.close(0)
        context.term()


def test_sending_does_not_wake_a_waiting_reader_for_nothing(pair, monkeypatch) -> None:
    """A send may take the edge of ZMQ_FD that a reader waits for, so the socket must look after
    each send. It used to wake the reader every time instead: one switch and one failed read per
    message sent, which cost every RPC round trip and every publish that time twice over."""
    router, sock = pair
    failed_reads = [0]
    real_recv = backend._recv_message

    def counting_recv(socket):
        message = real_recv(socket)
        if message is None:
            failed_reads[0] += 1
        return message

    monkeypatch.setattr(backend, "_recv_message", counting_recv)
    received: list[list[bytes]] = []
    reader = gevent.spawn(lambda: received.append(sock.recv_multipart(timeout=10)))
    gevent.sleep(0)  # the reader waits now
    waited = failed_reads[0]
    for i in range(200):
        assert sock.send_multipart([b"", str(i).encode()], timeout=1)
        gevent.sleep(0)  # give a woken reader its turn
    assert failed_reads[0] - waited <= 2, f"{failed_reads[0] - waited} reads for nothing in 200 sends"
    assert not received
    for _ in range(200):  # the router got them all
        assert router.recv_multipart()[0] == b"agent"
    router.send_multipart([b"agent", b"answer"])
    reader.join(5)
    assert received == [[b"answer"]]


def test_a_message_that_arrives_during_a_send_still_wakes_the_reader(pair) -> None:
    """The other half of the edge-trigger rule: the look after a send must not miss a message."""
    router, sock = pair
    assert sock.send_multipart([b"", b"hello"], timeout=1)
    assert router.recv_multipart() == [b"agent", b"", b"hello"]
    received: list[list[bytes]] = []
    reader = gevent.spawn(lambda: received.append(sock.recv_multipart(timeout=10)))
    gevent.sleep(0)
    for i in range(50):
        router.send_multipart([b"agent", str(i).encode()])  # arrives while we send
        assert sock.send_multipart([b"", b"x"], timeout=1)
    reader.join(5)
    assert received == [[b"0"]]
    for i in range(1, 50):
        assert sock.recv_multipart(timeout=5) == [str(i).encode()]


def test_a_waiting_reader_is_woken_without_asking_zmq_events(pair, monkeypatch) -> None:
    """When ZMQ_FD fires and only a reader waits, the hub switches to it and its read runs libzmq's
    pending commands; asking ZMQ_EVENTS first (two system calls, and a pass through the hub's
    callbacks) used to come before every message an idle agent received."""
    router, sock = pair
    looks = [0]
    real_get = backend._get

    def counting_get(socket, option):
        if option == zmq.EVENTS:
            looks[0] += 1
        return real_get(socket, option)

    monkeypatch.setattr(backend, "_get", counting_get)
    received: list[list[bytes]] = []

    def read(count: int) -> None:
        for _ in range(count):
            received.append(sock.recv_multipart(timeout=10))

    reader = gevent.spawn(read, 20)
    for i in range(20):
        gevent.sleep(0)  # the reader waits again
        router.send_multipart([b"agent", str(i).encode()])
        wait_until(lambda i=i: len(received) > i, timeout=5)
    reader.join(5)
    assert received == [[str(i).encode()] for i in range(20)]
    assert looks[0] <= 2, f"ZMQ_EVENTS asked {looks[0]} times for 20 messages"


def test_a_read_that_times_out_leaves_no_waiter_behind(pair) -> None:
    router, sock = pair
    for _ in range(3):
        assert sock.recv_multipart(timeout=0.01) is None
    assert sock._readers == []
    router.send_multipart([b"agent", b"late"])
    assert sock.recv_multipart(timeout=5) == [b"late"]


def test_closing_wakes_a_waiting_reader(pair) -> None:
    _router, sock = pair
    outcome: list[str] = []

    def read() -> None:
        try:
            sock.recv_multipart(timeout=30)
            outcome.append("returned")
        except zmq.ZMQError:
            outcome.append("closed")

    reader = gevent.spawn(read)
    gevent.sleep(0)
    sock.close()
    reader.join(5)
    assert outcome == ["closed"]
