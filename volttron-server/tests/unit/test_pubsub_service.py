"""The pub/sub service driven through VipRouter.route with lists of frames (reference §2.6, §2.13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from volttron.server.router.routing import PeerBusy, PeerUnreachable, VipRouter
from volttron.server.services.pubsub.protected import ProtectedTopics
from volttron.server.services.pubsub.service import PubSubService
from volttron.utils.errors import ConfigError

HEADERS = {"min_compatible_version": "3.0", "max_compatible_version": ""}


class FakeSocket:
    def __init__(self) -> None:
        self.gone: set[bytes] = set()
        self.busy: set[bytes] = set()
        self.sent: list[list[bytes]] = []

    def send(self, frames: list[bytes]) -> None:
        if frames[0] in self.gone:
            raise PeerUnreachable(frames[0])
        if frames[0] in self.busy:
            raise PeerBusy(frames[0])
        self.sent.append(list(frames))

    def take(self, peer: bytes | None = None, subsystem: bytes | None = None) -> list[list[bytes]]:
        taken = [f for f in self.sent if (peer is None or f[0] == peer)
                 and (subsystem is None or f[5] == subsystem)]
        self.sent = [f for f in self.sent if f not in taken]
        return taken


@pytest.fixture
def wired():
    sock = FakeSocket()
    router = VipRouter(b"rid", sock.send)
    service = PubSubService(router)
    service.attach()
    return router, service, sock


def pubsub(sender: bytes, *args: bytes | str, msg_id: bytes = b"id1") -> list[bytes]:
    return [sender, b"", b"VIP1", b"", msg_id, b"pubsub",
            *(a if isinstance(a, bytes) else a.encode("iso-8859-1") for a in args)]


def subscribe(router: VipRouter, peer: bytes, prefix, bus: str = "", all_platforms: bool = False) -> None:
    router.route(pubsub(peer, "subscribe", json.dumps({"prefix": prefix, "bus": bus,
                                                        "all_platforms": all_platforms})))


def publish_body(message, bus: str = "") -> bytes:
    return json.dumps({"bus": bus, "headers": HEADERS, "message": message}).encode()


def test_subscribe_reply(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"carol", "devices")
    assert sock.take(b"carol", b"pubsub") == [[b"carol", b"", b"VIP1", b"carol", b"id1", b"pubsub",
                                               b"request_response", b"true"]]


def test_publish_delivery_layout_and_count(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"carol", "devices")
    router.route(pubsub(b"alice", "ping"))
    sock.sent.clear()
    body = publish_body(42)
    router.route(pubsub(b"alice", "publish", "devices/x", body, msg_id=b"p1"))
    delivered = sock.take(b"carol")
    assert len(delivered) == 1
    frames = delivered[0]
    assert frames[:8] == [b"carol", b"", b"VIP1", b"alice", b"p1", b"pubsub", b"publish", b"devices/x"]
    assert json.loads(frames[8]) == {"sender": "alice", "bus": "", "headers": HEADERS, "message": 42}
    assert list(json.loads(frames[8])) == ["sender", "bus", "headers", "message"]
    assert frames[8].endswith(body[1:]), "the publisher's JSON is delivered byte for byte after 'sender'"
    assert sock.take(b"alice") == [[b"alice", b"", b"VIP1", b"alice", b"p1", b"pubsub", b"request_response",
                                    b"1"]]


def test_publish_count_is_ascii_digits_and_one_copy_each(wired) -> None:
    router, service, sock = wired
    for i in range(200):
        subscribe(router, f"s{i}".encode(), ["", "t", "to", "topic"])
    sock.sent.clear()
    router.route(pubsub(b"alice", "publish", "topic/1", publish_body("m")))
    replies = sock.take(b"alice")
    assert replies[-1][6:] == [b"request_response", b"200"]
    assert len(sock.take(subsystem=b"pubsub")) == 200


def test_publish_with_no_subscriber(wired) -> None:
    router, service, sock = wired
    router.route(pubsub(b"alice", "publish", "nobody/listens", publish_body(None)))
    assert sock.take(b"alice")[-1][6:] == [b"request_response", b"0"]


def test_forged_sender_is_overwritten(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"carol", "")
    for body in (b'{"sender": "platform.control", "bus": "", "message": 1}', b"{}", b'  {"bus": ""}'):
        router.route(pubsub(b"mallory", "publish", "t", body))
        frames = sock.take(b"carol")[-1]
        assert json.loads(frames[8])["sender"] == "mallory"


def test_unsubscribe_forms(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"carol", ["a", "b", "c"])
    subscribe(router, b"carol", "d", all_platforms=True)
    router.route(pubsub(b"carol", "unsubscribe", json.dumps({"internal": {"prefix": ["a"], "bus": ""}})))
    router.route(pubsub(b"carol", "unsubscribe", json.dumps({"prefix": "b", "bus": ""})))
    assert service.index.match("a") == set() and service.index.match("b") == set()
    assert service.index.match("c") == {b"carol"}
    router.route(pubsub(b"carol", "unsubscribe", json.dumps({"all": {"prefix": None, "bus": ""}})))
    assert service.index.match("d") == set()
    router.route(pubsub(b"carol", "unsubscribe", json.dumps({"internal": {"prefix": None, "bus": None}})))
    assert service.index.match("c") == set()
    assert all(f[6:] == [b"request_response", b"true"] for f in sock.take(b"carol"))


def test_list(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"carol", ["devices/a", "x"])
    subscribe(router, b"dave", "devices/b")
    sock.sent.clear()
    request = {"prefix": "devices", "all_platforms": False, "subscribed": False, "reverse": False, "bus": ""}
    router.route(pubsub(b"carol", "list", json.dumps(request), msg_id=b"l"))
    reply = sock.take(b"carol")[0]
    assert reply[:7] == [b"carol", b"", b"VIP1", b"carol", b"l", b"pubsub", b"list_response"]
    assert sorted(json.loads(reply[7])) == [["", "devices/a", True], ["", "devices/b", False]]


def test_synchronize_replaces_and_gets_no_reply(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"carol", "stale")
    sock.sent.clear()
    state = {"subscriptions": {"internal": {"": ["fresh"]}, "all": {"b": ["remote"]}}}
    router.route(pubsub(b"carol", "synchronize", "connected", json.dumps(state)))
    assert sock.sent == []
    assert service.index.match("stale") == set()
    assert service.index.match("fresh/1") == {b"carol"}
    assert service.index.match("remote", bus="b") == {b"carol"}


def test_dropped_peer_loses_subscriptions(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"carol", "t")
    router.route([b"carol", b"", b"VIP1", b"", b"", b"agentstop", b"carol"])
    assert service.index.match("t") == set()


def test_unreachable_subscriber_is_dropped_and_busy_one_counted(wired) -> None:
    router, service, sock = wired
    subscribe(router, b"gone", "t")
    subscribe(router, b"slow", "t")
    subscribe(router, b"ok", "t")
    sock.gone.add(b"gone")
    sock.busy.add(b"slow")
    sock.sent.clear()
    for _ in range(3):
        router.route(pubsub(b"alice", "publish", "t", publish_body(1)))
    assert b"gone" not in router.peers and service.index.match("t") == {b"slow", b"ok"}
    assert service.statistics()["dropped"] == {"slow": 3}
    assert len(sock.take(b"ok", b"pubsub")) == 3
    assert service.statistics()["delivered"] == 3


@pytest.mark.parametrize("args", [
    ["publish"],
    ["publish", "topic"],
    ["publish", "topic", "{not json"],
    ["publish", "topic", "[1, 2]"],
    ["publish", "topic", '{"bus": 5}'],
    ["publish", "topic", b"\xff\xfe\x00garbage"],
    ["subscribe"],
    ["subscribe", '{"prefix": 7}'],
    ["subscribe", "\"just text\""],
    ["unsubscribe", '{"internal": 3}'],
    ["list", "nope"],
    ["synchronize", "connected", '{"subscriptions": {"mars": {}}}'],
    ["synchronize"],
    ["frobnicate"],
    [],
])
def test_malformed_requests_get_einval(wired, args) -> None:
    router, service, sock = wired
    router.route(pubsub(b"mallory", *args, msg_id=b"bad"))
    replies = sock.take(b"mallory", b"error")
    assert len(replies) == 1
    assert replies[0][:7] == [b"mallory", b"", b"VIP1", b"", b"bad", b"error", b"22"]
    assert replies[0][8:] == [b"", b"pubsub"]


def test_auth_and_protected_updates_only_from_auth(wired) -> None:
    router, service, sock = wired
    caps = json.dumps({"capabilities": {"mallory": {"secret": None}}})
    router.route(pubsub(b"mallory", "auth_update", caps))
    assert sock.take(b"mallory", b"error")
    protected = json.dumps({"write-protect": [{"topic": "secure", "capabilities": ["secret"]}]})
    router.route(pubsub(b"mallory", "protected_update", protected))
    assert sock.take(b"mallory", b"error")
    router.route(pubsub(b"platform.auth", "protected_update", protected))
    router.route(pubsub(b"platform.auth", "auth_update", json.dumps({"capabilities": {"alice": ["secret"]}})))
    assert sock.take(b"platform.auth", b"error") == []
    router.route(pubsub(b"mallory", "publish", "secure/x", publish_body(1), msg_id=b"p"))
    refused = sock.take(b"mallory", b"error")
    assert refused[0][:7] == [b"mallory", b"", b"VIP1", b"mallory", b"p", b"error", b"-32001"]
    assert refused[0][8:] == [b"", b"pubsub"]
    router.route(pubsub(b"alice", "publish", "secure/x", publish_body(1)))
    assert sock.take(b"alice")[-1][6:] == [b"request_response", b"0"]


def test_protected_topics_file_and_capability_table(tmp_path: Path) -> None:
    path = tmp_path / "protected_topics.json"
    path.write_text('{"write-protect": [ # comment\n {"topic": "devices/secure", "capabilities": ["a"]},'
                    '{"topic": "/^alerts/.*/", "capabilities": ["b", "c"]}]}')
    sock = FakeSocket()
    router = VipRouter(b"rid", sock.send)
    table = {"holder": {"a": None, "b": None, "c": None}, "partial": {"b": None}, "empty": {}}
    service = PubSubService(router, protected=ProtectedTopics(path), capabilities=lambda: table)
    service.attach()
    for user, topic, allowed in [("holder", "devices/secure/1", True), ("partial", "devices/secure", False),
                                 ("partial", "alerts/x", False), ("holder", "alerts/x", True),
                                 ("empty", "devices/open", True), ("empty", "devices/secure", False),
                                 ("stranger", "alerts/1", False)]:
        router.route(pubsub(user.encode(), "publish", topic, publish_body(1)))
        errors = sock.take(user.encode(), b"error")
        assert (not errors) is allowed, (user, topic)


def test_a_corrupt_protected_topics_file_refuses_start_up_and_stays_in_place(tmp_path: Path) -> None:
    path = tmp_path / "protected_topics.json"
    path.write_text("{broken")
    with pytest.raises(ConfigError, match="protected_topics.json is not valid"):
        ProtectedTopics(path)
    assert path.read_text() == "{broken", "moving it aside would read as 'nothing protected' to the others"


def test_protected_topics_reread_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "protected_topics.json"
    now = [0.0]
    protected = ProtectedTopics(path, clock=lambda: now[0])
    assert not protected
    path.write_text('{"write-protect": [{"topic": "t", "capabilities": ["x"]}]}')
    now[0] = 5.0
    protected.refresh()
    assert protected.required("t/1") == ["x"]
    path.write_text("not json")
    now[0] = 10.0
    protected.refresh()
    assert protected.required("t/1") == ["x"], "a bad edit keeps the last good list"
    assert path.read_text() == "not json", "and the file is left for its author to fix"


def test_subscriptions_past_the_limit_get_a_clear_error(wired) -> None:
    router, service, sock = wired
    service.index.max_per_peer = 2
    subscribe(router, b"carol", ["a", "b"])
    sock.take()
    subscribe(router, b"carol", ["c"])
    [reply] = sock.take(b"carol")
    assert reply[5:7] == [b"error", b"122"]
    assert b"subscriptions limit reached" in reply[7] and b"at most 2 per peer" in reply[7]
    assert service.index.match("c") == set()


def test_a_big_drop_leaves_the_index_in_slices_without_blocking(wired) -> None:
    import gevent

    from volttron.server.services.pubsub.service import DROP_SLICE

    router, service, sock = wired
    count = DROP_SLICE * 4
    subscribe(router, b"carol", [f"t/{i}" for i in range(count)])
    service.peer_dropped(b"carol")
    # the peer's own record is gone at once; the index entries leave a slice per yield
    assert service.index.statistics()["subscribers"] == 0
    assert service.index.match(f"t/{count - 1}") == {b"carol"}
    left = count
    for _ in range(50):  # the drop's greenlet runs at one of the next yields, a slice each
        gevent.sleep(0)
        left = sum(1 for i in range(count) if service.index.match(f"t/{i}"))
        if left < count:
            break
    assert 0 < left < count, "the first slice must leave the rest for later yields"
    for _ in range(50):
        gevent.sleep(0)
    assert not any(service.index.match(f"t/{i}") for i in range(count))
