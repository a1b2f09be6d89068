"""Hardening battery, linked ZeroMQ platforms: a link is not a master key (issue 17).

Platforms A and B are linked as docs/multi-platform.md says: each lets the other's platform key in
with the entry ``vctl auth add-platform`` makes (user id = the other's instance name, bound to the
link's identity form) and names it in its discovery file. The attacks come from B's side:

- a *hostile link*: a raw VIP client holding B's platform key, connected to A as a link
  (``instance.A.<n>``) that introduced itself as B, writing whatever it likes in its envelopes;
- a capability-less agent on an honest B.

Each refusal that fails says ``NOT ENFORCED:`` (``tests/test_enforcement_switches.py`` switches the
checks off and requires that). Figures are reported with the battery's ``report`` fixture; the
last ones are in docs/reliability.md. Every wait polls with a deadline.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest

from volttron.client.commands.auth import link_entry
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent, ConnectError
from volttron.server.platform_home import platform_keystore
from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.utils.jsonrpc import UNAUTHORIZED, Unauthorized

pytestmark = pytest.mark.integration

NOT_ENFORCED = "NOT ENFORCED: "
VCTL = Path(sys.executable).parent / "vctl"
ADMIN_CAPABILITY = "allow_auth_modifications"  # what platform.control's admin methods require
_numbers = itertools.count(1)


def request(ident: str, method: str, *params: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": list(params)})


class LinkedPlatforms:
    """A and B linked both ways; agents in this process; the hostile link to A with B's key.

    ``new_process(args=..., name=...)`` makes a not-yet-started platform process
    (``platform_factory``, or the enforcement-switch test's patched one).
    """

    def __init__(self, new_process: Callable[..., Any],
                 report: Callable[[str, Any], None] | None = None) -> None:
        self.a = new_process(args=["--instance-name", "A"], name="a")
        self.b = new_process(args=["--instance-name", "B"], name="b")
        self.report = report or (lambda name, value: None)
        self.agents: dict[str, Agent] = {}

    def start(self) -> LinkedPlatforms:
        """Write both discovery files and link entries, start both, wait until linked both ways."""
        self.prepare()
        self.a.start(), self.b.start()
        self.wait_linked()
        return self

    def wait_linked(self) -> None:
        poll(lambda: "linked to platform 'B'" in self.a.log_text() and "linked to platform 'A'" in
             self.b.log_text(), 40, "A and B to link both ways")

    def prepare(self, link_b_to_a: bool = True) -> None:
        """Both discovery files, and the link entries (A's for B only with ``link_b_to_a``)."""
        a, b = self.a, self.b
        for p in (a, b):
            p.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        for here, there, name, other in ((a, b, "A", "B"), (b, a, "B", "A")):
            entry = {"vip-address": there.vip_address, "instance-name": other,
                     "serverkey": platform_keystore(there.home).public}
            (here.home / "external_platform_discovery.json").write_text(json.dumps({other: entry}))
            # what `vctl auth add-platform <other> --credentials <its key>` adds
            if here is b or link_b_to_a:
                ensure_entries(here.auth_file, [AuthEntry.from_dict(
                    link_entry(other, platform_keystore(there.home).public, name))])

    def agent(self, platform: Any, identity: str) -> Agent:
        keys = platform.add_allow_entry(identity)
        agent = build_agent(address=platform.local_address, identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=platform.serverkey,
                            volttron_home=str(platform.home), timeout=30)
        self.agents[f"{platform.home.name}/{identity}"] = agent
        return agent

    def stop_agent(self, name: str) -> None:
        """Stop an agent this object made (``<home>/<identity>``)."""
        self.agents.pop(name).core.stop(timeout=5)

    def hostile_link(self) -> Any:
        """A raw client on A with B's platform key, named as a link to A, that said hello as B."""
        client = self.a.client(f"instance.A.{next(_numbers)}", keys=platform_keystore(self.b.home),
                               authorize=False, address=self.a.vip_address)
        client.hello()
        client.send("", "routing_table", "hello", "hello", "B")
        return client

    def call_from_b(self, client: Any, to_peer: str, from_peer: str, *units: str,
                    from_platform: str = "B") -> None:
        """Send ``units`` to A's ``to_peer`` as an external call of B's ``from_peer`` (as B writes it)."""
        envelope = {"to_platform": "A", "to_peer": to_peer, "from_platform": from_platform,
                    "from_peer": from_peer, "args": list(units)}
        client.send("", "external_rpc", "send_peer", json.dumps(envelope), msg_id=f"m{next(_numbers)}")

    def close(self) -> None:
        for name in list(self.agents):
            self.stop_agent(name)


@pytest.fixture
def linked(platform_factory: Callable[..., Any], report: Callable[[str, Any], None]
           ) -> Iterator[LinkedPlatforms]:
    pair = LinkedPlatforms(platform_factory, report)
    yield pair
    pair.close()


def external_answers(witness: Any, timeout: float) -> list[Any]:
    """The JSON-RPC answers in the next ``external_rpc`` message ``witness`` (a raw client) gets.

    Waits in short slices with gevent sleeps between, so agents of this process keep running.
    """
    message = poll(lambda: witness.recv_until(lambda m: m.subsystem == b"external_rpc", 0.02), timeout,
                   "an external_rpc message", interval=0.05, retry=(AssertionError,))
    envelope = json.loads(message.args[1])
    return [json.loads(text) for text in envelope["args"]]


# -- 1. the caller a linked platform names is not believed -------------------------------------

def test_a_linked_platform_cannot_name_our_administrator_as_its_caller(linked: LinkedPlatforms) -> None:
    """Hostile link names control.connection as the caller of A's stop_platform: refused, A stays up."""
    linked.start()
    # B's control.connection, where A's answers to that caller arrive (a test stand-in for vctl on B)
    witness = linked.b.client("control.connection")
    witness.hello()
    hostile = linked.hostile_link()
    started = time.monotonic()
    linked.call_from_b(hostile, "platform.control", "control.connection", request("f1", "stop_platform"))
    (answer,) = external_answers(witness, 10)
    took = time.monotonic() - started
    refused = isinstance(answer.get("error"), dict) and answer["error"].get("code") == UNAUTHORIZED
    linked.report("forged_stop_platform_refused", refused)
    linked.report("answer_s", round(took, 3))
    if not refused:
        if "error" not in answer:
            poll(lambda: not linked.a.running(), 10, "A to stop after the forged stop_platform")
            linked.report("platform_a_gone_s", round(time.monotonic() - started, 2))
        raise AssertionError(f"{NOT_ENFORCED}A ran stop_platform for a caller B named "
                             f"'control.connection': {answer}")
    assert "B:control.connection" in json.dumps(answer), answer  # refused for B's principal, by name
    assert linked.a.running()


# -- 2. a remote caller is its own principal -----------------------------------------------------

def test_a_remote_agent_holds_nothing_of_a_local_user_with_its_name(linked: LinkedPlatforms) -> None:
    """B's capability-less ops.agent calling A, where ops.agent is an administrator: refused, until
    A grants B:ops.agent the capability by an entry of that user id."""
    linked.start()
    linked.a.add_allow_entry("ops.agent", capabilities={ADMIN_CAPABILITY: None})  # A's admin (not connected)
    caller = linked.agent(linked.b, "ops.agent")  # no capabilities on B

    def call() -> Any:
        return caller.vip.rpc.call("platform.control", "clear_status", external_platform="A").get(timeout=10)

    try:
        result = call()
    except Unauthorized as exc:
        detail = str(exc.data)
        linked.report("same_name_call_refused", True)
        assert "B:ops.agent" in detail, detail
    else:
        linked.report("same_name_call_refused", False)
        raise AssertionError(f"{NOT_ENFORCED}B's ops.agent held A's ops.agent capabilities: {result!r}")
    # A's administrator grants B's agent the capability, under its own principal (multi-platform.md)
    done = vctl(linked.a.home, "auth", "add", "--user-id", "B:ops.agent", "--capabilities", ADMIN_CAPABILITY)
    assert done.returncode == 0, done.stderr

    def granted() -> bool:
        try:
            call()
        except Unauthorized:
            return False
        return True

    poll(granted, 15, "the grant to B:ops.agent to take effect")
    linked.report("granted_call_succeeds", True)


def test_a_linked_platform_cannot_pose_as_our_auth_service(linked: LinkedPlatforms) -> None:
    """Hostile link names platform.auth as the caller of an A agent's auth.update, granting itself
    a capability, then calls the method that needs it: refused."""
    linked.start()
    guarded = linked.agent(linked.a, "a.guarded")
    guarded.vip.rpc.export(lambda: "secret", "secret")
    guarded.vip.rpc.allow("secret", "can_secret")
    witness = linked.b.client("b.mallory")  # where A's answers to B's b.mallory arrive
    witness.hello()
    hostile = linked.hostile_link()
    table = {"b.mallory": {"can_secret": None}, "B:b.mallory": {"can_secret": None}}
    linked.call_from_b(hostile, "a.guarded", "platform.auth", request("u1", "auth.update", table))
    linked.call_from_b(hostile, "a.guarded", "b.mallory", request("s1", "secret"))
    (answer,) = external_answers(witness, 10)
    linked.report("secret_after_forged_auth_update", answer.get("result") == "secret")
    assert "error" in answer, f"{NOT_ENFORCED}a.guarded took a capability table from B: {answer}"


# -- 3. a linked platform's publishes are checked ------------------------------------------------

def test_a_linked_platforms_publishes_are_checked_and_qualified(linked: LinkedPlatforms) -> None:
    """Protected topics apply, the sender is B's principal, only the default bus crosses."""
    linked.a.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (linked.a.home / "protected_topics.json").write_text(json.dumps(
        {"write-protect": [{"topic": "devices/secure", "capabilities": ["can_publish_secure"]}]}))
    linked.start()
    got: list[tuple[str, str, str]] = []
    subscriber = linked.agent(linked.a, "a.everywhere")
    subscriber.vip.pubsub.subscribe("pubsub", "devices/", lambda peer, sender, bus, topic, headers, message:
                                    got.append((sender, bus, topic)), all_platforms=True).get(timeout=5)
    subscriber.vip.pubsub.subscribe("pubsub", "devices/", lambda peer, sender, bus, topic, headers, message:
                                    got.append((sender, bus, topic)), bus="other",
                                    all_platforms=True).get(timeout=5)
    hostile = linked.hostile_link()
    forged = [("devices/secure/valve", {"sender": "platform.driver", "bus": "", "message": "open"}),
              ("devices/open/x", {"sender": "platform.control", "bus": "", "message": "as control"}),
              ("devices/open/y", {"sender": "b.agent", "bus": "other", "message": "other bus"})]
    for topic, body in forged:
        hostile.send("", "pubsub", "external_publish", topic, json.dumps(body), user=body["sender"])
    # a publish that must arrive, after the forged ones on the same connection (FIFO)
    hostile.send("", "pubsub", "external_publish", "devices/open/end",
                 json.dumps({"sender": "b.agent", "bus": "", "message": "end"}))
    poll(lambda: any(topic == "devices/open/end" for _s, _b, topic in got), 10, "the last publish")
    protected = [g for g in got if g[2].startswith("devices/secure")]
    unqualified = [g for g in got if not g[0].startswith("B:")]
    other_bus = [g for g in got if g[2] == "devices/open/y"]  # sent on bus "other": on no bus here
    linked.report("protected_delivered", len(protected))
    linked.report("unqualified_senders", len(unqualified))
    linked.report("other_bus_delivered", len(other_bus))
    assert not protected, f"{NOT_ENFORCED}B published to A's protected topic: {protected}"
    assert not unqualified, f"{NOT_ENFORCED}B's publishes delivered as A's own senders: {unqualified}"
    assert not other_bus, f"{NOT_ENFORCED}a publish on another bus crossed: {other_bus}"
    assert ("B:platform.control", "", "devices/open/x") in got


# -- 4. answers come only from who was asked ----------------------------------------------------

def test_an_answer_from_a_linked_platform_does_not_settle_a_local_call(linked: LinkedPlatforms) -> None:
    """B's agent answers a call A's victim made to a local agent (its id known): ignored."""
    linked.start()
    release = gevent.event.Event()
    slow = linked.agent(linked.a, "a.slow")
    slow.vip.rpc.export(lambda: release.wait(15) and "real", "wait")
    victim = linked.agent(linked.a, "a.victim")
    victim.vip.rpc.export(lambda: "pong", "ping")
    pending = victim.vip.rpc.call("a.slow", "wait")
    # the attacker learnt the id (before the fix ids were <start second>.<pid>.<n>: guessable)
    second = victim.vip.rpc.call("a.slow", "wait")
    linked.report("id_example", pending.ident)
    linked.report("ids_sequential", pending.ident.rsplit(".", 1)[0] == second.ident.rsplit(".", 1)[0])
    attacker = linked.agent(linked.b, "b.nobody")
    forged = [json.dumps({"jsonrpc": "2.0", "id": ident, "result": "FORGED"})
              for ident in (pending.ident, second.ident)]
    envelope = {"to_platform": "A", "to_peer": "a.victim", "from_platform": "", "from_peer": "",
                "args": forged}
    attacker.core.send_vip("", "external_rpc", [b"send_platform", json.dumps(envelope).encode()], "x1")
    # then a real call over the same way: once it is answered, the forged answers were read first
    assert attacker.vip.rpc.call("a.victim", "ping", external_platform="A").get(timeout=10) == "pong"
    settled = pending.ready()
    linked.report("forged_answer_settled_call", settled)
    if settled:
        raise AssertionError(f"{NOT_ENFORCED}a.victim took {pending.get(timeout=0)!r} from B's agent as "
                             "the answer of its call to a.slow")
    release.set()
    assert pending.get(timeout=10) == "real" and second.get(timeout=10) == "real"


# -- 5. a link key speaks only as the link ------------------------------------------------------

def vctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOLTTRON_HOME": str(home)}
    env.pop("VOLTTRON_VIP_ADDR", None)
    return subprocess.run([str(VCTL), *args], env=env, capture_output=True, text=True, timeout=90)


def test_the_link_entry_vctl_adds_lets_the_key_in_as_the_link_only(linked: LinkedPlatforms) -> None:
    """vctl auth add-platform: B's key connects to A as instance.A.<n>, never as an agent's name."""
    linked.prepare(link_b_to_a=False)  # A's entry for B comes from the command
    linked.a.start()
    b_key = platform_keystore(linked.b.home)
    done = vctl(linked.a.home, "auth", "add-platform", "B", "--credentials", b_key.public)
    assert done.returncode == 0, done.stderr
    assert "as its link only" in done.stdout
    linked.b.start()
    linked.wait_linked()
    hostile = linked.hostile_link()  # the link form works (checked first: a refused claim may ban the key)
    assert hostile.request("", "ping", "ping", timeout=5).args == [b"pong"]
    squatted = []
    for identity in ("platform.driver", "weather.station", "B"):
        try:
            agent = build_agent(address=linked.a.vip_address, identity=identity, publickey=b_key.public,
                                secretkey=b_key.secret, serverkey=linked.a.serverkey, timeout=3)
        except ConnectError:
            continue
        squatted.append(identity)
        agent.core.stop(timeout=5)
    linked.report("names_squatted_with_link_key", len(squatted))
    assert not squatted, f"{NOT_ENFORCED}B's link key connected to A as {squatted}"


# -- 6. lower: overlapping subscriptions, reflection --------------------------------------------

def test_a_remote_publish_reaches_only_the_all_platforms_callback(linked: LinkedPlatforms) -> None:
    linked.start()
    everywhere: list[str] = []
    here: list[str] = []
    subscriber = linked.agent(linked.a, "a.both")
    subscriber.vip.pubsub.subscribe("pubsub", "alerts/", lambda *a: everywhere.append(a[3]),
                                    all_platforms=True).get(timeout=5)
    subscriber.vip.pubsub.subscribe("pubsub", "alerts/", lambda *a: here.append(a[3])).get(timeout=5)
    publisher = linked.agent(linked.b, "b.publisher")
    sent = iter(range(10_000))
    poll(lambda: publisher.vip.pubsub.publish("pubsub", f"alerts/{next(sent)}").get(timeout=5) is not None
         and everywhere, 15, "a publish of B to reach A")
    local = linked.agent(linked.a, "a.local")
    local.vip.pubsub.publish("pubsub", "alerts/local").get(timeout=5)
    poll(lambda: "alerts/local" in here, 10, "the local publish")  # after B's (one in-order executor)
    remote_in_internal = [t for t in here if t != "alerts/local"]
    linked.report("remote_publishes_in_internal_callback", len(remote_in_internal))
    assert not remote_in_internal, f"{NOT_ENFORCED}B's publishes reached an internal-only callback"
    assert "alerts/local" in everywhere  # all_platforms subscribers get their own platform's too


def test_answers_go_back_only_over_the_link_the_request_came_in_on(linked: LinkedPlatforms) -> None:
    """The hostile link names A (or C) as the caller's platform: A's answer must not land on A."""
    linked.start()
    reflected_to = linked.a.client("a.witness")  # an agent of A the answer would be reflected to
    reflected_to.hello()
    honest = linked.b.client("b.witness")  # where answers to B's b.witness arrive
    honest.hello()
    hostile = linked.hostile_link()
    linked.call_from_b(hostile, "platform.control", "a.witness", request("r1", "serverkey"),
                       from_platform="A")
    linked.call_from_b(hostile, "platform.control", "b.witness", request("r2", "serverkey"))
    (answer,) = external_answers(honest, 10)  # the second answer, over the link to B
    assert answer["id"] == "r2", answer
    reflected = [m for m in reflected_to.drain(0.3) if m.subsystem == b"external_rpc"]
    linked.report("answers_reflected", len(reflected))
    assert not reflected, f"{NOT_ENFORCED}A answered B's call to its own agent a.witness: {reflected[0].args}"


def test_errors_of_a_link_attack_are_one_line_and_a_keeps_serving(linked: LinkedPlatforms) -> None:
    """Garbage over the link (bad envelopes, wrong types) costs A nothing and is not a traceback."""
    linked.start()
    hostile = linked.hostile_link()
    for body in ("not json", "[]", json.dumps({"args": "x"}), json.dumps({"args": [], "to_peer": 3}),
                 json.dumps({"args": ["{}"], "to_peer": "platform.control", "from_peer": ""})):
        hostile.send("", "external_rpc", "send_peer", body)
    hostile.send("", "pubsub", "external_publish", "devices/x", "not json")
    assert hostile.request("", "ping", "ping", timeout=5).args == [b"pong"]
    assert "Traceback" not in linked.a.log_text()
