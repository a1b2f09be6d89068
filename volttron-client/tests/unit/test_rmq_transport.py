"""pika's I/O on the gevent hub: buffered frames go out in few system calls, as the same bytes in the
same order; readiness watchers are started and stopped, not made again."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from volttron.client.messagebus import rmq_ioloop
from volttron.client.messagebus.rmq_pika import io_services_utils
from volttron.client.testing.waiting import wait_until


class _Nbio:
    """What pika's transport asks of its I/O services here: watchers it never gets called back by."""

    def __init__(self) -> None:
        self.writer = False

    def set_reader(self, fd, callback) -> None:
        pass

    def set_writer(self, fd, callback) -> None:
        self.writer = True

    def remove_writer(self, fd) -> bool:
        self.writer = False
        return True


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def _transport(sock: socket.socket) -> tuple:
    nbio = _Nbio()
    transport = io_services_utils._AsyncPlaintextTransport(sock, SimpleNamespace(), nbio)
    assert rmq_ioloop.coalesce_writes(SimpleNamespace(_transport=transport))
    return transport, nbio


def _receive(sock: socket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(size - len(got))
        assert chunk, "the other end closed"
        got += chunk
    return bytes(got)


class _CountingSocket:
    """A socket that counts the system calls that send."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls = 0

    def send(self, data) -> int:
        self.calls += 1
        return self.sock.send(data)

    def sendmsg(self, buffers) -> int:
        self.calls += 1
        return self.sock.sendmsg(buffers)

    def fileno(self) -> int:
        return self.sock.fileno()


def test_thousands_of_frames_go_out_in_few_system_calls(pair) -> None:
    ours, theirs = pair
    transport, nbio = _transport(ours)
    transport._sock = counting = _CountingSocket(ours)
    frames = [f"frame {i};".encode() for i in range(3000)]
    for frame in frames:
        transport.write(frame)
    assert nbio.writer
    transport._on_socket_writable()
    assert counting.calls == 6 and not nbio.writer  # 512 buffers a call
    assert transport.get_write_buffer_size() == 0
    assert _receive(theirs, sum(map(len, frames))) == b"".join(frames)
    transport.write(b"one more")
    transport._on_socket_writable()
    assert counting.calls == 7 and _receive(theirs, 8) == b"one more"


def test_what_the_socket_cannot_take_yet_stays_in_order(pair) -> None:
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport, nbio = _transport(ours)
    frames = [bytes([i % 251]) * 1000 for i in range(2000)]  # 2 MB: more than the socket buffers hold
    for frame in frames:
        transport.write(frame)
    expected = b"".join(frames)
    received = bytearray()
    rounds = 0
    while nbio.writer and rounds < 10_000:
        rounds += 1
        transport._on_socket_writable()  # sends what fits, keeps the rest (EAGAIN is not an error)
        received += theirs.recv(1 << 20)
    assert rounds > 1, "the socket took it all at once: nothing was left to keep"
    received += _receive(theirs, len(expected) - len(received))
    assert bytes(received) == expected
    assert transport.get_write_buffer_size() == 0


def test_a_greenlet_that_keeps_writing_sends_without_waiting_for_the_hub(pair) -> None:
    ours, theirs = pair
    transport, nbio = _transport(ours)
    transport._sock = counting = _CountingSocket(ours)
    frame = b"f" * 1000
    writes = rmq_ioloop.WRITE_THROUGH // len(frame) + 1
    for _ in range(writes):
        transport.write(frame)
    assert counting.calls == 1 and transport.get_write_buffer_size() == 0 and not nbio.writer
    assert _receive(theirs, writes * len(frame)) == frame * writes


def test_a_full_socket_is_tried_once_per_write_through_bytes(pair) -> None:
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport, nbio = _transport(ours)
    transport._sock = counting = _CountingSocket(ours)
    frames = [bytes([i % 251]) * 1000 for i in range(1000)]  # 1 MB, nobody reading
    for frame in frames:
        transport.write(frame)
    assert 1 <= counting.calls <= len(frames) * 1000 // rmq_ioloop.WRITE_THROUGH + 1
    assert nbio.writer and transport.get_write_buffer_size() > 0
    received = bytearray()
    while nbio.writer:
        transport._on_socket_writable()
        received += theirs.recv(1 << 20)
    expected = b"".join(frames)
    received += _receive(theirs, len(expected) - len(received))
    assert bytes(received) == expected


def test_reads_take_what_the_broker_sent_in_large_pieces(pair) -> None:
    ours, theirs = pair
    transport, _nbio = _transport(ours)
    pieces: list[bytes] = []
    transport._protocol = SimpleNamespace(data_received=pieces.append)
    sent = bytes(range(256)) * 256  # 64 KB
    theirs.sendall(sent)
    wait_until(lambda: ours.recv(1, socket.MSG_PEEK) == b"\x00")
    transport._on_socket_readable()  # reads until the socket would block
    assert b"".join(pieces) == sent[:sum(map(len, pieces))] and max(map(len, pieces)) > 4096


def test_tls_and_unknown_transports_are_left_alone() -> None:
    assert not rmq_ioloop.coalesce_writes(SimpleNamespace(_transport=object()))
    assert not rmq_ioloop.coalesce_writes(SimpleNamespace())


def test_the_hub_loop_says_which_event_it_saw_and_keeps_its_watchers(pair) -> None:
    ours, theirs = pair
    loop = rmq_ioloop.HubIOLoop()
    seen: list[int] = []
    marker_ours, marker_theirs = socket.socketpair()
    marks: list[int] = []

    def after_a_poll() -> None:
        """The loop polled every watched descriptor once (a marker socket became readable and was seen)."""
        marks.clear()
        marker_theirs.send(b"m")
        wait_until(lambda: marks, 5, "the marker")
        marker_ours.recv(16)

    loop.add_handler(marker_ours.fileno(), lambda fd, events: marks.append(events), loop.READ)
    loop.add_handler(ours.fileno(), lambda fd, events: seen.append(events), loop.READ)
    try:
        after_a_poll()
        assert seen == []  # nothing to read, and writing is not watched
        loop.update_handler(ours.fileno(), loop.READ | loop.WRITE)
        wait_until(lambda: loop.WRITE in seen, 5, "writable")
        assert set(seen) == {loop.WRITE}
        watchers = loop._watchers[ours.fileno()]
        loop.update_handler(ours.fileno(), loop.READ)
        seen.clear()
        theirs.send(b"x")
        wait_until(lambda: seen, 5, "readable")
        assert set(seen) == {loop.READ} and loop._watchers[ours.fileno()] is watchers
        ours.recv(1)
        loop.remove_handler(ours.fileno())
        seen.clear()
        theirs.send(b"y")
        after_a_poll()
        assert seen == [] and list(loop._watchers) == [marker_ours.fileno()]
    finally:
        loop.close()
        marker_ours.close()
        marker_theirs.close()
