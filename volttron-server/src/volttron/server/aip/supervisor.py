"""Agent processes under gevent: start, stop, restart after a crash, and say how each one is doing.

Each agent runs in its own session (so its own process group): stopping it, or its exit, takes its
children along, and the processes marked as its own (:mod:`.leftovers`: a grandchild that left the
group with ``setsid`` too). Each agent gets the parent-death signal, and a spec that names its home
marks the process and starts the home's :class:`~.leftovers.Watchdog`: agents and their descendants
die with the platform, however it dies. A watcher greenlet per process waits for the exit and
decides what follows:

- a stop we asked for, or exit code 0: the agent is ``stopped`` and stays so;
- any other exit is a crash: restarted after a back-off that doubles each time
  (``backoff_initial`` .. ``backoff_max``), at most ``restart_limit`` times within
  ``restart_window`` seconds; one more crash in the window makes it ``FAILED``, with its exit code
  and last error line kept for ``vctl status``. :meth:`AgentSupervisor.start` resets the count.

Stopping sends SIGINT, waits ``sigint_grace``; SIGTERM, waits ``sigterm_grace``; then SIGKILL to the
whole process group. All methods run in the gevent hub's thread; they block only the calling greenlet.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
import os
import pwd
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import gevent
import gevent.subprocess

from volttron.server.aip.agent_output import AgentOutputRelay
from volttron.server.aip.agent_users import AGENT_UMASK
from volttron.server.aip.errors import AgentProcessError, AIPError
from volttron.server.aip.launcher import LaunchSpec
from volttron.server.aip.leftovers import (
    MARK_VARIABLE,
    Watchdog,
    agent_mark,
    end_marked,
    parent_death_preexec,
)

_log = logging.getLogger(__name__)
_POLL_SECONDS = 0.02
_READER_JOIN_SECONDS = 2.0


class AgentState(str, enum.Enum):
    """Where an agent process is in its life."""

    STOPPED = "stopped"
    RUNNING = "running"
    STOPPING = "stopping"
    RESTARTING = "restarting"
    """Crashed; waiting out the back-off before the next start."""
    FAILED = "FAILED"


@dataclass(frozen=True)
class SupervisorPolicy:
    """Restart limits and stop grace periods (seconds)."""

    restart_limit: int = 5
    restart_window: float = 300.0
    backoff_initial: float = 1.0
    backoff_factor: float = 2.0
    backoff_max: float = 60.0
    sigint_grace: float = 10.0
    sigterm_grace: float = 5.0
    sigkill_grace: float = 5.0

    def backoff(self, crash_count: int) -> float:
        """The delay before the restart that follows crash number ``crash_count`` (1-based)."""
        return min(self.backoff_max, self.backoff_initial * self.backoff_factor ** max(0, crash_count - 1))


@dataclass(frozen=True)
class ProcessStatus:
    """One agent's process, as :meth:`AgentSupervisor.status` reports it."""

    identity: str
    state: AgentState
    pid: int | None = None
    returncode: int | None = None
    last_error: str | None = None
    crashes: int = 0
    """Crashes within the restart window."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "identity": self.identity,
            "state": self.state.value,
            "pid": self.pid,
            "returncode": self.returncode,
            "last_error": self.last_error,
            "crashes": self.crashes,
        }


SpecFactory = Callable[[], LaunchSpec]
"""Builds the launch spec afresh at every (re)start, so changed config, tag or keys are picked up."""


@dataclass
class _Agent:
    identity: str
    factory: SpecFactory
    relay: AgentOutputRelay
    state: AgentState = AgentState.STOPPED
    proc: gevent.subprocess.Popen | None = None
    returncode: int | None = None
    stop_requested: bool = False
    crashes: collections.deque[float] = field(default_factory=collections.deque)
    watcher: gevent.Greenlet | None = None
    pending_restart: gevent.Greenlet | None = None
    stopper: gevent.Greenlet | None = None
    home: Path | None = None
    """The home named by the last launch spec: its processes are marked (see :mod:`.leftovers`)."""
    start: str | None = None
    """The number of the last start, in the mark: its leftovers are ended, never a later start's."""


class AgentSupervisor:
    """Runs agent processes by identity."""

    def __init__(self, policy: SupervisorPolicy | None = None, log_prefix: str = "agents") -> None:
        self.policy = policy or SupervisorPolicy()
        self.log_prefix = log_prefix
        self.run = uuid.uuid4().hex
        """This supervisor's run token, in the marks of the processes it starts."""
        self._agents: dict[str, _Agent] = {}
        self._watchdogs: dict[Path, Watchdog] = {}
        self._starts = itertools.count(1)

    # ----- commands

    def start(self, identity: str, factory: SpecFactory) -> ProcessStatus:
        """Start the agent unless it runs already; resets its crash count. Returns its status."""
        agent = self._agents.get(identity)
        if agent is None:
            agent = _Agent(identity, factory, AgentOutputRelay(identity, self.log_prefix))
            self._agents[identity] = agent
        agent.factory = factory
        if agent.stopper is not None:
            agent.stopper.join()
        if agent.state is AgentState.RUNNING:
            return self.status(identity)
        self._cancel_restart(agent)
        agent.crashes.clear()
        agent.relay.last_error = None
        self._spawn(agent)
        return self.status(identity)

    def stop(self, identity: str) -> ProcessStatus:
        """Stop the agent (SIGINT, SIGTERM, then SIGKILL to its group) and wait until it is gone."""
        agent = self._agents.get(identity)
        if agent is None:
            return ProcessStatus(identity, AgentState.STOPPED)
        if self._cancel_restart(agent):
            agent.state = AgentState.STOPPED
        if agent.proc is not None and agent.stopper is None:
            agent.stop_requested = True
            agent.state = AgentState.STOPPING
            agent.stopper = gevent.spawn(self._stop_process, agent, agent.proc)
        if agent.stopper is not None:
            stopper = agent.stopper
            stopper.join()
            if not stopper.successful():
                raise AgentProcessError(f"could not stop {identity}: {stopper.exception}")
        return self.status(identity)

    def restart(self, identity: str, factory: SpecFactory) -> ProcessStatus:
        """Stop the agent if it runs, then start it."""
        self.stop(identity)
        return self.start(identity, factory)

    def forget(self, identity: str) -> None:
        """Drop a stopped agent from the table (after removal)."""
        agent = self._agents.get(identity)
        if agent is None:
            return
        if agent.proc is not None or agent.state in (AgentState.RUNNING, AgentState.STOPPING):
            raise AIPError(f"{identity} is still running; stop it first")
        self._cancel_restart(agent)
        del self._agents[identity]

    def shutdown(self) -> list[str]:
        """Stop every agent at once; returns the identities that could not be stopped (normally none)."""
        for agent in self._agents.values():
            if self._cancel_restart(agent):
                agent.state = AgentState.STOPPED
        running = [a.identity for a in self._agents.values() if a.proc is not None]
        jobs = {identity: gevent.spawn(self.stop, identity) for identity in running}
        gevent.joinall(list(jobs.values()))
        failed = [identity for identity, job in jobs.items() if not job.successful()]
        for identity in failed:
            _log.error("could not stop agent %s: %s", identity, jobs[identity].exception)
        for home, watchdog in list(self._watchdogs.items()):
            report = end_marked(home, self.run, grace=0, sleep=gevent.sleep)
            if report.found:
                _log.warning("ended %d process(es) the agents had left behind", len(report.found))
            if not watchdog.close(sleep=gevent.sleep):
                _log.warning("the watchdog of %s (pid %d) did not exit", home, watchdog.process.pid)
            del self._watchdogs[home]
        return failed

    # ----- status

    def status(self, identity: str) -> ProcessStatus:
        """The agent's process status (``stopped`` with no pid or code when never started)."""
        agent = self._agents.get(identity)
        if agent is None:
            return ProcessStatus(identity, AgentState.STOPPED)
        self._prune(agent)
        return ProcessStatus(
            identity=identity,
            state=agent.state,
            pid=agent.proc.pid if agent.proc is not None else None,
            returncode=agent.returncode,
            last_error=agent.relay.last_error,
            crashes=len(agent.crashes),
        )

    def statistics(self) -> dict[str, dict[str, Any]]:
        """Every known agent's status, JSON-ready, by identity."""
        return {identity: self.status(identity).as_dict() for identity in sorted(self._agents)}

    def running(self) -> list[str]:
        """Identities whose process is alive (running or being stopped)."""
        return sorted(i for i, a in self._agents.items() if a.proc is not None)

    def wait_state(self, identity: str, states: Iterable[AgentState], timeout: float) -> ProcessStatus:
        """Wait (cooperatively) until the agent is in one of ``states``; AgentProcessError on timeout."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(identity)
            if status.state in wanted:
                return status
            if time.monotonic() >= deadline:
                names = ", ".join(sorted(s.value for s in wanted))
                raise AgentProcessError(
                    f"{identity} did not reach {names} within {timeout:g} s (it is {status.state.value})"
                )
            gevent.sleep(_POLL_SECONDS)

    # ----- processes

    def _spawn(self, agent: _Agent) -> None:
        try:
            spec = agent.factory()
            as_user: dict[str, Any] = {}
            if spec.user is not None:  # secure mode: its own user and group, none of ours
                group = pwd.getpwnam(spec.user).pw_gid
                as_user = {"user": spec.user, "group": group, "extra_groups": [], "umask": AGENT_UMASK}
            env = dict(spec.env)
            agent.home, agent.start = spec.home, None
            if spec.home is not None:
                agent.start = str(next(self._starts))
                env[MARK_VARIABLE] = agent_mark(spec.home, self.run, agent.identity, agent.start)
                self._ensure_watchdog(spec.home)
            proc = gevent.subprocess.Popen(
                list(spec.argv),
                cwd=str(spec.cwd),
                env=env,
                stdin=gevent.subprocess.DEVNULL,
                stdout=gevent.subprocess.PIPE,
                stderr=gevent.subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                preexec_fn=parent_death_preexec(),  # after the change of user: it would be cleared
                **as_user,
            )
        except (AIPError, OSError, ValueError, KeyError) as exc:
            agent.state = AgentState.FAILED
            agent.proc = None
            agent.relay.last_error = f"cannot start: {exc}"
            _log.error("agent %s cannot start: %s", agent.identity, exc)
            raise AgentProcessError(f"cannot start {agent.identity}: {exc}") from exc
        agent.proc = proc
        agent.state = AgentState.RUNNING
        agent.returncode = None
        agent.stop_requested = False
        relay = agent.relay
        relay.pid = proc.pid
        readers = [
            # both are pipes (Popen above), read as bytes
            gevent.spawn(relay.pump, cast(BinaryIO, proc.stdout), relay.stdout_line),
            gevent.spawn(relay.pump, cast(BinaryIO, proc.stderr), relay.stderr_line),
        ]
        agent.watcher = gevent.spawn(self._watch, agent, proc, readers, (agent.home, agent.start))
        _log.info("agent %s started, pid %d", agent.identity, proc.pid)

    def _watch(self, agent: _Agent, proc: gevent.subprocess.Popen, readers: list[gevent.Greenlet],
               mark: tuple[Path | None, str | None]) -> None:
        returncode = proc.wait()
        _kill_group(proc.pid)  # children left behind go with the agent
        self._end_leftovers(agent, *mark)
        gevent.joinall(readers, timeout=_READER_JOIN_SECONDS)
        gevent.killall(readers, block=False)
        if agent.proc is not proc:
            return
        agent.proc = None
        agent.returncode = returncode
        if agent.stop_requested:
            agent.state = AgentState.STOPPED
            _log.info("agent %s stopped (exit code %s)", agent.identity, returncode)
            return
        if returncode == 0:
            agent.state = AgentState.STOPPED
            _log.info("agent %s exited normally", agent.identity)
            return
        agent.crashes.append(time.monotonic())
        self._prune(agent)
        crashes = len(agent.crashes)
        last = agent.relay.last_error or "no error output"
        if crashes > self.policy.restart_limit:
            agent.state = AgentState.FAILED
            _log.error(
                "agent %s FAILED: exit code %s after %d crashes in %g s; last error: %s",
                agent.identity,
                returncode,
                crashes,
                self.policy.restart_window,
                last,
            )
            return
        delay = self.policy.backoff(crashes)
        agent.state = AgentState.RESTARTING
        _log.warning(
            "agent %s crashed with exit code %s (%s); restart %d of %d in %g s",
            agent.identity,
            returncode,
            last,
            crashes,
            self.policy.restart_limit,
            delay,
        )
        agent.pending_restart = gevent.spawn_later(delay, self._restart_after_crash, agent)

    def _restart_after_crash(self, agent: _Agent) -> None:
        agent.pending_restart = None
        if agent.state is not AgentState.RESTARTING:
            return
        try:
            self._spawn(agent)
        except AgentProcessError:
            return  # _spawn marked it FAILED and logged why

    def _stop_process(self, agent: _Agent, proc: gevent.subprocess.Popen) -> None:
        try:
            steps = (
                (signal.SIGINT, self.policy.sigint_grace, False),
                (signal.SIGTERM, self.policy.sigterm_grace, False),
                (signal.SIGKILL, self.policy.sigkill_grace, True),
            )
            for signum, grace, whole_group in steps:
                if proc.poll() is not None:
                    break
                _log.info("stopping agent %s with %s", agent.identity, signal.Signals(signum).name)
                if whole_group:
                    _kill_group(proc.pid)
                else:
                    _signal(proc, signum)
                try:
                    proc.wait(timeout=grace)
                    break
                except gevent.subprocess.TimeoutExpired:
                    continue
            else:
                raise AgentProcessError(f"{agent.identity} (pid {proc.pid}) survived SIGKILL")
            if agent.watcher is not None:
                agent.watcher.join(timeout=_READER_JOIN_SECONDS * 2)
        finally:
            agent.stopper = None

    def _ensure_watchdog(self, home: Path) -> None:
        watchdog = self._watchdogs.get(home)
        if watchdog is None or not watchdog.alive():
            try:
                self._watchdogs[home] = Watchdog(home, self.run)
            except OSError as exc:  # the agents still die with us (parent-death signal); log, go on
                _log.error("cannot start the watchdog of %s: %s; if the platform dies, what its agents "
                           "started is ended only at its next start", home, exc)

    def _end_leftovers(self, agent: _Agent, home: Path | None, start: str | None) -> None:
        """SIGKILL the processes marked as this start's that left its group (a ``setsid`` grandchild)."""
        if home is None or start is None:
            return
        report = end_marked(home, self.run, agent.identity, start, grace=0, sleep=gevent.sleep)
        if report.found:
            _log.warning("agent %s left %d process(es) behind outside its group; ended them",
                         agent.identity, len(report.found))

    def _cancel_restart(self, agent: _Agent) -> bool:
        pending, agent.pending_restart = agent.pending_restart, None
        if pending is None:
            return False
        pending.kill(block=False)
        return True

    def _prune(self, agent: _Agent) -> None:
        horizon = time.monotonic() - self.policy.restart_window
        while agent.crashes and agent.crashes[0] < horizon:
            agent.crashes.popleft()


def _signal(proc: gevent.subprocess.Popen, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass  # it exited in between: nothing to signal


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty
