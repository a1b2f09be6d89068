"""Hardening battery: agent processes die with their platform, and none of a home's outlive it.

Two agents run on a real platform: the listener (it connects and holds its identity) and a spawner
(``tests/fixtures/agents/spawner``) whose child ignores SIGINT/SIGTERM and whose grandchild escapes
the agent's process group with ``setsid``. Then:

- ``kill -9`` of the platform: every agent process, child and grandchild is gone within a bound;
  the platform restarted on the same home starts both agents cleanly (running, no crash, not FAILED);
- with the platform's watchdog killed too (as the OOM killer might), the restarted platform ends the
  leftovers of its own home and leaves another home's agents alone;
- ``vctl stop`` of the spawner and ``vctl shutdown --platform`` leave no process of the home behind.

And what an install leaves: ``kill -9`` of the platform in the middle of an install leaves nothing in
the system's temporary folder (work folders live in ``$VOLTTRON_HOME/tmp``, cleared at the next
start); ``vctl`` with a short ``--timeout`` reports an install that completed as installed.

"A process of the home" is any process whose environment says ``VOLTTRON_HOME=<home>`` (agents and
everything they start inherit it), read from ``/proc/<pid>/environ``. Figures as in
test_hardening_network.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.commands.transfer import serve_install
from volttron.client.known_identities import CONTROL
from volttron.client.packaging import build_wheel
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import WaitTimeout, wait_until
from volttron.client.vip.agent import Agent

# one worker builds the two wheels once, and runs the tests one after another (they take turns anyway)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hardening-processes")]

ROOT = Path(__file__).resolve().parents[3]
LISTENER_DIR = ROOT / "volttron-listener-agent"
SPAWNER_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "spawner"
CALL_TIMEOUT = 60.0
ORPHAN_BOUND = 10.0
"""Seconds within which every agent process must be gone after the platform dies."""
VCTL = Path(sys.executable).parent / "vctl"
LOCK_PATH = Path(tempfile.gettempdir()) / "volttron-hardening-processes.lock"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def home_processes(home: Path) -> dict[int, str]:
    """``{pid: command line}`` of every live process (but this one) whose VOLTTRON_HOME is ``home``."""
    wanted = f"VOLTTRON_HOME={home}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if wanted in environ and alive(int(entry.name)):
            found[int(entry.name)] = cmdline.strip()[:120]
    return found


def watchdogs_of(home: Path) -> list[int]:
    """Pids of the platform watchdogs that watch ``home`` (named in their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"volttron-watchdog" in argv and str(home).encode() in argv and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not LISTENER_DIR.is_dir():
        pytest.skip(reason="the listener agent's source is not beside the server")
    out = tmp_path_factory.mktemp("process-wheels")
    return {"listener": build_wheel(LISTENER_DIR, out, timeout=300),
            "spawner": build_wheel(SPAWNER_DIR, out, timeout=300)}


@pytest.fixture
def one_at_a_time() -> Iterator[None]:
    """These tests install and remove the spawner's code in the shared environment: one test at a time."""
    with open(LOCK_PATH, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # bounded by pytest's timeout
        yield


@pytest.fixture
def controls() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for agent in made:
        agent.core.stop(timeout=5)


def connect_control(platform: Any, made: list[Agent]) -> Agent:
    agent = build_agent(address=platform.local_address, identity="control.connection",
                        volttron_home=str(platform.home), enable_channel=True, timeout=30)
    made.append(agent)
    return agent


def disconnect(agent: Agent, made: list[Agent]) -> None:
    agent.core.stop(timeout=5)  # vctl connects as control.connection: the identity must be free
    made.remove(agent)


def call(agent: Agent, method: str, *args: Any, **kwargs: Any) -> Any:
    return agent.vip.rpc.call(CONTROL, method, *args, **kwargs).get(timeout=CALL_TIMEOUT)


def install(agent: Agent, wheel: Path, identity: str) -> dict[str, Any]:
    channel = agent.vip.channel(CONTROL)
    try:
        result = agent.vip.rpc.call(CONTROL, "install", wheel.name, channel_name=channel.name,
                                    vip_identity=identity, enable=True, start=True, force=True)
        serve_install(channel, result, wheel, idle_timeout=60)
        return result.get(timeout=CALL_TIMEOUT)
    finally:
        channel.close()


def row_of(agent: Agent, identity: str) -> dict[str, Any]:
    return next(r for r in call(agent, "agent_status_rows") if r["identity"] == identity)


def spawner_pids(home: Path, identity: str, not_before: int | None = None) -> dict[str, int]:
    """The spawner's ``pids.json`` (written at its start); with ``not_before``, one newer than that agent."""
    path = home / "agents" / identity / "data" / "pids.json"

    def read() -> dict[str, int] | None:
        try:
            pids = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pids if pids.get("agent") != not_before else None

    return wait_until(read, 30, f"{path} of a running spawner")


def start_agents(platform: Any, made: list[Agent], wheels: dict[str, Path],
                 listener: bool = True) -> tuple[Agent, dict[str, int]]:
    """Install (enabled) and start the spawner, and the listener; ``(control, {name: pid})``."""
    control = connect_control(platform, made)
    pids = {}
    if listener:
        install(control, wheels["listener"], "listener")
        wait_until(lambda: "listener" in call(control, "peerlist"), 30, "the listener to connect")
        pids["listener"] = row_of(control, "listener")["pid"]
    install(control, wheels["spawner"], "spawner")
    found = spawner_pids(platform.home, "spawner")
    assert found["agent"] == row_of(control, "spawner")["pid"]
    pids.update({f"spawner.{name}": pid for name, pid in found.items()})
    assert all(alive(pid) for pid in pids.values()), pids
    return control, pids


def remove_agents(platform: Any, made: list[Agent], identities: tuple[str, ...]) -> None:
    """Remove the agents (and the spawner's code from the shared environment)."""
    control = connect_control(platform, made)
    for identity in identities:
        call(control, "remove_agent", identity)
    disconnect(control, made)


def kill_9(platform: Any) -> None:
    platform.expect_clean_exit = False
    platform.process.kill()
    platform.process.wait(10)


def vctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOLTTRON_HOME": str(home)}
    env.pop("VOLTTRON_VIP_ADDR", None)
    return subprocess.run([str(VCTL), *args], env=env, capture_output=True, text=True, timeout=90)


def survivors_after(pids: dict[str, int], bound: float) -> tuple[dict[str, int], float]:
    """Poll until none of ``pids`` lives or ``bound`` seconds pass; ``(survivors, seconds waited)``."""
    started = time.monotonic()
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not any(alive(pid) for pid in pids.values()), bound, "the processes to end",
                   interval=0.05)
    took = time.monotonic() - started
    return {name: pid for name, pid in pids.items() if alive(pid)}, took


def end_processes(pids: Any) -> None:
    """Clean up after a failed check: SIGKILL what a test found still running."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# -- the tests ------------------------------------------------------------------------------------------

def test_kill_9_of_the_platform_ends_its_agents_and_a_restart_runs_them_cleanly(
        platform_factory, controls, wheels, one_at_a_time, report) -> None:
    """kill -9 of the platform: its 2 agents, a child and a setsid grandchild gone within the bound;
    the restarted platform runs both agents (running, connected, no crash, not FAILED)."""
    first = platform_factory(name="home").start()
    home = first.home
    control, pids = start_agents(first, controls, wheels)
    disconnect(control, controls)
    kill_9(first)
    left, took = survivors_after(pids, ORPHAN_BOUND)
    report("agent_processes_at_kill", len(pids))
    report("orphans_after_bound", sorted(left))
    report("seconds_until_orphans_gone", round(took, 2) if not left else f">{ORPHAN_BOUND:g}")
    end_processes(left.values())
    assert not left, f"still running {ORPHAN_BOUND:g} s after kill -9 of their platform: {left}"

    second = platform_factory(name="home").start()
    control = connect_control(second, controls)
    wait_until(lambda: all(row_of(control, i)["state"] == "running" for i in ("listener", "spawner")),
               30, "both agents to run again")
    wait_until(lambda: "listener" in call(control, "peerlist"), 30, "the listener to connect")
    rows = {i: row_of(control, i) for i in ("listener", "spawner")}
    assert all(r["crashes"] == 0 and r["state"] == "running" for r in rows.values()), rows
    assert rows["listener"]["pid"] != pids["listener"]
    disconnect(control, controls)
    status = vctl(home, "status")
    assert status.returncode == 0, status.stderr
    lines = [x for x in status.stdout.splitlines() if "listener" in x or "spawner" in x]
    report("vctl_status_after_restart", [" ".join(x.split()[1:]) for x in lines])
    assert len(lines) == 2 and not any("FAILED" in x for x in lines), status.stdout
    assert all("running" in x for x in lines), status.stdout
    remove_agents(second, controls, ("spawner",))  # the listener's code stays: other tests share it


def test_a_restarted_platform_ends_leftovers_of_its_own_home_only(
        platform_factory, controls, wheels, one_at_a_time, report) -> None:
    """Platform and watchdog killed: the setsid grandchild outlives them; the restarted platform ends it,
    and another home's agent and grandchild keep running."""
    other = platform_factory(name="other").start()
    control_b, pids_b = start_agents(other, controls, wheels, listener=False)
    disconnect(control_b, controls)
    first = platform_factory(name="home").start()
    control, pids = start_agents(first, controls, wheels, listener=False)
    disconnect(control, controls)
    watchdogs = watchdogs_of(first.home)
    for pid in watchdogs:  # first, or it would end the agents when the platform goes
        os.kill(pid, signal.SIGKILL)
    kill_9(first)
    agent_left, took = survivors_after({"spawner.agent": pids["spawner.agent"]}, 5.0)
    report("watchdogs_killed", len(watchdogs))
    report("seconds_until_agent_gone_by_parent_death_signal", round(took, 2) if not agent_left else ">5")
    assert not agent_left, "the agent outlived its platform: no parent-death signal"
    leftovers = {n: p for n, p in pids.items() if alive(p)}
    report("leftovers_before_restart", sorted(leftovers))
    assert "spawner.setsid_grandchild" in leftovers, "nothing left for the restart to end"

    try:
        second = platform_factory(name="home").start()  # ready: leftovers were ended before agents start
    except BaseException:
        end_processes(p for p in pids.values() if alive(p))
        raise
    left, took = survivors_after(pids, 2.0)
    report("leftovers_after_restart", sorted(left))
    report("other_home_alive", sorted(n for n, p in pids_b.items() if alive(p)))
    end_processes(left.values())
    assert not left, f"the restarted platform left its home's old processes running: {left}"
    assert all(alive(p) for p in pids_b.values()), "a platform ended another home's agent processes"
    control = connect_control(second, controls)
    new = spawner_pids(second.home, "spawner", not_before=pids["spawner.agent"])
    assert row_of(control, "spawner")["state"] == "running" and alive(new["agent"])
    disconnect(control, controls)
    remove_agents(second, controls, ("spawner",))
    remove_agents(other, controls, ("spawner",))


def test_vctl_stop_and_shutdown_leave_no_process_of_the_home(
        platform_factory, controls, wheels, one_at_a_time, report) -> None:
    """``vctl stop`` ends the spawner's setsid grandchild too; after ``vctl shutdown --platform`` no
    process of the home is left."""
    platform = platform_factory(name="home").start()
    control, pids = start_agents(platform, controls, wheels, listener=False)
    disconnect(control, controls)
    stopped = vctl(platform.home, "stop", "spawner")
    assert stopped.returncode == 0, stopped.stderr
    left, took = survivors_after(pids, 5.0)
    report("left_after_vctl_stop", sorted(left))
    end_processes(left.values())
    assert not left, f"vctl stop left the agent's processes running: {left}"
    started = vctl(platform.home, "start", "spawner")
    assert started.returncode == 0, started.stderr
    spawner_pids(platform.home, "spawner", not_before=pids["spawner.agent"])

    remove = tuple(home_processes(platform.home))  # for the record: the platform and the spawner's three
    shutdown = vctl(platform.home, "shutdown", "--platform")
    assert shutdown.returncode == 0, shutdown.stderr
    assert platform.wait(30) == 0
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not home_processes(platform.home), 5.0, "the home's processes to end",
                   interval=0.05)
    left_home = home_processes(platform.home)
    report("home_processes_before_shutdown", len(remove))
    report("home_processes_after_shutdown", sorted(left_home.values()))
    end_processes(left_home)
    assert not left_home, f"processes of {platform.home} outlived vctl shutdown --platform: {left_home}"
    restarted = platform_factory(name="home").start()
    remove_agents(restarted, controls, ("spawner",))


# -- what an install leaves ----------------------------------------------------------------------------

class _Killed(Exception):
    """Raised from the progress callback once the platform is killed."""


def test_kill_9_during_an_install_leaves_no_work_folder_outside_the_home(
        platform_factory, controls, wheels, one_at_a_time, tmp_path, report) -> None:
    """kill -9 while pip checks the install: nothing of it in the system's temporary folder; what is in
    ``$VOLTTRON_HOME/tmp`` is gone at the next start."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    first = platform_factory(name="home", env={"TMPDIR": str(system_tmp)}).start()
    home = first.home
    control = connect_control(first, controls)
    wheel = wheels["spawner"]
    channel = control.vip.channel(CONTROL)
    result = control.vip.rpc.call(CONTROL, "install", wheel.name, channel_name=channel.name,
                                  vip_identity="spawner", progress_channel=channel.name)

    def progress(step: str, message: str) -> None:
        if step == "check":  # the wheel is uploaded and unpacked; pip is working
            kill_9(first)
            raise _Killed

    with pytest.raises(_Killed):
        serve_install(channel, result, wheel, idle_timeout=60, progress=progress)
    channel.close()
    disconnect(control, controls)
    leaked = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
              for p in system_tmp.iterdir() if p.name.startswith("volttron-")}
    work = home / "tmp"
    in_home = sorted(p.name.split("-")[1] for p in work.iterdir()) if work.is_dir() else []
    report("left_in_system_tmp", leaked)
    report("left_in_home_tmp", in_home)
    assert not leaked, f"kill -9 during an install left work folders in the system's temp folder: {leaked}"
    assert in_home, "the install's work folders were not in $VOLTTRON_HOME/tmp"
    assert (home / "tmp").stat().st_mode & 0o777 == 0o700
    platform_factory(name="home", env={"TMPDIR": str(system_tmp)}).start()
    left = sorted(p.name for p in (home / "tmp").iterdir())
    report("left_in_home_tmp_after_restart", left)
    assert not left, f"the restarted platform kept an unfinished install's work folders: {left}"


def test_vctl_with_a_short_timeout_reports_a_completed_install_as_installed(
        platform_factory, controls, wheels, one_at_a_time, report) -> None:
    """``vctl -t 1 install``: the install takes longer than 1 s; vctl must not call it a failure when it
    completes."""
    platform = platform_factory(name="home").start()
    started = time.monotonic()
    done = vctl(platform.home, "-t", "1", "install", str(wheels["spawner"]), "--vip-identity", "spawner")
    took = time.monotonic() - started
    control = connect_control(platform, controls)
    wait_until(lambda: any(a["identity"] == "spawner" for a in call(control, "list_agents")), 60,
               "the install to complete on the platform")
    disconnect(control, controls)
    said = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or [""])[-1]
    report("install_seconds", round(took, 1))
    report("vctl_exit_code", done.returncode)
    report("vctl_said", said)
    assert done.returncode == 0 and "installed as spawner" in done.stdout, (
        f"the install completed but vctl said (exit {done.returncode}): {done.stdout}{done.stderr}")
    remove_agents(platform, controls, ("spawner",))
