"""Agent processes under gevent: start, output, stop escalation, crash restarts, shutdown.

The test agent's module is run directly (no install needed); its behaviour comes from
``TESTAGENT_MODE`` and it records each start in ``$AGENT_DATA_DIR/starts.jsonl``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from volttron.client.testing.waiting import wait_until
from volttron.server.aip.errors import AgentProcessError, AIPError
from volttron.server.aip.launcher import LaunchSpec
from volttron.server.aip.supervisor import AgentState, AgentSupervisor, SupervisorPolicy

AGENT_SCRIPT = Path(__file__).resolve().parents[1] / "fixtures/agents/testagent/src/vtestagent/agent.py"
FAST = SupervisorPolicy(
    restart_limit=2,
    restart_window=60.0,
    backoff_initial=0.1,
    backoff_factor=2.0,
    backoff_max=0.3,
    sigint_grace=1.0,
    sigterm_grace=1.0,
    sigkill_grace=5.0,
)


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (zombies count as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


class Agent:
    """One test agent's launch spec and its marker file."""

    def __init__(self, tmp_path: Path, identity: str, mode: str) -> None:
        self.identity = identity
        self.data = tmp_path / identity / "data"
        self.data.mkdir(parents=True)
        self.spec = LaunchSpec(
            identity=identity,
            argv=(sys.executable, str(AGENT_SCRIPT)),
            cwd=tmp_path / identity,
            env={
                "AGENT_DATA_DIR": str(self.data),
                "AGENT_VIP_IDENTITY": identity,
                "TESTAGENT_MODE": mode,
                "TESTAGENT_LIFETIME": "60",
                "PYTHONUNBUFFERED": "1",
            },
        )

    def factory(self) -> LaunchSpec:
        return self.spec

    def starts(self) -> list[dict]:
        path = self.data / "starts.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.fixture
def supervisor():
    sup = AgentSupervisor(FAST)
    yield sup
    assert sup.shutdown() == []
    assert sup.running() == []


def test_start_logs_output_and_stop(supervisor: AgentSupervisor, tmp_path: Path, caplog) -> None:
    agent = Agent(tmp_path, "runner", "run")
    with caplog.at_level(logging.INFO, logger="agents"):
        status = supervisor.start("runner", agent.factory)
        assert status.state is AgentState.RUNNING and status.pid
        wait_until(lambda: agent.starts() and any("started runner" in r.getMessage() for r in caplog.records))
        (start,) = agent.starts()
        assert start["pid"] == status.pid and start["cwd"] == str(tmp_path / "runner")
        assert start["stdin_is_devnull"] is True
        assert supervisor.start("runner", agent.factory).pid == status.pid  # already running: no-op
        stopped = supervisor.stop("runner")
    assert stopped.state is AgentState.STOPPED and stopped.returncode == 0 and stopped.pid is None
    assert not alive(status.pid)
    by_name = {r.name: r for r in caplog.records}
    record = by_name["agents.runner.vtestagent.agent"]
    assert record.agent_identity == "runner" and record.remote_name == "vtestagent.agent"
    assert by_name["agents.stdout"].getMessage() == "testagent stdout line"
    assert any(r.getMessage() == "stopping on signal 2" for r in caplog.records)
    assert len(agent.starts()) == 1


def test_crash_restarts_with_backoff_then_fails(supervisor: AgentSupervisor, tmp_path: Path) -> None:
    agent = Agent(tmp_path, "crasher", "crash")
    supervisor.start("crasher", agent.factory)
    status = supervisor.wait_state("crasher", [AgentState.FAILED], timeout=20)
    assert status.returncode == 3
    assert status.last_error == "RuntimeError: testagent crashed on purpose"
    assert status.crashes == FAST.restart_limit + 1
    starts = agent.starts()
    assert len(starts) == FAST.restart_limit + 1
    gaps = [b["time"] - a["time"] for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= FAST.backoff(1) and gaps[1] >= FAST.backoff(2) >= 2 * FAST.backoff_initial
    assert supervisor.statistics()["crasher"]["state"] == "FAILED"
    # an explicit start resets the count: it gets its restarts again
    assert supervisor.start("crasher", agent.factory).crashes == 0
    supervisor.wait_state("crasher", [AgentState.FAILED], timeout=20)
    assert len(agent.starts()) == 2 * (FAST.restart_limit + 1)


def test_clean_exit_is_not_restarted(supervisor: AgentSupervisor, tmp_path: Path) -> None:
    agent = Agent(tmp_path, "done", "exit0")
    supervisor.start("done", agent.factory)
    wait_until(lambda: supervisor.status("done").returncode is not None)
    status = supervisor.status("done")
    assert status.state is AgentState.STOPPED and status.returncode == 0 and status.crashes == 0
    assert supervisor._agents["done"].pending_restart is None
    assert len(agent.starts()) == 1


def test_stop_during_backoff_cancels_the_restart(tmp_path: Path) -> None:
    sup = AgentSupervisor(SupervisorPolicy(backoff_initial=30.0, backoff_max=30.0))
    agent = Agent(tmp_path, "slow", "crash")
    sup.start("slow", agent.factory)
    sup.wait_state("slow", [AgentState.RESTARTING], timeout=10)
    status = sup.stop("slow")
    assert status.state is AgentState.STOPPED and status.returncode == 3
    assert sup._agents["slow"].pending_restart is None
    assert sup.shutdown() == []


def test_agent_ignoring_sigint_is_stopped_with_sigterm(supervisor: AgentSupervisor, tmp_path: Path) -> None:
    agent = Agent(tmp_path, "stubborn", "ignore-sigint")
    supervisor.start("stubborn", agent.factory)
    wait_until(agent.starts)
    started = time.monotonic()
    status = supervisor.stop("stubborn")
    assert time.monotonic() - started >= FAST.sigint_grace
    assert status.state is AgentState.STOPPED and status.returncode == 0  # its SIGTERM handler exits 0


def test_agent_ignoring_everything_is_killed(supervisor: AgentSupervisor, tmp_path: Path) -> None:
    agent = Agent(tmp_path, "deaf", "ignore-all")
    supervisor.start("deaf", agent.factory)
    wait_until(agent.starts)
    status = supervisor.stop("deaf")
    assert status.state is AgentState.STOPPED and status.returncode == -9
    assert not alive(agent.starts()[0]["pid"])


def test_shutdown_leaves_no_process(tmp_path: Path) -> None:
    sup = AgentSupervisor(FAST)
    parent = Agent(tmp_path, "parent", "spawn-child")
    plain = Agent(tmp_path, "plain", "run")
    sup.start("parent", parent.factory)
    sup.start("plain", plain.factory)
    wait_until(lambda: parent.starts() and plain.starts())
    pids = [parent.starts()[0]["pid"], parent.starts()[0]["child_pid"], plain.starts()[0]["pid"]]
    assert all(alive(pid) for pid in pids)
    assert sup.shutdown() == []
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10)
    assert sup.running() == []
    assert {sup.status(i).state for i in ("parent", "plain")} == {AgentState.STOPPED}


def test_a_spec_that_cannot_be_built_marks_the_agent_failed(supervisor: AgentSupervisor) -> None:
    def broken() -> LaunchSpec:
        raise AIPError("the agent's code is not installed")

    with pytest.raises(AgentProcessError, match="cannot start broken"):
        supervisor.start("broken", broken)
    status = supervisor.status("broken")
    assert status.state is AgentState.FAILED and "not installed" in (status.last_error or "")


def test_unknown_agents_are_stopped(supervisor: AgentSupervisor) -> None:
    assert supervisor.status("nobody").state is AgentState.STOPPED
    assert supervisor.stop("nobody").pid is None
    supervisor.forget("nobody")


def test_forget_refuses_a_running_agent(supervisor: AgentSupervisor, tmp_path: Path) -> None:
    agent = Agent(tmp_path, "busy", "run")
    supervisor.start("busy", agent.factory)
    with pytest.raises(AIPError, match="still running"):
        supervisor.forget("busy")
    supervisor.stop("busy")
    supervisor.forget("busy")
    assert "busy" not in supervisor.statistics()


def test_backoff_policy() -> None:
    policy = SupervisorPolicy(backoff_initial=1.0, backoff_factor=2.0, backoff_max=5.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
