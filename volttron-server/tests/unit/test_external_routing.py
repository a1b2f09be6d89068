"""Multi-platform routing driven through VipRouter.route with lists of frames (reference §2.5, §2.6, §3.6).

Fake links stand in for the DEALERs to other platforms; this platform is ``A``, linked to ``B``.
"""

from __future__ import annotations

import json

import pytest

from volttron.server.router.routing import PeerUnreachable, VipRouter
from volttron.server.services.external.service import ExternalRouting, LinkDown
from volttron.server.services.pubsub.protected import ProtectedTopics
from volttron.server.services.pubsub.service import PubSubService
from volttron.utils.jsonrpc import UNAVAILABLE_AGENT

B_LINK = b"instance.A.0.25"  # how B's link to us is named on our ROUTER
HEADERS = {"min_compatible_version": "3.0", "max_compatible_version": ""}


class FakeSocket:
    def __init__(self) -> None:
        self.gone: set[bytes] = set()
        self.sent: list[list[bytes]] = []

    def send(self, frames: list[bytes]) -> None:
        if frames[0] in self.gone:
            raise PeerUnreachable(frames[0])
        self.sent.append(list(frames))

    def to(self, peer: bytes) -> list[list[bytes]]:
        return [f for f in self.sent if f[0] == peer]


class FakeLink:
    def __init__(self, name: str, connected: bool = True) -> None:
        self.instance_name = name
        self.connected = connected
        self.sent: list[list[bytes]] = []
        self.stopped = False

    def send(self, frames: list[bytes]) -> None:
        if not self.connected:
            raise LinkDown("down")
        self.sent.append(list(frames))

    def stop(self) -> None:
        self.stopped = True

    def ops(self, subsystem: bytes) -> list[list[bytes]]:
        return [f for f in self.sent if f[4] == subsystem]


@pytest.fixture
def wired():
    sock = FakeSocket()
    router = VipRouter(b"rid", sock.send)
    pubsub = PubSubService(router)
    pubsub.attach()
    routing = ExternalRouting(router, pubsub, "A")
    routing.attach()
    link = FakeLink("B")
    routing.add_link(link)
    return router, routing, link, sock


def msg(sender: bytes, subsystem: bytes, *args: bytes | str, user: bytes = b"",
        msg_id: bytes = b"m1") -> list[bytes]:
    return [sender, b"", b"VIP1", user, msg_id, subsystem,
            *(a if isinstance(a, bytes) else a.encode("iso-8859-1") for a in args)]


def hello(router: VipRouter, sender: bytes = B_LINK, name: str = "B") -> None:
    router.route(msg(sender, b"routing_table", "hello", "hello", name))


def external_list(router: VipRouter, prefixes: list[str], sender: bytes = B_LINK, name: str = "B") -> None:
    router.route(msg(sender, b"pubsub", "external_list", json.dumps({name: prefixes})))


def subscribe(router: VipRouter, peer: bytes, prefix: str, all_platforms: bool) -> None:
    router.route(msg(peer, b"pubsub", "subscribe",
                     json.dumps({"prefix": prefix, "bus": "", "all_platforms": all_platforms})))


def publish(router: VipRouter, peer: bytes, topic: str, message: object) -> None:
    router.route(msg(peer, b"pubsub", "publish", topic,
                     json.dumps({"bus": "", "headers": HEADERS, "message": message})))


def count_reply(sock: FakeSocket, peer: bytes) -> int:
    return int([f for f in sock.to(peer) if f[6] == b"request_response"][-1][7])


# -- pub/sub -------------------------------------------------------------------------------------

def test_a_local_publish_goes_to_the_platforms_that_subscribed_to_it(wired) -> None:
    router, routing, link, sock = wired
    hello(router)
    external_list(router, ["devices/"])
    assert routing.remote_prefixes("B") == ["devices/"]
    publish(router, b"pub", "devices/x", 42)
    (forwarded,) = link.ops(b"pubsub")
    assert forwarded[:7] == [b"", b"VIP1", b"pub", b"m1", b"pubsub", b"external_publish", b"devices/x"]
    assert json.loads(forwarded[7])["sender"] == "pub" and json.loads(forwarded[7])["message"] == 42
    assert count_reply(sock, b"pub") == 1  # no local subscriber, one platform
    publish(router, b"pub", "weather/x", 1)
    assert len(link.ops(b"pubsub")) == 1 and count_reply(sock, b"pub") == 0


def test_platform_messages_are_refused_from_peers_that_are_not_linked_platforms(wired) -> None:
    router, routing, link, _sock = wired
    hello(router, b"instance.B.0.5")  # named after the wrong platform
    hello(router, b"instance.A.0.6", name="Z")  # a platform not in our discovery file
    external_list(router, ["x"], b"instance.A.0.6", name="Z")
    external_list(router, ["x"], b"some.agent")
    external_list(router, ["x"], b"instance.B.0.5")
    assert routing.remote_prefixes("B") == [] and routing.remote_prefixes("Z") == []
    assert router.malformed == 3
    publish(router, b"pub", "x", 1)
    assert link.ops(b"pubsub") == []


def test_a_platform_hello_is_believed_only_from_a_key_whose_user_id_is_that_platform() -> None:
    sock = FakeSocket()
    router = VipRouter(b"rid", sock.send)
    pubsub = PubSubService(router)
    pubsub.attach()
    users = {B_LINK: "B", b"instance.A.0.7": "approved-key"}  # what ZAP authenticated each key as
    routing = ExternalRouting(router, pubsub, "A", user_of=users.get)
    routing.attach()
    routing.add_link(FakeLink("B"))
    hello(router, b"instance.A.0.7")  # an approved agent key posing as platform B
    external_list(router, ["devices/"], b"instance.A.0.7")
    assert routing.remote_prefixes("B") == [] and router.malformed == 2
    hello(router)  # B's own key
    external_list(router, ["devices/"])
    assert routing.remote_prefixes("B") == ["devices/"]


def test_a_publish_from_another_platform_reaches_all_platforms_subscribers_only(wired) -> None:
    router, _routing, link, sock = wired
    subscribe(router, b"everywhere", "devices/", all_platforms=True)
    subscribe(router, b"local", "devices/", all_platforms=False)
    hello(router)
    body = json.dumps({"sender": "b.pub", "bus": "", "headers": HEADERS, "message": 7}).encode()
    router.route(msg(B_LINK, b"pubsub", "external_publish", "devices/t", body, user=b"b.pub"))
    (delivered,) = [f for f in sock.to(b"everywhere") if f[6] == b"publish"]
    # delivered as from B: its agent is B's principal, in the user frame and as the sender
    assert delivered[1:7] == [b"", b"VIP1", b"B:b.pub", b"m1", b"pubsub", b"publish"]
    assert delivered[7] == b"devices/t"
    assert json.loads(delivered[8]) == {"sender": "B:b.pub", "bus": "", "headers": HEADERS, "message": 7}
    assert [f for f in sock.to(b"local") if f[6] == b"publish"] == []
    assert link.ops(b"pubsub")[-1][5] == b"external_list"  # nothing forwarded back to B


@pytest.mark.parametrize("topic,body,why", [
    ("devices/t", {"sender": "b.pub", "bus": "other", "message": 1}, "only the default bus"),
    ("elsewhere/t", {"sender": "b.pub", "bus": "", "message": 1}, "not one this platform subscribed to"),
    ("devices/t", {"bus": "", "message": 1}, "with a sender"),
    ("devices/t", {"sender": "b.pub", "headers": [1], "message": 1}, "headers must be"),
])
def test_a_linked_publish_is_refused_off_the_default_bus_or_off_our_subscriptions(wired, topic, body,
                                                                                  why, caplog) -> None:
    router, routing, _link, sock = wired
    subscribe(router, b"everywhere", "devices/", all_platforms=True)
    subscribe(router, b"here", "", all_platforms=False)  # our own publishes only: never asked B
    hello(router)
    router.route(msg(B_LINK, b"pubsub", "external_publish", topic, json.dumps(body)))
    assert [f for f in sock.sent if f[6:7] == [b"publish"]] == []
    assert routing.publishes_refused == 1 and why in caplog.text


def test_a_linked_publish_to_a_protected_topic_needs_the_remote_principals_capability() -> None:
    sock = FakeSocket()
    router = VipRouter(b"rid", sock.send)
    protected = ProtectedTopics()
    protected.replace({"write-protect": [{"topic": "devices/secure", "capabilities": ["can_secure"]}]})
    # our own platform.driver holds the capability: B's agent of that name does not
    table: dict[str, dict[str, None]] = {"platform.driver": {"can_secure": None}}
    pubsub = PubSubService(router, protected=protected, capabilities=lambda: table)
    pubsub.attach()
    routing = ExternalRouting(router, pubsub, "A")
    routing.attach()
    routing.add_link(FakeLink("B"))
    subscribe(router, b"everywhere", "devices/", all_platforms=True)
    hello(router)
    body = json.dumps({"sender": "platform.driver", "bus": "", "message": 1})
    router.route(msg(B_LINK, b"pubsub", "external_publish", "devices/secure/x", body, user=b"platform.x"))
    assert [f for f in sock.sent if f[6:7] == [b"publish"]] == [] and routing.publishes_refused == 1
    table["B:platform.driver"] = {"can_secure": None}  # granted to B's agent by an auth entry of that user id
    router.route(msg(B_LINK, b"pubsub", "external_publish", "devices/secure/x", body))
    (delivered,) = [f for f in sock.sent if f[6:7] == [b"publish"]]
    assert json.loads(delivered[8])["sender"] == "B:platform.driver"


def test_external_publish_from_a_plain_agent_is_not_delivered(wired) -> None:
    router, _routing, _link, sock = wired
    subscribe(router, b"everywhere", "", all_platforms=True)
    router.route(msg(b"forger", b"pubsub", "external_publish", "t", b'{"sender": "x", "message": 1}'))
    assert [f for f in sock.to(b"everywhere") if f[6] == b"publish"] == []


def test_our_all_platforms_subscriptions_are_sent_on_change_and_again_on_every_connect(wired) -> None:
    router, routing, link, _sock = wired
    subscribe(router, b"s1", "local/", all_platforms=False)
    assert link.ops(b"pubsub") == []
    subscribe(router, b"s1", "alerts/", all_platforms=True)
    subscribe(router, b"s2", "alerts/", all_platforms=True)  # same set: nothing new to say
    lists = [json.loads(f[6]) for f in link.ops(b"pubsub")]
    assert lists == [{"A": ["alerts/"]}]
    routing.link_connected(link)  # B restarted and forgot: tell it again
    router.drop_peer(b"s1"), router.drop_peer(b"s2")
    lists = [json.loads(f[6]) for f in link.ops(b"pubsub")]
    assert lists == [{"A": ["alerts/"]}, {"A": ["alerts/"]}, {"A": []}]


def test_subscriptions_made_while_the_link_is_down_are_sent_when_it_connects(wired) -> None:
    router, routing, link, _sock = wired
    link.connected = False
    subscribe(router, b"s1", "alerts/", all_platforms=True)
    link.connected = True
    routing.link_connected(link)
    assert [json.loads(f[6]) for f in link.ops(b"pubsub")] == [{"A": ["alerts/"]}]


def test_a_dropped_platform_link_forgets_its_subscriptions_unless_a_newer_link_replaced_them(wired) -> None:
    router, routing, _link, _sock = wired
    hello(router)
    external_list(router, ["old/"])
    newer = b"instance.A.0.99"  # B restarted: its new link spoke before the old one was noticed gone
    hello(router, newer)
    external_list(router, ["new/"], newer)
    router.drop_peer(B_LINK)
    assert routing.remote_prefixes("B") == ["new/"]
    router.drop_peer(newer)
    assert routing.remote_prefixes("B") == []


# -- RPC -----------------------------------------------------------------------------------------

def send_platform(to_platform: str, to_peer: str, request: dict, sender: bytes = b"caller") -> list[bytes]:
    envelope = {"to_platform": to_platform, "to_peer": to_peer, "from_platform": "", "from_peer": "",
                "args": [json.dumps(request)]}
    return msg(sender, b"external_rpc", "send_platform", json.dumps(envelope), msg_id=b"r1")


REQUEST = {"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "r1"}


def test_a_call_goes_over_the_link_with_our_platform_and_the_caller_filled_in(wired) -> None:
    router, _routing, link, _sock = wired
    router.route(send_platform("B", "b.callee", REQUEST))
    (sent,) = link.ops(b"external_rpc")
    assert sent[:6] == [b"", b"VIP1", b"caller", b"r1", b"external_rpc", b"send_peer"]
    envelope = json.loads(sent[6])
    filled = (envelope["from_platform"], envelope["from_peer"], envelope["to_peer"])
    assert filled == ("A", "caller", "b.callee")


@pytest.mark.parametrize(("platform", "connected", "text"), [
    ("C", True, b"no link to platform 'C'"),
    ("B", False, b"platform 'B' is not connected"),
])
def test_a_call_to_an_unknown_or_unconnected_platform_is_refused_at_once(wired, platform, connected,
                                                                         text) -> None:
    router, _routing, link, sock = wired
    link.connected = connected
    router.route(send_platform(platform, "x.callee", REQUEST))
    (error,) = sock.to(b"caller")
    assert error[4:7] == [b"r1", b"error", b"113"] and error[7].startswith(text)
    assert error[8:] == [b"x.callee", b"external_rpc"]


def test_a_call_from_another_platform_is_delivered_to_the_local_agent(wired) -> None:
    router, _routing, _link, sock = wired
    hello(router)
    envelope = json.dumps({"to_platform": "A", "to_peer": "a.callee", "from_platform": "B",
                           "from_peer": "b.caller", "args": [json.dumps(REQUEST)]}).encode()
    router.route(msg(B_LINK, b"external_rpc", "send_peer", envelope, user=b"b.caller", msg_id=b"r9"))
    (delivered,) = sock.to(b"a.callee")
    # the caller is B's principal (never our user b.caller), in the user frame the agent trusts
    assert delivered == [b"a.callee", b"", b"VIP1", b"B:b.caller", b"r9", b"external_rpc", b"send_peer",
                         envelope]


def test_a_call_from_another_platform_names_that_platform_whatever_its_envelope_says(wired) -> None:
    router, routing, link, sock = wired
    routing.add_link(FakeLink("C"))
    hello(router)
    envelope = {"to_platform": "Z", "to_peer": "a.callee", "from_platform": "C", "from_peer": "b.caller",
                "args": [json.dumps(REQUEST)]}
    router.route(msg(B_LINK, b"external_rpc", "send_peer", json.dumps(envelope), user=b"control.connection"))
    (delivered,) = sock.to(b"a.callee")
    assert delivered[3] == b"B:b.caller"
    seen = json.loads(delivered[7])
    assert (seen["from_platform"], seen["to_platform"]) == ("B", "A")  # answers go back over B's link

    sock.gone.add(b"a.nobody")  # the router's own answer for a missing agent goes to B, not C
    router.route(msg(B_LINK, b"external_rpc", "send_peer", json.dumps({**envelope, "to_peer": "a.nobody"})))
    assert [json.loads(f[6])["to_platform"] for f in link.ops(b"external_rpc")] == ["B"]


def test_a_call_to_a_missing_local_agent_is_answered_with_unavailable_agent(wired) -> None:
    router, _routing, link, sock = wired
    hello(router)
    sock.gone.add(b"a.nobody")
    batch = [REQUEST, {"jsonrpc": "2.0", "method": "log", "params": []}]  # the notification needs no answer
    envelope = json.dumps({"to_platform": "A", "to_peer": "a.nobody", "from_platform": "B",
                           "from_peer": "b.caller", "args": [json.dumps(batch)]}).encode()
    router.route(msg(B_LINK, b"external_rpc", "send_peer", envelope, msg_id=b"r9"))
    (answer,) = link.ops(b"external_rpc")
    reply = json.loads(answer[6])
    assert (reply["to_platform"], reply["to_peer"], reply["from_peer"]) == ("B", "b.caller", "a.nobody")
    (errors,) = [json.loads(text) for text in reply["args"]]
    assert [e["error"]["code"] for e in errors] == [UNAVAILABLE_AGENT] and errors[0]["id"] == "r1"
    assert "a.nobody" in errors[0]["error"]["data"]["detail"]


def test_send_peer_from_a_plain_agent_is_refused(wired) -> None:
    router, _routing, _link, sock = wired
    envelope = json.dumps({"to_peer": "victim", "from_platform": "B", "args": []})
    router.route(msg(b"forger", b"external_rpc", "send_peer", envelope))
    assert sock.to(b"victim") == [] and router.malformed == 1


@pytest.mark.parametrize("args", [("send_platform", "{bad"), ("send_platform", "[]"),
                                  ("nope", '{"args": []}'),
                                  ("send_platform", '{"args": [], "to_platform": 3}')])
def test_malformed_calls_get_an_invalid_argument_error(wired, args) -> None:
    router, _routing, link, sock = wired
    router.route(msg(b"caller", b"external_rpc", *args))
    (error,) = sock.to(b"caller")
    assert error[5:7] == [b"error", b"22"] and link.sent == []


def test_stop_closes_every_link(wired) -> None:
    _router, routing, link, _sock = wired
    routing.stop()
    assert link.stopped and routing.statistics()["links"] == {}


def test_a_call_naming_our_own_platform_is_served_here(wired) -> None:
    router, _routing, link, sock = wired
    router.route(send_platform("A", "a.callee", REQUEST))
    (delivered,) = sock.to(b"a.callee")
    assert delivered[5:7] == [b"external_rpc", b"send_peer"] and link.ops(b"external_rpc") == []
    sock.gone.add(b"a.nobody")
    router.route(send_platform("A", "a.nobody", REQUEST))
    (answer,) = [f for f in sock.to(b"caller") if f[5] == b"external_rpc"]
    (error,) = [json.loads(text) for text in json.loads(answer[7])["args"]]
    assert error["id"] == "r1" and error["error"]["code"] == UNAVAILABLE_AGENT
