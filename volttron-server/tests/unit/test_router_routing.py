"""VipRouter driven directly with lists of frames (reference §1.2-§1.7, §2.1-§2.4)."""

from __future__ import annotations

import pytest

from volttron.server.router.connections import ConnectionTracker
from volttron.server.router.routing import PeerBusy, PeerUnreachable, VipRouter, error_frames

ROUTER_ID = b"router-uuid"


class FakeSocket:
    """Records sent messages; recipients not in ``connected`` are unreachable, those in ``busy`` full."""

    def __init__(self, *connected: bytes) -> None:
        self.connected = set(connected)
        self.busy: set[bytes] = set()
        self.sent: list[list[bytes]] = []

    def send(self, frames: list[bytes]) -> None:
        if frames[0] not in self.connected:
            raise PeerUnreachable(frames[0])
        if frames[0] in self.busy:
            raise PeerBusy(frames[0])
        self.sent.append(list(frames))

    def to(self, peer: bytes) -> list[list[bytes]]:
        return [f for f in self.sent if f[0] == peer]

    def take(self) -> list[list[bytes]]:
        sent, self.sent = self.sent, []
        return sent


def make_router(*connected: bytes, **kwargs) -> tuple[VipRouter, FakeSocket]:
    sock = FakeSocket(*connected)
    return VipRouter(ROUTER_ID, sock.send, **kwargs), sock


def msg(sender: bytes, recipient: bytes, subsystem: bytes, *args: bytes, msg_id: bytes = b"m1",
        user: bytes = b"") -> list[bytes]:
    return [sender, recipient, b"VIP1", user, msg_id, subsystem, *args]


def test_forward_rewrites_only_frames_0_to_3() -> None:
    router, sock = make_router(b"alice", b"bob")
    router.route(msg(b"bob", b"", b"hello", b"hello"))
    router.route(msg(b"alice", b"", b"hello", b"hello"))
    sock.take()
    payload = b'{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "1716400000.000000.1.000000"}'
    binary = bytes(range(256))
    router.route(msg(b"alice", b"bob", b"RPC", payload, binary, b"", msg_id=b"1716400000.8795093022209",
                     user=b"forged-user"))
    assert sock.take() == [[b"bob", b"alice", b"VIP1", b"alice", b"1716400000.8795093022209", b"RPC",
                            payload, binary, b""]]


def test_first_message_adds_peer_and_broadcasts_add_before() -> None:
    router, sock = make_router(b"alice", b"bob", b"carol")
    router.route(msg(b"alice", b"", b"hello", b"hello"))
    assert sock.to(b"alice")[0][5:7] == [b"hello", b"welcome"]  # nobody to tell about alice
    sock.take()
    router.route(msg(b"bob", b"", b"ping", b"ping"))
    assert [b"alice", b"", b"VIP1", b"", b"", b"peerlist", b"add", b"bob"] in sock.take()
    router.route(msg(b"bob", b"", b"ping", b"ping"))
    assert all(f[5] != b"peerlist" for f in sock.take()), "a known peer is announced only once"
    assert router.peers == [b"alice", b"bob"]


def test_router_probe_adds_peer() -> None:
    router, sock = make_router(b"alice", b"bob")
    router.route(msg(b"alice", b"", b"ping"))
    router.route([b"bob", b""])
    assert router.peers == [b"alice", b"bob"]
    assert sock.to(b"alice")[-1][5:] == [b"peerlist", b"add", b"bob"]


@pytest.mark.parametrize("frames", [
    [b"alice"], [b"alice", b"x"], [b"alice", b"", b"VIP1"], [b"alice", b"", b"VIP1", b"", b"id"], [],
])
def test_short_messages_are_dropped(frames: list[bytes]) -> None:
    router, sock = make_router(b"alice")
    router.route(frames)
    assert sock.sent == [] and router.peers == [] and router.malformed == 1


def test_bad_signature_is_dropped_without_adding_peer() -> None:
    router, sock = make_router(b"alice", b"bob")
    router.route([b"alice", b"bob", b"VIP2", b"", b"id", b"RPC", b"x"])
    assert sock.sent == [] and router.peers == []


def test_hello_welcome_layout() -> None:
    router, sock = make_router(b"alice")
    router.route(msg(b"alice", b"", b"hello", b"hello", msg_id=b"connect.hello.0"))
    assert sock.take() == [[b"alice", b"", b"VIP1", b"alice", b"connect.hello.0", b"hello", b"welcome",
                            b"1.0", ROUTER_ID, b"alice"]]


def test_hello_welcome_is_not_answered() -> None:
    router, sock = make_router(b"alice")
    router.route(msg(b"alice", b"", b"hello", b"welcome"))
    assert sock.sent == []


def test_ping_echoes_remaining_args() -> None:
    router, sock = make_router(b"alice")
    router.route(msg(b"alice", b"", b"ping", b"drop", b"bob", msg_id=b"7"))
    assert sock.take() == [[b"alice", b"", b"VIP1", b"alice", b"7", b"ping", b"pong", b"bob"]]


@pytest.mark.parametrize("args,expected", [
    ([b"list"], [b"listing", b"alice", b"bob"]),
    ([b"bogus"], [b"error", b"unknown operation"]),
    ([], [b"error", b"missing operation"]),
    ([b"list_with_messagebus"], [b"listing_with_messagebus", b'{"alice": "zmq", "bob": "zmq"}']),
])
def test_peerlist(args: list[bytes], expected: list[bytes]) -> None:
    router, sock = make_router(b"alice", b"bob")
    router.route(msg(b"alice", b"", b"ping"))
    router.route(msg(b"bob", b"", b"peerlist", *args, msg_id=b"q"))
    assert sock.to(b"bob")[-1] == [b"bob", b"", b"VIP1", b"", b"q", b"peerlist", *expected]


@pytest.mark.parametrize("name,value", [
    (b"serverkey", b"K" * 43),
    (b"instance-name", b"volttron1"),
    (b"addresses", b'["tcp://127.0.0.1:22916"]'),
    (b"agent-monitor-frequency", b"600"),
    (b"bind-web-address", b""),
    (b"volttron-home", b""),
    (b"", b""),
])
def test_query(name: bytes, value: bytes) -> None:
    router, sock = make_router(b"alice", queries={
        "serverkey": "K" * 43, "instance-name": "volttron1", "addresses": ["tcp://127.0.0.1:22916"],
        "agent-monitor-frequency": 600, "bind-web-address": None})
    router.route(msg(b"alice", b"", b"query", *([name] if name else []), msg_id=b"q"))
    assert sock.take() == [[b"alice", b"", b"VIP1", b"", b"q", b"query", b"", value]]


def test_unknown_subsystem_gets_93() -> None:
    router, sock = make_router(b"alice")
    router.route(msg(b"alice", b"", b"nonsense", b"x", msg_id=b"e"))
    assert sock.take() == [[b"alice", b"", b"VIP1", b"", b"e", b"error", b"93", b"Protocol not supported",
                            b"", b"nonsense"]]


def test_unreachable_recipient_gives_113_and_is_dropped() -> None:
    router, sock = make_router(b"alice", b"bob")
    router.route(msg(b"alice", b"", b"ping"))
    router.route(msg(b"bob", b"", b"ping"))
    sock.connected.discard(b"bob")
    sock.take()
    router.route(msg(b"alice", b"bob", b"RPC", b"{}", msg_id=b"r1"))
    sent = sock.take()
    assert [b"alice", b"", b"VIP1", b"", b"r1", b"error", b"113", b"No route to host", b"bob", b"RPC"] in sent
    assert [b"alice", b"", b"VIP1", b"", b"", b"peerlist", b"drop", b"bob"] in sent
    assert router.peers == [b"alice"]


def test_unknown_recipient_gives_113() -> None:
    router, sock = make_router(b"alice")
    router.route(msg(b"alice", b"nobody", b"RPC", b"{}", msg_id=b"r1"))
    assert sock.take() == [error_frames(b"alice", b"r1", 113, b"nobody", b"RPC")]


def test_no_error_to_self_when_sender_is_recipient_and_unreachable() -> None:
    router, sock = make_router(b"alice")
    router.route(msg(b"alice", b"", b"ping"))
    sock.take()
    sock.connected.discard(b"alice")
    router.route(msg(b"alice", b"alice", b"RPC", b"{}"))
    assert sock.sent == []


def test_busy_recipient_gives_eagain() -> None:
    router, sock = make_router(b"alice", b"bob")
    sock.busy.add(b"bob")
    router.route(msg(b"alice", b"bob", b"RPC", b"{}", msg_id=b"r2"))
    assert sock.to(b"alice")[-1] == [b"alice", b"", b"VIP1", b"", b"r2", b"error", b"11",
                                     b"Resource temporarily unavailable", b"bob", b"RPC"]
    assert b"bob" not in sock.to(b"bob")


def test_agentstop_by_self_drops_and_notifies() -> None:
    router, sock = make_router(b"alice", b"bob")
    dropped: list[bytes] = []
    router.add_drop_listener(dropped.append)
    router.route(msg(b"alice", b"", b"ping"))
    router.route(msg(b"bob", b"", b"ping"))
    sock.take()
    router.route(msg(b"bob", b"", b"agentstop", b"bob"))
    assert dropped == [b"bob"]
    assert sock.take() == [[b"alice", b"", b"VIP1", b"", b"", b"peerlist", b"drop", b"bob"]]


def test_agentstop_for_another_peer_needs_control() -> None:
    router, sock = make_router(b"alice", b"bob", b"platform.control")
    for peer in (b"alice", b"bob", b"platform.control"):
        router.route(msg(peer, b"", b"ping"))
    router.route(msg(b"alice", b"", b"agentstop", b"bob"))
    assert b"bob" in router.peers
    router.route(msg(b"platform.control", b"", b"agentstop", b"bob"))
    assert b"bob" not in router.peers


@pytest.mark.parametrize("sender,stops", [(b"platform.control", True), (b"control", True),
                                          (b"alice", False), (b"control.connection", False)])
def test_quit_only_from_control(sender: bytes, stops: bool) -> None:
    calls: list[int] = []
    router, sock = make_router(sender, on_quit=lambda: calls.append(1))
    router.route(msg(sender, b"", b"quit"))
    assert bool(calls) is stops


def test_error_messages_to_router_are_ignored() -> None:
    router, sock = make_router(b"alice")
    router.route(msg(b"alice", b"", b"error", b"93", b"Protocol not supported", b"", b"x"))
    assert sock.sent == []


def test_drop_cascades_through_unreachable_peers_and_survives_listener_errors() -> None:
    router, sock = make_router(b"a", b"b", b"c")
    for peer in (b"a", b"b", b"c"):
        router.route(msg(peer, b"", b"ping"))

    def broken(identity: bytes) -> None:
        raise RuntimeError("listener bug")

    seen: list[bytes] = []
    router.add_drop_listener(broken)
    router.add_drop_listener(seen.append)
    sock.connected -= {b"b", b"c"}
    assert router.drop_peer(b"c")
    assert router.peers == [b"a"]
    assert sorted(seen) == [b"b", b"c"]
    assert not router.drop_peer(b"c")


def test_registered_subsystem_gets_whole_message() -> None:
    router, sock = make_router(b"alice")
    got: list[list[bytes]] = []
    router.register_subsystem(b"pubsub", got.append)
    router.route(msg(b"alice", b"", b"pubsub", b"list", b"{}"))
    assert got == [[b"alice", b"", b"VIP1", b"", b"m1", b"pubsub", b"list", b"{}"]]


class TestConnectionTracker:
    """The descriptor bookkeeping behind prompt disconnect detection."""

    def test_disconnect_drops_after_settle(self) -> None:
        t = ConnectionTracker()
        t.seen(b"a", 12)
        t.disconnected(12)
        assert t.settle() == [b"a"]
        assert t.settle() == []

    def test_reused_descriptor_is_not_charged_to_new_owner(self) -> None:
        t = ConnectionTracker()
        t.seen(b"a", 12)
        t.disconnected(12)  # read before b's first message, as the router does
        t.seen(b"b", 12)
        assert t.settle() == [b"a"]
        t.disconnected(12)
        assert t.settle() == [b"b"]

    def test_reconnected_peer_is_kept(self) -> None:
        t = ConnectionTracker()
        t.seen(b"a", 12)
        t.disconnected(12)
        t.seen(b"a", 13)  # spoke again over a new connection before settling
        assert t.settle() == []
        assert t.fd_of[b"a"] == 13

    def test_unknown_and_inproc_descriptors_are_ignored(self) -> None:
        t = ConnectionTracker()
        t.seen(b"svc", -1)
        t.disconnected(-1)
        t.disconnected(99)
        assert t.settle() == []
        assert len(t) == 0

    def test_forget(self) -> None:
        t = ConnectionTracker()
        t.seen(b"a", 12)
        t.forget(b"a")
        t.disconnected(12)
        assert t.settle() == [] and b"a" not in t.fd_of
