"""Marks, the parent-death signal, the watchdog and the home's work folder (real processes, no platform).

Each test starts its own processes with a mark naming a temporary home, and kills whatever of them it
finds left at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.server.aip.leftovers import (
    MARK_VARIABLE,
    Watchdog,
    agent_mark,
    end_marked,
    find_marked,
    parent_death_preexec,
)
from volttron.server.aip.work_folder import clear_work_folder, work_folder

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")

_READY = "import os; ready = os.environ.get('TEST_READY_FILE'); ready and open(ready, 'w').close(); "
_UNTIL_KILLED = "import signal; signal.alarm(120); signal.pause()"
"""Runs until a signal ends it; SIGALRM does after 2 minutes at most."""
STUBBORN = ("import signal; [signal.signal(s, signal.SIG_IGN) for s in (2, 15)]; " + _READY
            + _UNTIL_KILLED)
"""Ignores SIGINT and SIGTERM; says it is ready (its handlers are set) through TEST_READY_FILE."""
POLITE = _READY + _UNTIL_KILLED


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def spawn(tmp_path: Path, wait_for: Callable[..., Any]) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``spawn(home, run, identity, code=POLITE, setsid=True)``: a marked python process."""
    made: list[subprocess.Popen[bytes]] = []

    def make(home: Path, run: str = "r1", identity: str = "a", code: str = POLITE, start: str = "1",
             **kwargs: Any) -> subprocess.Popen[bytes]:
        ready = tmp_path / f"ready-{len(made)}"
        env = {**os.environ, MARK_VARIABLE: agent_mark(home, run, identity, start),
               "TEST_READY_FILE": str(ready)}
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True, **kwargs)
        made.append(proc)
        # its signal handlers are set before it says so: a SIGTERM cannot reach it half started
        wait_for(ready.exists, 20, "the process to be ready")
        wait_for(lambda: proc.pid in find_marked(home), 10, "the process to show its mark")
        return proc

    yield make
    for proc in made:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def test_marks_are_found_by_home_run_identity_and_start_only(spawn, tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    a = spawn(home, "r1", "a")
    b = spawn(home, "r1", "b")
    c = spawn(home, "r2", "a", start="2")
    d = spawn(other, "r1", "a")
    assert set(find_marked(home)) == {a.pid, b.pid, c.pid}
    assert find_marked(home, "r1") == sorted([a.pid, b.pid])
    assert find_marked(home, "r1", "a") == [a.pid]
    assert find_marked(home, "r2", "a", "1") == []
    assert find_marked(other) == [d.pid]
    assert os.getpid() not in find_marked(home)


def test_end_marked_ends_its_home_only_and_kills_what_ignores_sigterm(spawn, tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    polite = spawn(home)
    stubborn = spawn(home, code=STUBBORN)
    bystander = spawn(other, code=STUBBORN)
    report = end_marked(home, grace=0.5, timeout=5)
    assert sorted(report.found) == sorted([polite.pid, stubborn.pid])
    assert report.killed == [stubborn.pid] and report.left == []
    assert polite.wait(5) == -signal.SIGTERM and stubborn.wait(5) == -signal.SIGKILL
    assert bystander.poll() is None


def test_grace_zero_kills_at_once(spawn, tmp_path: Path) -> None:
    proc = spawn(tmp_path / "home")
    report = end_marked(tmp_path / "home", grace=0, timeout=5)
    assert report.killed == [proc.pid] and proc.wait(5) == -signal.SIGKILL


def test_the_parent_death_signal_reaches_the_child_when_its_parent_is_killed(
        tmp_path: Path, wait_for: Callable[..., Any]) -> None:
    """A middle process starts a child with the preexec function, then is SIGKILLed: the child gets
    SIGTERM from the kernel."""
    pid_file = tmp_path / "child.pid"
    middle_code = (
        "import subprocess, sys\n"
        "from volttron.server.aip.leftovers import parent_death_preexec\n"
        f"p = subprocess.Popen([sys.executable, '-c', {POLITE!r}], preexec_fn=parent_death_preexec())\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        f"{_UNTIL_KILLED}\n"  # the test kills it
    )
    middle = subprocess.Popen([sys.executable, "-c", middle_code], start_new_session=True)
    try:
        child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 20, "the child's pid"))
        assert alive(child)
        middle.kill()
        middle.wait(5)
        started = time.monotonic()
        wait_for(lambda: not alive(child), 5, "the child to die with its parent")
        assert time.monotonic() - started < 5
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait(5)
        if pid_file.exists() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_parent_death_preexec_is_a_callable_on_linux() -> None:
    assert callable(parent_death_preexec())


def test_the_watchdog_ends_its_run_when_the_pipe_closes_and_spares_other_runs(spawn, tmp_path: Path) -> None:
    home = tmp_path / "home"
    mine = spawn(home, "r1", code=STUBBORN)
    later_run = spawn(home, "r2")
    watchdog = Watchdog(home, "r1")
    assert watchdog.alive()
    assert mine.poll() is None  # nothing happens while the platform's end of the pipe is open
    assert watchdog.close(timeout=10)
    assert mine.wait(5) == -signal.SIGKILL
    assert later_run.poll() is None


def test_the_watchdog_carries_no_mark_and_no_home(tmp_path: Path) -> None:
    watchdog = Watchdog(tmp_path / "home", "r1")
    try:
        environ = Path(f"/proc/{watchdog.process.pid}/environ").read_bytes().split(b"\0")
        assert not any(item.startswith((MARK_VARIABLE.encode(), b"VOLTTRON_HOME=")) for item in environ)
    finally:
        assert watchdog.close(timeout=10)


def test_the_work_folder_is_private_and_cleared(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    folder = work_folder(home)
    assert folder == home / "tmp" and folder.stat().st_mode & 0o777 == 0o700
    (folder / "volttron-upload-x").mkdir()
    (folder / "volttron-upload-x" / "agent.whl").write_bytes(b"w" * 10)
    (folder / "stray").write_text("s")
    assert clear_work_folder(home) == ["stray", "volttron-upload-x"]
    assert list(folder.iterdir()) == []
    os.chmod(folder, 0o755)
    assert work_folder(home).stat().st_mode & 0o777 == 0o700
