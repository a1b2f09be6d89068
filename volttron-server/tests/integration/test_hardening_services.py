"""Hardening battery, services side: what one agent can make the platform's services hold.

The attacker is an agent with an allow entry and no capabilities (a raw pyzmq DEALER where the
attack needs no client library). Each test is the attack; it failed before the bound it checks
existed. Figures are reported as in test_hardening_network.py (terminal, ``record_property``, JSON
file); docs/reliability.md lists the bounds, the figures and how to change the limits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = pytest.mark.integration

MB = 1024 * 1024
CONTROL = "platform.control"
AUTH = "platform.auth"
STORE = "platform.config_store"


def rss(platform: Any) -> int:
    """Resident memory of the platform process, bytes."""
    return psutil.Process(platform.process.pid).memory_info().rss


def request_frame(ident: str, method: str, *params: Any) -> str:
    """The JSON-RPC request text a peer sends."""
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": list(params)})


def rpc(client: Any, peer: str, method: str, *params: Any, timeout: float = 10.0) -> dict[str, Any]:
    """One JSON-RPC call from a raw client; returns the answer object (``result`` or ``error``)."""
    reply = client.request(peer, "RPC", request_frame("1", method, *params), timeout=timeout)
    assert reply.subsystem == b"RPC", f"{method} on {peer} answered {reply.args!r}"
    return json.loads(reply.args[0])


# -- item 4: a flood of RPC requests to a service ------------------------------------------------

def patient_call(client: Any, peer: str, method: str, timeout: float = 30.0) -> tuple[dict[str, Any], int]:
    """A call that is sent again after a busy refusal (EAGAIN), as vctl does; (answer, refusals)."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    refusals = 0
    while True:
        left = max(0.1, deadline - time.monotonic())
        reply = client.request(peer, "RPC", request_frame("1", method), timeout=left)
        if reply.subsystem == b"RPC":
            return json.loads(reply.args[0]), refusals
        assert reply.subsystem == b"error" and reply.args[:1] == [b"11"], reply.args
        refusals += 1
        assert time.monotonic() + pause < deadline, f"{method} on {peer} refused as busy for {timeout} s"
        time.sleep(pause)
        pause = min(2 * pause, 1.0)


def vctl(platform: Any, *args: str) -> subprocess.Popen[str]:
    """``vctl <args>`` against ``platform``, started (not waited for)."""
    env = {**os.environ, "VOLTTRON_HOME": str(platform.home)}
    env.pop("VOLTTRON_VIP_ADDR", None)
    return subprocess.Popen([str(Path(sys.executable).parent / "vctl"), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def rpc_flood(platform: Any, report: Callable[[str, Any], None], calls: int) -> None:
    observer = platform.client("observer")
    assert rpc(observer, CONTROL, "peerlist")["result"]  # warm: control is up and answers
    flooder = platform.client("flooder", hwm=0)  # allow entry, no capabilities, never reads
    before = rss(platform)
    peak = before
    latencies: list[float] = []
    observer_refusals = 0
    status: subprocess.Popen[str] | None = None
    status_s: float | None = None
    started = time.monotonic()
    sent = 0
    batch = 2_000
    while sent < calls:
        for i in range(sent, min(calls, sent + batch)):
            flooder.send(CONTROL, "RPC", request_frame(str(i), "peerlist"), msg_id=f"f{i}")
        sent = min(calls, sent + batch)
        if status is None and sent >= calls // 5:
            status_started = time.monotonic()
            status = vctl(platform, "status")
        if status is not None and status_s is None and status.poll() is not None:
            status_s = time.monotonic() - status_started
        if sent % 10_000 == 0 or sent == calls:
            t0 = time.monotonic()
            answer, refused = patient_call(observer, CONTROL, "peerlist")
            latencies.append(time.monotonic() - t0)
            observer_refusals += refused
            assert "result" in answer, f"the observer's call failed during the flood: {answer}"
            peak = max(peak, rss(platform))
    flood_s = time.monotonic() - started
    assert status is not None
    out, err = status.communicate(timeout=60)
    if status_s is None:
        status_s = time.monotonic() - status_started
    assert status.returncode == 0, f"vctl status failed during the flood: {err}"
    # while the service works off what it accepted, others are still served promptly
    for _ in range(5):
        t0 = time.monotonic()
        answer, refused = patient_call(observer, CONTROL, "peerlist")
        assert "result" in answer
        latencies.append(time.monotonic() - t0)
        observer_refusals += refused
        peak = max(peak, rss(platform))
    answers = busy = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # read what the flooder was sent, until nothing more comes
        got = flooder.drain(1.0)
        if not got:
            break
        for message in got:
            if message.subsystem == b"RPC":
                answers += 1
            elif message.subsystem == b"error" and message.args[:1] == [b"11"]:
                busy += 1
    after = rss(platform)
    report("calls", calls)
    report("flood_seconds", round(flood_s, 2))
    report("flooder_answers_read", answers)
    report("flooder_busy_errors_read", busy)
    report("observer_max_latency_s", round(max(latencies), 3))
    report("observer_busy_refusals", observer_refusals)
    report("vctl_status_during_flood_s", round(status_s, 2))
    report("rss_growth_peak_mb", round((peak - before) / MB, 1))
    report("rss_growth_end_mb", round((after - before) / MB, 1))
    assert platform.running()
    assert max(latencies) < 5.0, f"another peer waited {max(latencies):.1f} s for control during the flood"
    assert busy > 0, "no request of the flood was refused as busy (EAGAIN): the service took them all"
    assert (peak - before) / MB <= 100.0, f"server RSS grew by {(peak - before) / MB:.0f} MB"


def test_rpc_flood_to_a_service_is_bounded_and_others_are_served(running_platform, report) -> None:
    """50,000 unread peerlist calls to platform.control: refusals (EAGAIN), others served < 5 s."""
    rpc_flood(running_platform, report, 50_000)


@pytest.mark.slow
def test_rpc_flood_to_a_service_is_bounded_and_others_are_served_long(slow_enabled, running_platform,
                                                                      report) -> None:
    """The same with 300,000 calls."""
    if not slow_enabled:
        pytest.skip("long variant: run with -m slow or VOLTTRON_TEST_SLOW=1")
    rpc_flood(running_platform, report, 300_000)
