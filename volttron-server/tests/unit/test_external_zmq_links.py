"""A platform link (DEALER) against an in-test CURVE ROUTER on an ipc socket: hello, sends, reconnects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import zmq.green as zmq

from volttron.client.testing.waiting import wait_until as poll
from volttron.server.services.external.discovery import RemotePlatform
from volttron.server.services.external.service import LinkDown
from volttron.server.services.external.zmq_links import LinkSettings, ZmqPlatformLink
from volttron.utils.keys import generate_keypair, to_z85

SERVER = generate_keypair()
OURS = generate_keypair()


class Remote:
    """A CURVE ROUTER standing in for the other platform; keeps what it receives."""

    def __init__(self, context: zmq.Context, address: str) -> None:
        self.context, self.address = context, address
        self.received: list[list[bytes]] = []
        self.socket: zmq.Socket | None = None
        self.reader: gevent.Greenlet | None = None

    def start(self) -> None:
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, to_z85(SERVER.secret))
        sock.bind(self.address)
        self.socket = sock
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        assert self.socket is not None
        while True:
            self.received.append(self.socket.recv_multipart())

    def stop(self) -> None:
        if self.reader is not None:
            self.reader.kill()
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None

    def hellos(self) -> list[list[bytes]]:
        return [f for f in self.received if f[5:7] == [b"routing_table", b"hello"]]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Remote, ZmqPlatformLink, list[str]]]:
    context = zmq.Context()
    remote = Remote(context, f"ipc://{tmp_path}/b.socket")
    connected: list[str] = []
    link = ZmqPlatformLink(RemotePlatform("B", remote.address, SERVER.public), "A", context,
                           (OURS.public, OURS.secret), lambda lk: connected.append(lk.instance_name),
                           LinkSettings(reconnect_ms=50, reconnect_max_ms=100))
    yield remote, link, connected
    link.stop()
    remote.stop()
    context.term()


def test_the_link_introduces_itself_and_then_carries_messages(setup) -> None:
    remote, link, connected = setup
    remote.start()
    link.start()
    poll(lambda: link.connected, 5, "the link to connect")
    (hello,) = remote.hellos()
    assert hello[0].startswith(b"instance.B.") and hello[1:] == [b"", b"VIP1", b"", b"", b"routing_table",
                                                                 b"hello", b"hello", b"A"]
    assert connected == ["B"]
    link.send([b"", b"VIP1", b"u", b"m", b"pubsub", b"external_list", b'{"A": []}'])
    poll(lambda: any(f[5:7] == [b"pubsub", b"external_list"] for f in remote.received), 5, "the message")


def test_sends_fail_at_once_while_the_other_platform_is_away_and_work_after_it_returns(setup) -> None:
    remote, link, connected = setup
    link.start()
    with pytest.raises(LinkDown, match="'B' .* is down"):
        link.send([b"", b"VIP1", b"", b"", b"external_rpc", b"send_peer", b"{}"])
    remote.start()
    poll(lambda: link.connected, 5, "the first connection")
    remote.stop()
    poll(lambda: not link.connected, 5, "the link to notice the other side left")
    with pytest.raises(LinkDown):
        link.send([b"", b"VIP1", b"", b"", b"external_rpc", b"send_peer", b"{}"])
    remote.received.clear()
    remote.start()  # "restarted": the link reconnects and introduces itself again
    poll(lambda: link.connected and remote.hellos(), 5, "the link to come back")
    assert connected == ["B", "B"] and link.connects == 2


def test_a_wrong_server_key_never_connects(tmp_path: Path) -> None:
    context = zmq.Context()
    remote = Remote(context, f"ipc://{tmp_path}/b.socket")
    link = ZmqPlatformLink(RemotePlatform("B", remote.address, generate_keypair().public), "A", context,
                           (OURS.public, OURS.secret), lambda lk: None)
    try:
        remote.start()
        assert remote.socket is not None
        monitor = remote.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                                   | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                                   | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        link.start()
        assert monitor.poll(5000), "the other side saw no failed handshake"
        assert not link.connected and remote.hellos() == []
        remote.socket.disable_monitor()
        monitor.close(0)
    finally:
        link.stop()
        remote.stop()
        context.term()
