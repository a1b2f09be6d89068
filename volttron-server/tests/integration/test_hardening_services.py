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


def error_text(answer: dict[str, Any]) -> str | None:
    """The one line an error answer gives a user (its detail, else its message); None for a result."""
    error = answer.get("error")
    if error is None:
        return None
    data = error.get("data")
    return (data.get("detail") if isinstance(data, dict) else None) or error.get("message")


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
    assert max(latencies) < 10.0, f"another peer waited {max(latencies):.1f} s for control during the flood"
    assert status_s < 20.0, f"vctl status took {status_s:.1f} s during the flood"
    assert busy > 0, "no request of the flood was refused as busy (EAGAIN): the service took them all"
    assert (peak - before) / MB <= 100.0, f"server RSS grew by {(peak - before) / MB:.0f} MB"


def test_rpc_flood_to_a_service_is_bounded_and_others_are_served(running_platform, report) -> None:
    """50,000 unread peerlist calls to platform.control: refusals (EAGAIN), others served < 10 s."""
    rpc_flood(running_platform, report, 50_000)


@pytest.mark.slow
def test_rpc_flood_to_a_service_is_bounded_and_others_are_served_long(slow_enabled, running_platform,
                                                                      report) -> None:
    """The same with 300,000 calls."""
    if not slow_enabled:
        pytest.skip(reason="long variant: run with -m slow or VOLTTRON_TEST_SLOW=1")
    rpc_flood(running_platform, report, 300_000)


# -- item 5: an agent's own authorization entry ----------------------------------------------------

def test_an_agent_cannot_grow_auth_json_through_its_own_rpc_authorizations(running_platform, report) -> None:
    """20 self-reports of 1.5 MB method maps: refused with a clear error, auth.json stays small."""
    platform = running_platform
    greedy = platform.client("greedy")  # allow entry, no capabilities
    observer = platform.client("observer")
    before = platform.auth_file.stat().st_size
    refusals: list[str] = []
    latencies = []
    for call in range(20):
        methods = {f"m{call}_{i:05d}_" + "x" * 120: ["cap_" + "y" * 20] for i in range(10_000)}
        answer = rpc(greedy, AUTH, "update_id_rpc_authorizations", "greedy", methods, timeout=60)
        if "error" in answer:
            refusals.append(error_text(answer) or "")
        t0 = time.monotonic()
        assert "result" in rpc(observer, CONTROL, "peerlist", timeout=30)
        latencies.append(time.monotonic() - t0)
    after = platform.auth_file.stat().st_size
    small = {"run": ["can_run"], "stop": ["can_stop"]}
    t0 = time.monotonic()
    accepted = rpc(greedy, AUTH, "update_id_rpc_authorizations", "greedy", small, timeout=60)
    report("small_self_report_s", round(time.monotonic() - t0, 3))
    report("calls", 20)
    report("bytes_per_call", len(json.dumps(methods)))
    report("refused_calls", len(refusals))
    report("refusal", refusals[0] if refusals else None)
    report("auth_json_bytes_before", before)
    report("auth_json_bytes_after", after)
    report("observer_max_latency_s", round(max(latencies), 3))
    assert after - before < 256 * 1024, f"auth.json grew from {before} to {after} bytes"
    assert len(refusals) == 20 and all("at most" in r for r in refusals), refusals[:1]
    assert accepted.get("result") == small, f"an ordinary self-report must still work: {accepted}"


# -- item 6: config:// references that expand exponentially ---------------------------------------

def test_exponential_config_references_are_refused_at_store_time(running_platform, report) -> None:
    """A chain of 23 configurations each referring twice to the next is refused while stored."""
    platform = running_platform
    exploder = platform.client("exploder")  # its own store needs no capability
    admin = platform.client("admin", capabilities={"edit_config_store": None})
    depth = 22
    acknowledged = 0
    refusal = None
    for i in range(depth, -1, -1):  # the last first, so that each refers to an existing one
        contents = {"v": "z" * 100} if i == depth else {"a": f"config://c{i + 1}", "b": f"config://c{i + 1}"}
        answer = rpc(exploder, STORE, "set_config", f"c{i}", contents, False, False)
        if "error" in answer:
            refusal = error_text(answer)
            break
        acknowledged += 1
    expanded_if_accepted = 2 ** (acknowledged - 1) * 100  # the last acknowledged one, resolved
    report("chain_length", depth + 1)
    report("acknowledged", acknowledged)
    report("refusal", refusal)
    report("expanded_bytes_of_the_last_acknowledged", expanded_if_accepted)
    assert refusal is not None, "all 23 configurations were acknowledged: get-all would build 2**22 copies"
    assert "expand" in refusal or "deep" in refusal, refusal
    t0 = time.monotonic()
    assembled = rpc(admin, STORE, "manage_get_all", "exploder", timeout=30)
    took = time.monotonic() - t0
    report("get_all_s", round(took, 3))
    report("get_all_bytes", len(json.dumps(assembled)))
    assert "result" in assembled and len(json.dumps(assembled)) < 32 * MB and took < 15.0


# -- item 9: identities that name no file an agent could own ----------------------------------------

BAD_IDENTITIES = (".", "..", ".x")


def test_identities_that_would_vanish_are_refused_everywhere(platform_factory, report) -> None:
    """Configurations and auth entries for '.', '..', '.x' are refused: never acknowledged, then lost."""
    first = platform_factory().start()
    admin_caps = {"edit_config_store": None, "allow_auth_modifications": None}
    admin = first.client("admin", capabilities=admin_caps)
    acknowledged = []
    refusals = {}
    for identity in (*BAD_IDENTITIES, "good.agent-1_x"):
        answer = rpc(admin, STORE, "manage_store", identity, "config", '{"a": 1}', "json")
        if "error" in answer:
            refusals[identity] = error_text(answer)
        else:
            acknowledged.append(identity)
    auth_refusals = {}
    for identity in BAD_IDENTITIES:
        entry = {"credentials": "/.*/", "user_id": f"u{len(auth_refusals)}", "identity": identity}
        answer = rpc(admin, AUTH, "auth_file.add", entry)
        auth_refusals[identity] = error_text(answer)
    first.stop()
    second = platform_factory().start()
    admin = second.client("admin", keys=None, capabilities=admin_caps)
    served = rpc(admin, STORE, "manage_list_stores")["result"]
    lost = [i for i in acknowledged if i not in served]
    report("acknowledged", acknowledged)
    report("lost_after_restart", lost)
    report("store_refusals", refusals)
    report("auth_refusals", auth_refusals)
    assert lost == [], f"acknowledged, then gone after a restart: {lost}"
    assert acknowledged == ["good.agent-1_x"], acknowledged
    assert all("must not start with '.'" in (r or "") for r in auth_refusals.values()), auth_refusals
    assert all("must not start with '.'" in (r or "") for r in refusals.values()), refusals


# -- item 10: what an agent may read of the auth service -------------------------------------------

def test_an_agent_reads_only_its_own_authorizations(running_platform, report) -> None:
    """Without a capability: auth_file.read refused, the capability table holds no other user's row."""
    platform = running_platform
    platform.add_allow_entry("boss", capabilities={"allow_auth_modifications": None, "secret_cap": None})
    nosy = platform.client("nosy", capabilities={"own_cap": None})
    reader = platform.client("reader", capabilities={"read_auth_file": None})
    whole = rpc(nosy, AUTH, "auth_file.read")
    table = rpc(nosy, AUTH, "get_user_to_capabilities").get("result", {})
    others = sorted(u for u, caps in table.items() if u != "nosy" and caps)
    report("auth_file_read_by_an_agent", "refused" if "error" in whole else
           f"{len(whole['result']['allow_list'])} entries")
    report("other_users_with_capabilities_seen", len(others))
    assert "error" in whole, "NOT ENFORCED: auth_file.read answered an agent without a capability"
    assert table.get("nosy") == {"own_cap": None}, table
    assert "boss" not in table, f"NOT ENFORCED: an agent read another user's capabilities: {others}"
    full = rpc(reader, AUTH, "auth_file.read")
    assert "result" in full and any(e["user_id"] == "boss" for e in full["result"]["allow_list"]), full
