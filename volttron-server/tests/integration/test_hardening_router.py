"""Hardening battery, the ZeroMQ router's bounds (issue 11, items 3, 5 and 7).

* subscriptions: one peer asking for a million subscription prefixes; the router's memory, the
  subscriber's answer, and what another agent's ping sees when that peer is dropped;
* queued bytes: a peer that sends 1 MB messages to itself and never reads, and a subscriber of
  100 KB publishes that never reads; the router's memory, what is dropped, and the flooder's fate;
* identity claims: a key holding an identity it may not use (``control.connection``, an agent's
  identity while it restarts, look-alikes of reserved names); the real owner must get in.

Figures are reported with the ``report`` fixture (see the hardening battery's conftest section);
docs/reliability.md lists them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
import zmq

from volttron.client.testing.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def rss(platform: Any) -> int:
    """Resident memory of the platform process, bytes."""
    return psutil.Process(platform.process.pid).memory_info().rss


class PingWatch:
    """Another agent pinging the router in a thread; keeps the slowest round trip.

    A ping that gets no answer within ``timeout`` counts as ``timeout`` and ends the watch.
    """

    def __init__(self, client: Any, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(100_000):  # bounded; stop() ends it long before
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                self.client.request("", "ping", "ping", timeout=self.timeout)
            except AssertionError:
                self.times.append(self.timeout)
                return
            self.times.append(time.monotonic() - started)
            self._stop.wait(0.01)

    def __enter__(self) -> PingWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    @property
    def worst(self) -> float:
        return max(self.times, default=0.0)


# -- item 5: a million subscription prefixes ------------------------------------------------------

def subscription_flood(platform: Any, report: Callable[[str, Any], None], wanted: int) -> None:
    witness = platform.client("witness")
    witness.hello()
    pinger = platform.client("pinger")  # its own socket: zmq sockets are not shared between threads
    pinger.hello()
    flooder = platform.client("flooder", hwm=0)
    flooder.hello()
    before = rss(platform)
    batch = 10_000
    accepted = 0
    refusals: list[bytes] = []
    deadline = time.monotonic() + 300
    for start in range(0, wanted, batch):
        prefixes = [f"flood/{i:07d}" for i in range(start, start + batch)]
        request = json.dumps({"prefix": prefixes, "bus": "", "all_platforms": False})
        reply = flooder.request("", "pubsub", "subscribe", request, timeout=60)
        if reply.subsystem == b"error":
            refusals.append(reply.args[1])
            if len(refusals) >= 3:  # it is told clearly, and keeps being told: enough
                break
        else:
            accepted += batch
        assert time.monotonic() < deadline, "the subscription flood took too long"
    grown = (rss(platform) - before) / MB
    with PingWatch(pinger, timeout=30) as watch:
        closed = time.monotonic()
        flooder.close()
        platform.clients.remove(flooder)
        witness.recv_until(lambda m: m.subsystem == b"peerlist" and m.args[:2] == [b"drop", b"flooder"],
                           timeout=60)
        drop_notice = time.monotonic() - closed
        goal = len(watch.times) + 20
        with contextlib.suppress(WaitTimeout):  # 20 more pings after the drop, or what came in 10 s
            wait_until(lambda: len(watch.times) >= goal or not watch._thread.is_alive(), timeout=10,
                       what="20 more pings", interval=0.01)
    assert platform.running()
    report("prefixes_asked", wanted)
    report("prefixes_accepted", accepted)
    report("refusal_text", refusals[0].decode() if refusals else "")
    report("rss_growth_mb", round(grown, 1))
    report("drop_notice_s", round(drop_notice, 3))
    report("witness_worst_ping_during_drop_s", round(watch.worst, 3))
    assert refusals, f"all {accepted} prefixes were accepted: no limit on subscriptions per peer"
    assert b"subscriptions" in refusals[0] and b"limit" in refusals[0]
    assert grown <= 50.0, f"the router grew by {grown:.0f} MB for one peer's subscriptions"
    assert watch.worst < 0.5, f"a ping took {watch.worst:.2f} s while the router dropped the flooder"


def test_a_million_subscriptions_are_refused_and_a_drop_never_stalls(running_platform, report) -> None:
    """One peer asks for 1,000,000 prefixes: refused past the limit with a clear error, RSS +<=50 MB,
    the other agent's ping stays under 0.5 s while the peer is dropped."""
    subscription_flood(running_platform, report, 1_000_000)


# -- item 7: an identity held by a key that may not use it ------------------------------------------

EACCES = b"13"


def wait_disconnected(client: Any, timeout: float) -> float | None:
    """Seconds until the client's monitor reports the platform closed its connection; None if not."""
    started = time.monotonic()
    try:
        client.wait_event(zmq.EVENT_DISCONNECTED, timeout)
    except AssertionError:
        return None
    return time.monotonic() - started


def welcome_within(client: Any, timeout: float) -> float | None:
    """Say hello (again each second, as a client does on every reconnect) until welcomed; seconds or None."""
    started = time.monotonic()

    def welcomed() -> bool:
        # refused (or no answer within a second): the connection is being closed; the next is a new one
        return client.request("", "hello", "hello", timeout=1).args[:1] == [b"welcome"]

    try:
        wait_until(welcomed, timeout=timeout, what="a welcome", interval=0.2, retry=(AssertionError,))
    except WaitTimeout:
        return None
    return time.monotonic() - started


def squat_and_take_back(platform: Any, report: Callable[[str, Any], None], identity: str,
                        owner_keys: Any) -> None:
    thief_keys = platform.add_allow_entry("agent.thief")
    witness = platform.client("witness")
    witness.hello()
    pinger = platform.client("pinger")
    pinger.hello()
    with PingWatch(pinger) as watch:
        thief = platform.client(identity, keys=thief_keys, authorize=False, monitor=True)
        reply = thief.request("", "hello", "hello", timeout=5)
        assert reply.subsystem == b"error" and reply.args[0] == EACCES, reply.frames
        closed = wait_disconnected(thief, 3)
        owner = platform.client(identity, keys=owner_keys, authorize=False)
        owner_in = welcome_within(owner, 20)
        delivered = False
        if owner_in is not None:  # what others send to the identity reaches its owner, not the thief
            witness.send(identity, "probe", "for the owner", msg_id="p1")
            try:
                got = owner.recv_until(lambda m: m.subsystem == b"probe", timeout=5)
                delivered = got.args == [b"for the owner"]
            except AssertionError:
                delivered = False
        thief_got = [m for m in thief.drain(0.2) if m.subsystem == b"probe"]
    report("claimant_closed_s", None if closed is None else round(closed, 3))
    report("owner_welcomed_s", None if owner_in is None else round(owner_in, 3))
    report("messages_for_owner_that_reached_owner", int(delivered))
    report("messages_for_owner_that_reached_claimant", len(thief_got))
    report("witness_worst_ping_s", round(watch.worst, 3))
    assert closed is not None, "the refused claimant's connection was left open, holding the identity"
    assert owner_in is not None, f"the rightful owner of {identity!r} never got in"
    assert delivered and not thief_got
    assert watch.worst < 1.0
    assert "refused" in platform.log_text() and "closed" in platform.log_text()


def test_a_refused_claim_on_control_connection_is_closed_and_vctl_gets_in(running_platform, report) -> None:
    """An agent key claims ``control.connection``: refused, closed at once; vctl's key gets in."""
    from volttron.server.platform_home import control_connection_keystore

    owner_keys = control_connection_keystore(running_platform.home).keypair
    squat_and_take_back(running_platform, report, "control.connection", owner_keys)


def test_a_refused_claim_on_a_restarting_agent_is_closed_and_the_agent_gets_in(running_platform,
                                                                                report) -> None:
    """While ``agent.owner`` is away another key claims it: closed; the agent reconnects as itself."""
    owner_keys = running_platform.add_allow_entry("agent.owner")
    squat_and_take_back(running_platform, report, "agent.owner", owner_keys)


LOOK_ALIKES = ["Platform.Control", "platform.control ", "control.connection\x00", " platform.auth",
               "PLATFORM.CONFIG_STORE", "platform\u200b.control", "\uff50latform.control", "Witness"]


def test_keys_without_an_identity_cannot_take_look_alikes_of_reserved_names(running_platform, report) -> None:
    """A key approved without an identity claims look-alikes of reserved and taken names: each refused."""
    from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
    from volttron.utils.keys import generate_keypair

    running_platform.client("witness").hello()

    def free_key(n: int) -> Any:
        keys = generate_keypair()
        entry = AuthEntry(credentials=keys.public, user_id=f"approved-{n}")  # no identity bound
        ensure_entries(running_platform.auth_file, [entry])
        return keys

    taken = []
    for n, name in enumerate(LOOK_ALIKES):
        client = running_platform.client(name.encode("utf-8"), keys=free_key(n), authorize=False)
        reply = client.request("", "hello", "hello", timeout=5)
        if reply.args[:1] == [b"welcome"]:
            taken.append(name)
    control = running_platform.client("my.script", keys=free_key(99), authorize=False)
    assert control.hello().args[0] == b"welcome"  # a free name is still free
    report("look_alikes_tried", len(LOOK_ALIKES))
    report("look_alikes_taken", len(taken))
    assert taken == [], f"keys without an identity took {taken!r}"


# -- item 3: bytes queued for peers that do not read ---------------------------------------------

LIMITS_OFF = os.environ.get("VOLTTRON_TEST_ROUTER_LIMITS_OFF") == "1"
"""Run the byte-bound attacks with the bounds lifted (the platform as before the fix): they fail."""
PER_PEER = 16 * MB
BOUNDED_ARGS = ["--max-queued-bytes-per-peer", str(PER_PEER), "--peer-overflow-timeout", "3",
                "--max-message-size", str(2 * MB)]
UNBOUNDED_ARGS = ["--max-queued-bytes-per-peer", str(1 << 40), "--max-queued-bytes", str(1 << 40),
                  "--peer-overflow-timeout", str(1 << 20)]
OVERFLOW = re.compile(r"does not take what it is sent: \d+ bytes held for it, (\d+) messages to it dropped")


def bounded_platform(platform_factory: Callable[..., Any]) -> Any:
    return platform_factory(args=UNBOUNDED_ARGS if LIMITS_OFF else BOUNDED_ARGS).start()


def self_flood(platform: Any, report: Callable[[str, Any], None], seconds: float) -> None:
    pinger = platform.client("pinger")
    pinger.hello()
    witness = platform.client("witness")  # hears the platform drop the flooder
    witness.hello()
    flooder = platform.client("flooder", hwm=10)  # reads nothing
    flooder.hello()
    payload = b"x" * MB
    before = peak = rss(platform)
    sent = 0
    disconnected_after = None
    started = time.monotonic()
    with PingWatch(pinger) as watch:
        for _ in range(1_000_000):
            now = time.monotonic()
            if now - started >= seconds or peak - before > 1500 * MB:  # the point is made: stop
                break
            try:
                flooder.socket.send_multipart([b"flooder", b"VIP1", b"", b"", b"flood", payload], zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                flooder.socket.poll(100, zmq.POLLOUT)  # until its queue takes more (bounded)
            if sent % 20 == 0:
                peak = max(peak, rss(platform))
            while disconnected_after is None and witness.socket.poll(0):
                message = witness.recv(timeout=1)
                if message.subsystem == b"peerlist" and message.args[:2] == [b"drop", b"flooder"]:
                    disconnected_after = now - started
        peak = max(peak, rss(platform))
    dropped = [int(n) for n in OVERFLOW.findall(platform.log_text())]
    assert platform.running()
    report("sent_mb", sent)
    report("rss_growth_peak_mb", round((peak - before) / MB, 1))
    report("flooder_disconnected_after_s", disconnected_after and round(disconnected_after, 2))
    report("messages_dropped_logged", max(dropped, default=0))
    report("drop_warnings_logged", len(dropped))
    report("witness_worst_ping_s", round(watch.worst, 3))
    # The bound held for it is 16 MiB (32 while it is seen reading); what else shows is most likely
    # read-ahead: libzmq takes a sender's messages off the socket before the router's loop reads them,
    # bounded in messages (RCVHWM), not bytes: +11 to +27 MB on a quiet host, +126 MB once in a full
    # parallel CI run. The attack without the bounds grew the router by 1,372 MB, far past this line.
    assert (peak - before) <= 256 * MB, f"the router grew by {(peak - before) / MB:.0f} MB for one flooder"
    assert disconnected_after is not None, "a peer that kept overflowing was never disconnected"
    assert dropped, "dropped messages were not logged"
    assert watch.worst < 1.0


def test_a_peer_flooding_itself_is_bounded_in_bytes_and_disconnected(platform_factory, report) -> None:
    """A peer sends 1 MB messages to itself for 10 s and reads nothing: RSS +<=256 MB with a 16 MiB
    bound (see self_flood), drops logged, the peer disconnected, others' pings under 1 s."""
    self_flood(bounded_platform(platform_factory), report, 10)


def big_slow_subscriber(platform: Any, report: Callable[[str, Any], None], count: int) -> None:
    subscription = json.dumps({"prefix": "big", "bus": "", "all_platforms": False})
    slow = platform.client("slow", hwm=10)
    assert slow.request("", "pubsub", "subscribe", subscription).args[0] == b"request_response"
    fast = platform.client("fast", hwm=0)
    assert fast.request("", "pubsub", "subscribe", subscription).args[0] == b"request_response"
    alice = platform.client("alice", hwm=0)
    body = json.dumps({"bus": "", "headers": {}, "message": "x" * 100_000})
    before = peak = rss(platform)
    delivered = 0
    batch = 50
    deadline = time.monotonic() + 180
    for start in range(0, count, batch):
        for i in range(start, start + batch):
            alice.send("", "pubsub", "publish", "big/1", body, msg_id=str(i))
        last = str(start + batch - 1).encode()
        alice.recv_until(lambda m, last=last: m.msg_id == last, timeout=20)
        alice.pending.clear()
        while delivered < start + batch:
            delivered += fast.recv(timeout=20).args[:1] == [b"publish"]
        peak = max(peak, rss(platform))
        assert time.monotonic() < deadline, "the publishes took too long"
    slow_got = sum(1 for m in slow.drain(0.3) if m.args[:1] == [b"publish"])
    report("published_mb", round(count * 0.1, 1))
    report("other_subscriber_received", delivered)
    report("slow_subscriber_received", slow_got)
    report("rss_growth_peak_mb", round((peak - before) / MB, 1))
    assert delivered == count
    grown = (peak - before) / MB
    assert grown <= 60, f"the router grew by {grown:.0f} MB for a slow subscriber"


def test_a_slow_subscriber_of_big_publishes_costs_bounded_bytes(platform_factory, report) -> None:
    """1,500 publishes of 100 KB to a subscriber that reads nothing: RSS +<=60 MB with a 16 MiB bound;
    the other subscriber gets every one."""
    big_slow_subscriber(bounded_platform(platform_factory), report, 1500)
