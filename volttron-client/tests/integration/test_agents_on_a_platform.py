"""Agents in their own processes, started with vip_main, on a real platform (auth on, CURVE).

Covers: RPC and pub/sub between two agent processes over ipc and over tcp; both carrying on after
the platform restarts (hello again, subscriptions re-sent); an RPC to a missing identity failing
with Unreachable within a second; a second agent with an identity already in use failing with one
clear line while the first keeps working; SIGTERM running ``onstop``; and a clear exit when no
platform answers.
"""

from __future__ import annotations

import signal

import pytest

pytestmark = pytest.mark.integration


def wait_ready(observer, identity: str, poll) -> None:
    def answers() -> bool:
        try:
            return observer.vip.rpc.call(identity, "agent.version").get(timeout=2) == "1.0"
        except Exception:
            return False

    poll(answers, 30, f"agent {identity} to answer")


def exchange(observer, poll, tag: str) -> None:
    """alice calls bob and publishes; bob receives it."""
    call = observer.vip.rpc.call
    assert call("alice", "call_peer", "bob", 20, 22).get(timeout=10) == 42
    assert call("alice", "publish", f"test/{tag}", {"n": tag}).get(timeout=10) >= 1
    poll(
        lambda: ["alice", f"test/{tag}", {"n": tag}] in call("bob", "received_messages").get(timeout=5),
        10,
        f"bob to receive test/{tag}",
    )


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_rpc_and_pubsub_between_agent_processes_survive_a_platform_restart(platform, poll, transport) -> None:
    bob = platform.agent_process("bob", transport)
    alice = platform.agent_process("alice", transport)
    observer = platform.observer(transport=transport)
    wait_ready(observer, "bob", poll)
    wait_ready(observer, "alice", poll)
    exchange(observer, poll, "before")

    first_pid = platform.process.pid
    assert platform.stop() == 0
    platform.start()
    assert platform.process.pid != first_pid and platform.starts == 2
    observer = platform.observer("observer2", transport=transport)
    wait_ready(observer, "bob", poll)
    wait_ready(observer, "alice", poll)
    exchange(observer, poll, "after")  # bob's subscription was re-sent without anyone asking
    assert alice.poll() is None and bob.poll() is None


def test_rpc_to_a_missing_identity_is_unreachable_within_a_second(platform, poll) -> None:
    platform.agent_process("alice")
    observer = platform.observer()
    wait_ready(observer, "alice", poll)
    outcome = observer.vip.rpc.call("alice", "call_missing").get(timeout=10)
    assert outcome["error"] == "Unreachable" and outcome["seconds"] < 1.0


def test_duplicate_identity_fails_clearly_and_the_first_keeps_working(platform, poll) -> None:
    first = platform.agent_process("bob")
    observer = platform.observer()
    wait_ready(observer, "bob", poll)
    second = platform.agent_process("bob", TEST_WELCOME_TIMEOUT="3")
    assert second.wait(30) == 1
    err = platform.stderr_of(second).strip().splitlines()
    assert len(err) == 1, err
    assert "'bob'" in err[0] and "already be connected" in err[0] and "Traceback" not in err[0]
    assert observer.vip.rpc.call("bob", "add", 2, 3).get(timeout=5) == 5
    assert first.poll() is None


def test_sigterm_runs_onstop_and_exits_zero(platform, poll, tmp_path) -> None:
    marker = tmp_path / "stopped"
    agent = platform.agent_process("alice", STOP_MARKER=str(marker))
    observer = platform.observer()
    wait_ready(observer, "alice", poll)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(20) == 0
    assert marker.read_text() == "stopped"


def test_no_platform_means_one_line_and_exit_1(platform, poll) -> None:
    agent = platform.agent_process(
        "alice", "tcp", VOLTTRON_VIP_ADDR="tcp://127.0.0.1:9", TEST_WELCOME_TIMEOUT="1"
    )
    assert agent.wait(30) == 1
    err = platform.stderr_of(agent).strip().splitlines()
    assert len(err) == 1 and "could not reach the platform at tcp://127.0.0.1:9" in err[0]


def test_unauthorized_key_fails_with_one_line_naming_the_cause(platform) -> None:
    agent = platform.agent_process("intruder", authorize=False, TEST_WELCOME_TIMEOUT="2")
    assert agent.wait(30) == 1
    err = platform.stderr_of(agent).strip().splitlines()
    assert len(err) == 1, err
    assert "'intruder'" in err[0] and "authorize" in err[0]
