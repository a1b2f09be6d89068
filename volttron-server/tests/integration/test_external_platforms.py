"""Two real platforms linked over ZeroMQ (reference §2.5 external_rpc, §2.6 external pub/sub, §3.6).

Each platform gets a tcp address on a free loopback port, its own instance name, a discovery file
naming the other, and an auth entry for the other's public key (user id = the other's instance
name), exactly as docs/multi-platform.md tells an administrator to do. Agents are the client's
``build_agent`` agents in this gevent test process; every wait polls with a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent
from volttron.client.vip.agent.errors import Unreachable
from volttron.server.platform_home import platform_keystore
from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.utils import jsonrpc
from volttron.utils.keys import generate_keypair

pytestmark = pytest.mark.integration


def discovery_entry(platform: Any, name: str) -> dict[str, str]:
    return {"vip-address": platform.vip_address, "instance-name": name,
            "serverkey": platform_keystore(platform.home).public}


def link(platform: Any, remotes: dict[str, dict[str, str]], trusted: dict[str, str]) -> None:
    """Write ``platform``'s discovery file and let each trusted platform key in under its name."""
    (platform.home / "external_platform_discovery.json").write_text(json.dumps(remotes))
    ensure_entries(platform.auth_file, [AuthEntry(credentials=key, user_id=name, comments="linked platform")
                                        for name, key in trusted.items()])


def make_pair(platform_factory: Callable[..., Any]) -> tuple[Any, Any]:
    a = platform_factory(args=["--instance-name", "A"], name="a")
    b = platform_factory(args=["--instance-name", "B"], name="b")
    for p in (a, b):
        p.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    link(a, {"B": discovery_entry(b, "B")}, {"B": platform_keystore(b.home).public})
    link(b, {"A": discovery_entry(a, "A")}, {"A": platform_keystore(a.home).public})
    return a, b


@pytest.fixture
def agents() -> Iterator[Callable[..., Agent]]:
    made: list[Agent] = []

    def make(platform: Any, identity: str) -> Agent:
        keys = platform.add_allow_entry(identity)
        agent = build_agent(address=platform.local_address, identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=platform.serverkey,
                            volttron_home=str(platform.home), timeout=10)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.core.stop(timeout=5)


class Inbox:
    """A pub/sub callback that keeps ``(sender, topic, message)``."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []

    def __call__(self, peer: str, sender: str, bus: str, topic: str, headers: dict, message: Any) -> None:
        self.items.append((sender, topic, message))

    def messages(self) -> list[Any]:
        return [message for _sender, _topic, message in self.items]


def publish_until_received(publisher: Agent, topic: str, inbox: Inbox, timeout: float) -> int:
    """Publish ``topic`` with counters until ``inbox`` holds one of them (the link may still be coming)."""
    sent = iter(range(10_000))

    def arrived() -> bool:
        publisher.vip.pubsub.publish("pubsub", topic, message=next(sent)).get(timeout=5)
        return any(isinstance(m, int) for m in inbox.messages())

    poll(arrived, timeout, f"a publish to {topic!r} to cross platforms")
    return len(inbox.items)


def test_a_publish_reaches_all_platforms_subscribers_of_the_other_platform_only(platform_factory, agents):
    a, b = make_pair(platform_factory)
    a.start(), b.start()
    publisher = agents(a, "a.publisher")
    everywhere, local_only = Inbox(), Inbox()
    agents(b, "b.everywhere").vip.pubsub.subscribe("pubsub", "weather/", everywhere,
                                                   all_platforms=True).get(timeout=5)
    b_local = agents(b, "b.local")
    b_local.vip.pubsub.subscribe("pubsub", "weather/", local_only).get(timeout=5)

    publish_until_received(publisher, "weather/outside", everywhere, 15)
    sender, topic, _message = everywhere.items[0]
    assert (sender, topic) == ("A:a.publisher", "weather/outside")  # A's agent, as A's principal on B
    # A holds B's prefixes: a matching publish counts platform B as one receiver, others do not
    assert publisher.vip.pubsub.publish("pubsub", "weather/x", message="counted").get(timeout=5) == 1
    assert publisher.vip.pubsub.publish("pubsub", "other/x", message="not forwarded").get(timeout=5) == 0

    # a local publish on B after A's: the internal-only subscriber would have got A's first (FIFO)
    b_local.vip.pubsub.publish("pubsub", "weather/inside", message="local").get(timeout=5)
    poll(lambda: "local" in local_only.messages(), 5, "the local publish on B")
    assert [s for s, _t, _m in local_only.items] == ["b.local"]
    poll(lambda: "counted" in everywhere.messages(), 5, "the counted publish")
    assert "not forwarded" not in everywhere.messages()


def test_rpc_with_external_platform_reaches_an_agent_of_the_other_platform(platform_factory, agents):
    a, b = make_pair(platform_factory)
    a.start(), b.start()
    callee = agents(b, "b.callee")
    callers: list[Any] = []

    def whoami(x: int) -> dict[str, Any]:
        callers.append(callee.vip.rpc.context.vip_message.peer)
        return {"twice": 2 * x, "platform": "B"}

    callee.vip.rpc.export(whoami, "whoami")
    caller = agents(a, "a.caller")

    def answered() -> Any:
        try:
            return caller.vip.rpc.call("b.callee", "whoami", 21, external_platform="B").get(timeout=5)
        except Unreachable:
            return None  # the link is still coming up: refused at once, try again

    assert poll(answered, 15, "an answer from B") == {"twice": 42, "platform": "B"}
    assert callers[-1] == "A:a.caller"  # A's agent, as A's principal on B

    # an agent missing on B: B answers for it, so the caller learns at once, not at its timeout
    started = time.monotonic()
    with pytest.raises(jsonrpc.Error) as info:
        caller.vip.rpc.call("b.nobody", "whoami", 1, external_platform="B").get(timeout=10)
    assert info.value.code == jsonrpc.UNAVAILABLE_AGENT and "b.nobody" in str(info.value.data)
    assert time.monotonic() - started < 5

    # a platform that is in nobody's discovery file
    with pytest.raises(Unreachable, match="no link to platform 'C'"):
        caller.vip.rpc.call("c.x", "whoami", 1, external_platform="C").get(timeout=5)


def test_rpc_to_an_unreachable_platform_fails_quickly_with_a_clear_error(platform_factory, agents):
    a = platform_factory(args=["--instance-name", "A"], name="a")
    a.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    nobody = platform_factory(name="gone")  # its port is free and nothing listens there
    link(a, {"C": {"vip-address": nobody.vip_address, "instance-name": "C",
                   "serverkey": generate_keypair().public}}, {})
    a.start()
    caller = agents(a, "a.caller")
    started = time.monotonic()
    with pytest.raises(Unreachable, match="platform 'C' is not connected"):
        caller.vip.rpc.call("c.agent", "anything", external_platform="C").get(timeout=10)
    assert time.monotonic() - started < 3
    assert a.running()


def test_links_come_back_and_subscriptions_are_resent_after_the_other_platform_restarts(
        platform_factory, agents):
    a, b = make_pair(platform_factory)
    a.start(), b.start()
    inbox = Inbox()
    listener = agents(a, "a.listener")
    listener.vip.pubsub.subscribe("pubsub", "alerts/", inbox, all_platforms=True).get(timeout=5)
    before = agents(b, "b.publisher")
    publish_until_received(before, "alerts/before", inbox, 15)
    before.core.stop(timeout=5)

    assert b.stop() == 0
    again = platform_factory(args=["--instance-name", "B"], name="b")  # same home, keys, port
    again.port, again.vip_address = b.port, b.vip_address
    again.start()
    # the restarted B knows nothing of A's subscription until A's link reconnects and resends it
    after = agents(again, "b.publisher2")
    inbox.items.clear()
    publish_until_received(after, "alerts/after", inbox, 20)
    assert inbox.items[0][:2] == ("B:b.publisher2", "alerts/after")
    assert "linked to platform 'B'" in a.log_text()


def test_a_platform_whose_key_the_other_refuses_never_links_and_says_why(platform_factory, agents):
    a, b = make_pair(platform_factory)
    (b.home / "auth.json").unlink()  # B has forgotten A's key (its own entries come back at start)
    a.start(), b.start()
    caller = agents(a, "a.caller")
    poll(lambda: "refused our key" in a.log_text(), 15, "A to log that B refused its key")
    with pytest.raises(Unreachable, match="platform 'B' is not connected"):
        caller.vip.rpc.call("b.x", "anything", external_platform="B").get(timeout=5)


def test_an_unusable_discovery_file_stops_the_start_with_one_clear_line(platform_factory):
    a = platform_factory(args=["--instance-name", "A"], name="a")
    a.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (a.home / "external_platform_discovery.json").write_text(
        json.dumps({"B": {"vip-address": "ipc://@/nope", "instance-name": "B", "serverkey": "x"}}))
    a.expect_clean_exit = False
    a.launch()
    assert a.wait(15) == 1
    stderr = a.stderr_path.read_text()
    assert "entry 'B': vip-address must be tcp://host:port" in stderr and "Traceback" not in stderr


def test_a_key_that_is_not_the_platforms_cannot_say_hello_as_that_platform(platform_factory, agents):
    a, _b = make_pair(platform_factory)  # A lets B's platform key in as user "B"; B itself is not started
    a.start()
    inbox = Inbox()
    agents(a, "a.everywhere").vip.pubsub.subscribe("pubsub", "x/", inbox, all_platforms=True).get(timeout=5)
    # an approved key with no identity bound may pick its identity, even a link's name ...
    keys = generate_keypair()
    ensure_entries(a.auth_file, [AuthEntry(credentials=keys.public, user_id="approved", comments="free key")])
    impostor = a.client("instance.A.99", keys=keys, authorize=False)
    # ... but its hello as platform B is not believed, so neither is a publish "from B"
    impostor.send("", "routing_table", "hello", "hello", "B")
    forged = {"sender": "b.agent", "bus": "", "headers": {}, "message": "forged"}
    impostor.send("", "pubsub", "external_publish", "x/1", json.dumps(forged))
    publisher = agents(a, "a.publisher")
    publish_until_received(publisher, "x/control", inbox, 10)  # after the forged one (FIFO)
    assert "forged" not in inbox.messages(), "a publish from an impostor of platform B was delivered"
    poll(lambda: "ignored a hello as platform 'B'" in a.log_text(), 10, "the refusal to be logged")
