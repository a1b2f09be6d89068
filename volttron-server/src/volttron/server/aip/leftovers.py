"""Agent processes that would outlive their platform: marking them, finding them, ending them.

Every agent process asks the kernel for a parent-death signal (Linux ``PR_SET_PDEATHSIG``, set by
the child itself after it became its own user, so it holds in secure mode too): when the platform
dies, even by ``kill -9`` or the OOM killer, the kernel sends the agent SIGTERM. That reaches the
agent only. What the agent started carries on: a child in its process group, or a grandchild that
left the group with ``setsid``. So every agent's environment also carries a mark,
:data:`MARK_VARIABLE` = ``{"home", "run", "identity", "start"}`` (JSON), which its descendants inherit, and
three parties look for it in ``/proc/<pid>/environ``:

- the supervisor, when an agent has exited (``vctl stop``, a crash): the processes of that start;
- the watchdog (:class:`Watchdog`), a small process the supervisor starts with the first agent. It
  outlives the platform on purpose: when the platform is gone (its pipe ends), it ends the processes
  of that platform run, SIGTERM first;
- a starting platform, before anything else: every process marked with its home, left by an earlier
  run whose watchdog died too (:func:`end_marked` without a run).

Another home's processes are never touched. Limits: a process that drops its environment, or one
this user may not read (another user's, unless the platform runs as root, as secure mode does),
is not found; the parent-death signal is Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

MARK_VARIABLE = "VOLTTRON_AGENT_MARK"
"""Marks an agent's processes: JSON ``{"home", "run", "identity", "start"}`` in their environment."""
WATCHDOG_NAME = "volttron-watchdog"
"""Named in the watchdog's command line, with the home it watches."""
PARENT_DEATH_SIGNAL = signal.SIGTERM
_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 0.05
_KILL_ROUNDS = 5
_PROC = Path("/proc")

Sleep = Callable[[float], None]


def home_key(home: Path | str) -> str:
    """The one spelling of a home in marks: absolute, symlinks resolved."""
    return str(Path(home).expanduser().resolve())


def agent_mark(home: Path | str, run: str, identity: str, start: str) -> str:
    """The value of :data:`MARK_VARIABLE` for start ``start`` of ``identity`` in platform run ``run``."""
    mark = {"home": home_key(home), "run": run, "identity": identity, "start": start}
    return json.dumps(mark, sort_keys=True)


def _mark_of(pid: int) -> dict[str, str] | None:
    """The mark in the environment of ``pid``; None when unmarked, gone, a zombie or unreadable."""
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, a kernel thread, or another user's
        return None
    prefix = MARK_VARIABLE.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            try:
                mark = json.loads(item[len(prefix):])
            except (ValueError, UnicodeDecodeError):
                return None
            return mark if isinstance(mark, dict) else None
    return None


def find_marked(home: Path | str, run: str | None = None, identity: str | None = None,
                start: str | None = None) -> list[int]:
    """Pids of live processes marked with ``home`` (and ``run``, ``identity``, ``start`` when given).

    Never this process, nor pid 1.
    """
    want = {k: v for k, v in (("home", home_key(home)), ("run", run), ("identity", identity),
                              ("start", start)) if v is not None}
    own = os.getpid()
    found = []
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return []  # no /proc: nothing can be found
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) in (own, 1):
            continue
        mark = _mark_of(int(entry.name))
        if mark is not None and all(mark.get(k) == v for k, v in want.items()):
            found.append(int(entry.name))
    return sorted(found)


@dataclass
class EndReport:
    """What :func:`end_marked` did."""

    found: list[int] = field(default_factory=list)
    """Every marked process seen."""
    killed: list[int] = field(default_factory=list)
    """Those that needed SIGKILL."""
    left: list[int] = field(default_factory=list)
    """Those still alive at the end (normally none)."""
    seconds: float = 0.0


def end_marked(home: Path | str, run: str | None = None, identity: str | None = None,
               start: str | None = None, *, grace: float = 2.0, timeout: float = 10.0,
               sleep: Sleep = time.sleep) -> EndReport:
    """End the processes :func:`find_marked` finds: SIGTERM, ``grace`` s, then SIGKILL (0: SIGKILL at once).

    A marked process that leads a process group takes its group along. Processes started meanwhile
    are found by the next round; at most 5 rounds of SIGKILL, within ``timeout`` seconds in all.
    ``sleep`` is the wait (``gevent.sleep`` in the platform).
    """
    started = time.monotonic()
    deadline = started + timeout
    report = EndReport()
    pids = find_marked(home, run, identity, start)
    report.found = list(pids)
    if pids and grace > 0:
        _signal_all(pids, signal.SIGTERM)
        until = min(deadline, time.monotonic() + grace)
        while pids and time.monotonic() < until:
            sleep(_POLL_SECONDS)
            pids = find_marked(home, run, identity, start)
    for _ in range(_KILL_ROUNDS):
        if not pids or time.monotonic() >= deadline:
            break
        report.found = sorted(set(report.found) | set(pids))
        report.killed = sorted(set(report.killed) | set(pids))
        _signal_all(pids, signal.SIGKILL)
        until = min(deadline, time.monotonic() + 1.0)
        while pids and time.monotonic() < until:
            sleep(_POLL_SECONDS)
            pids = find_marked(home, run, identity, start)
    report.left = pids
    report.seconds = time.monotonic() - started
    return report


def _signal_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:  # it leads a group (an agent, a setsid child): the group goes too
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)


# -- the parent-death signal ----------------------------------------------------------------------

def parent_death_preexec(signum: int = PARENT_DEATH_SIGNAL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``signum`` when the process that forked it dies.

    The kernel ties the signal to the *thread* that forked: start agents from the main thread (the
    gevent hub's). After setting it, the child checks that its parent is still the one that forked
    it, closing the race with a parent that died just before. None where ``prctl`` does not exist.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the platform died before the signal was set
            os._exit(1)

    return preexec


# -- the watchdog ---------------------------------------------------------------------------------

_WATCHDOG_CODE = "from volttron.server.aip.leftovers import watchdog_main; watchdog_main()"
_WATCHDOG_ENV = ("PATH", "PYTHONPATH", "PYTHONHOME", "LANG", "LC_ALL")


class Watchdog:
    """The process that ends a platform run's agent processes when the platform dies.

    It reads a pipe whose other end only the platform holds: the end of the pipe (the platform's exit,
    however it came) starts :func:`end_marked` for the run. It runs in a session of its own, so a
    terminal's Ctrl-C does not reach it, and it is not marked.
    """

    def __init__(self, home: Path | str, run: str, python: str = sys.executable) -> None:
        self.home = home_key(home)
        self.run = run
        read_end, self._write_end = os.pipe()  # neither end is inherited by agents (PEP 446)
        env = {k: os.environ[k] for k in _WATCHDOG_ENV if k in os.environ}
        try:
            self.process = subprocess.Popen(
                [python, "-c", _WATCHDOG_CODE, WATCHDOG_NAME, self.home, run],
                stdin=read_end, stdout=subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True)
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def alive(self) -> bool:
        """Whether the watchdog process still runs."""
        return self.process.poll() is None

    def close(self, timeout: float = 5.0, sleep: Sleep = time.sleep) -> bool:
        """Let the watchdog go (it ends what is left of the run, normally nothing); True if it exited."""
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            sleep(_POLL_SECONDS)
        return self.process.poll() is not None


def watchdog_main(argv: list[str] | None = None) -> None:
    """The watchdog process: ``volttron-watchdog HOME RUN``, the platform's pipe on stdin."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != WATCHDOG_NAME:
        sys.stderr.write(f"usage: {WATCHDOG_NAME} HOME RUN (started by the platform)\n")
        raise SystemExit(2)
    _, home, run = args
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # only the platform's end of the pipe ends the watch
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    report = end_marked(home, run)
    if report.found:
        sys.stderr.write(f"{WATCHDOG_NAME}: the platform of {home} is gone; ended {len(report.found)} of its "
                         f"agent processes ({len(report.killed)} with SIGKILL, {len(report.left)} left)\n")
