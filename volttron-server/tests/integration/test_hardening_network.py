"""Hardening battery, network side: unknown CURVE keys and a subscriber that reads nothing.

Each test reports its figures (``name: value``) three ways: printed to the terminal even without
``-s``, attached to the test as ``record_property`` (JUnit XML), and merged into
``<pytest basetemp>/hardening-figures.json``. docs/reliability.md lists the promises and the last
figures. The ``slow`` variants run only with ``-m slow`` or ``VOLTTRON_TEST_SLOW=1``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
import zmq

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def rss(platform: Any) -> int:
    """Resident memory of the platform process, bytes."""
    return psutil.Process(platform.process.pid).memory_info().rss


# -- unknown CURVE keys --------------------------------------------------------------------------

def unknown_keys(platform: Any, report: Callable[[str, Any], None], attempts: int) -> None:
    alice = platform.client("alice")
    alice.hello()

    def attempt() -> float:
        mallory = platform.client("mallory", authorize=False, monitor=True)
        started = time.monotonic()
        try:
            event = mallory.wait_event(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED, 2)
            took = time.monotonic() - started
            assert event == zmq.EVENT_HANDSHAKE_FAILED_AUTH, f"an unknown key was accepted (event {event})"
            for frames in ([b"alice", b"VIP1", b"", b"1", b"RPC", b'{"jsonrpc": "2.0", "method": "x"}'],
                           [b"", b"VIP1", b"", b"2", b"hello", b"hello"]):
                try:  # queued while libzmq retries the connection, or refused at once: never routed
                    mallory.socket.send_multipart(frames, zmq.NOBLOCK)
                except zmq.Again:
                    pass
        finally:
            mallory.close()
            platform.clients.remove(mallory)
        return took

    for _ in range(20):  # warm-up: first ZAP requests, auth.json caches, pending-key records
        attempt()
    before = rss(platform)
    started = time.monotonic()
    times = [attempt() for _ in range(attempts)]
    elapsed = time.monotonic() - started
    after = rss(platform)
    # nothing any stranger sent reached alice, and alice is served as before
    assert alice.request("", "ping", "ping", timeout=5).args == [b"pong"]
    leaked = [m.frames for m in alice.drain(0.3) if m.subsystem != b"peerlist" or b"mallory" in m.args]
    assert leaked == []
    assert b"mallory" not in alice.request("", "peerlist", "list").args
    assert platform.running()
    growth = (after - before) / MB
    report("attempts", attempts)
    report("frames_routed", len(leaked))
    report("max_refusal_s", round(max(times), 3))
    report("median_refusal_s", round(sorted(times)[len(times) // 2], 4))
    report("attempts_per_s", round(attempts / elapsed, 1))
    report("rss_growth_mb", round(growth, 2))
    assert max(times) < 2.0
    assert growth <= 10.0, f"server RSS grew by {growth:.1f} MB over {attempts} refused keys"


def test_unknown_curve_keys_are_refused_and_cost_nothing(running_platform, report) -> None:
    """200 connections with fresh unknown keys: each refused within 2 s, 0 frames routed, RSS +<=10 MB."""
    unknown_keys(running_platform, report, 200)


@pytest.mark.slow
def test_unknown_curve_keys_are_refused_and_cost_nothing_long(slow_enabled, running_platform, report) -> None:
    """The same with 1,000 keys."""
    if not slow_enabled:
        pytest.skip(reason="long variant: run with -m slow or VOLTTRON_TEST_SLOW=1")
    unknown_keys(running_platform, report, 1000)


# -- a subscriber that reads nothing ------------------------------------------------------------

DROPPED = re.compile(r"not keeping up; (\d+) publishes dropped so far")


def slow_subscriber(platform: Any, report: Callable[[str, Any], None], count: int) -> None:
    subscription = {"prefix": "flood", "bus": "", "all_platforms": False}
    slow = platform.client("slow", hwm=10)
    assert slow.request("", "pubsub", "subscribe", json.dumps(subscription)).args[0] == b"request_response"
    fast = platform.client("fast", hwm=0)
    assert fast.request("", "pubsub", "subscribe", json.dumps(subscription)).args[0] == b"request_response"
    alice = platform.client("alice", hwm=0)
    body = json.dumps({"bus": "", "headers": {}, "message": "x" * 1000})
    before = rss(platform)
    peak = before
    delivered = acks = 0
    batch = 500
    deadline = time.monotonic() + 120
    for start in range(0, count, batch):
        for i in range(start, start + batch):
            alice.send("", "pubsub", "publish", "flood/1", body, msg_id=str(i))
        last = str(start + batch - 1).encode()
        alice.recv_until(lambda m, last=last: m.msg_id == last, timeout=10)
        acks += 1 + sum(1 for m in alice.pending if m.args[:1] == [b"request_response"])
        alice.pending.clear()
        while delivered < start + batch:
            delivered += fast.recv(timeout=10).args[:1] == [b"publish"]
        peak = max(peak, rss(platform))
        assert time.monotonic() < deadline, "the flood took too long"
    after = rss(platform)
    assert alice.request("", "ping", "ping", timeout=2).args == [b"pong"]
    slow_got = sum(1 for m in slow.drain(0.3) if m.args[:1] == [b"publish"])
    logged = [int(n) for n in DROPPED.findall(platform.log_text())]
    report("published", count)
    report("other_subscriber_received", delivered)
    report("slow_subscriber_received", slow_got)
    report("slow_subscriber_dropped", count - slow_got)
    report("drop_warnings_logged", len(logged))
    report("rss_growth_peak_mb", round((peak - before) / MB, 2))
    report("rss_growth_end_mb", round((after - before) / MB, 2))
    assert (acks, delivered) == (count, count)
    assert slow_got < count and logged and max(logged) <= count - slow_got
    assert (peak - before) / MB <= 50.0, "server memory grew with the unread publishes"


def test_a_subscriber_that_reads_nothing_costs_bounded_memory(running_platform, report) -> None:
    """20,000 publishes: the other subscriber gets all, the silent one is counted as dropped."""
    slow_subscriber(running_platform, report, 20_000)


@pytest.mark.slow
def test_a_subscriber_that_reads_nothing_costs_bounded_memory_long(slow_enabled, running_platform,
                                                                   report) -> None:
    """The same with 50,000 publishes."""
    if not slow_enabled:
        pytest.skip(reason="long variant: run with -m slow or VOLTTRON_TEST_SLOW=1")
    slow_subscriber(running_platform, report, 50_000)
