"""Hardening battery: ``kill -9`` of an installed, running agent on a real platform.

The listener (installed over VIP through ``platform.control``, as vctl does) is killed with SIGKILL
again and again. Each time the platform restarts it (a new pid, ``running``), and its configuration
store file and ``auth.json`` entry are byte-for-byte / field-for-field unchanged. The platform runs
the production supervisor policy (restart at most 5 times in 5 minutes, back-off 1, 2, 4, 8, 16 s;
it is not configurable from the command line), so the CI variant kills 5 times, then once more:
that crash ends the loop and ``vctl status`` shows ``FAILED``. The slow variant kills 20 times,
restarting the agent with ``vctl``-style stop/start after every 5 (a start resets the crash count).
Figures are reported as in test_hardening_network.py (terminal, ``record_property``, JSON file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.commands.transfer import serve_install
from volttron.client.known_identities import CONTROL
from volttron.client.packaging import build_wheel
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import Agent

pytestmark = pytest.mark.integration

LISTENER_DIR = Path(__file__).resolve().parents[3] / "volttron-listener-agent"
CALL_TIMEOUT = 60.0
LIMIT = 5  # SupervisorPolicy.restart_limit, the production default the platform runs with


@pytest.fixture(scope="module")
def listener_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LISTENER_DIR.is_dir():
        pytest.skip(reason="the listener agent's source is not beside the server")
    return build_wheel(LISTENER_DIR, tmp_path_factory.mktemp("listener-wheel"), timeout=300)


@pytest.fixture
def platform(platform_factory, tmp_path: Path):
    uploads = tmp_path / "platform-tmp"
    uploads.mkdir()
    return platform_factory(env={"TMPDIR": str(uploads)}).start()


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for agent in made:
        agent.core.stop(timeout=5)


def call(agent: Agent, method: str, *args: Any, **kwargs: Any) -> Any:
    return agent.vip.rpc.call(CONTROL, method, *args, **kwargs).get(timeout=CALL_TIMEOUT)


def install(agent: Agent, wheel: Path) -> dict[str, Any]:
    channel = agent.vip.channel(CONTROL)
    try:
        result = agent.vip.rpc.call(CONTROL, "install", wheel.name, channel_name=channel.name, start=True)
        serve_install(channel, result, wheel, idle_timeout=30)
        return result.get(timeout=CALL_TIMEOUT)
    finally:
        channel.close()


def row_of(agent: Agent, identity: str) -> dict[str, Any]:
    return next(r for r in call(agent, "agent_status_rows") if r["identity"] == identity)


def auth_entry(home: Path, identity: str) -> dict[str, Any]:
    allow = json.loads((home / "auth.json").read_text())["allow"]
    (entry,) = [e for e in allow if e.get("identity") == identity]
    return entry


def kill_and_wait_restart(control: Agent, identity: str) -> tuple[int, float]:
    """SIGKILL the agent's process; returns (new pid, seconds until it runs again)."""
    old = row_of(control, identity)
    assert old["state"] == "running" and old["pid"], old
    os.kill(old["pid"], signal.SIGKILL)
    killed = time.monotonic()
    row = wait_until(lambda: (r := row_of(control, identity))["state"] == "running" and r["pid"] != old["pid"]
                     and r, 60, f"{identity} to run again after kill -9")
    return row["pid"], time.monotonic() - killed


def crash_battery(platform: Any, made: list[Agent], wheel: Path, report: Callable[[str, Any], None],
                  kills: int) -> None:
    control = build_agent(address=platform.local_address, identity="control.connection",
                          volttron_home=str(platform.home), enable_channel=True, timeout=10)
    made.append(control)
    keys = platform.add_allow_entry("admin", capabilities={"edit_config_store": None})
    admin = build_agent(address=platform.local_address, identity="admin", publickey=keys.public,
                        secretkey=keys.secret, serverkey=platform.serverkey, timeout=10,
                        volttron_home=str(platform.home))
    made.append(admin)
    identity = install(control, wheel)["identity"]
    wait_until(lambda: row_of(control, identity)["state"] == "running", 30, "the listener to run")
    for name in ("config", "extra"):
        admin.vip.rpc.call("platform.config_store", "manage_store", identity, name,
                           json.dumps({"name": name, "n": 1}), "json").get(timeout=10)
    store_file = platform.home / "configuration_store" / f"{identity}.store"
    store_before = store_file.read_bytes()
    auth_before = auth_entry(platform.home, identity)
    pids = {row_of(control, identity)["pid"]}
    restart_times = []
    for k in range(kills):
        if k and k % LIMIT == 0:  # another loop of LIMIT crashes: a start resets the count
            call(control, "stop_agent", row_of(control, identity)["uuid"])
            call(control, "start_agent", row_of(control, identity)["uuid"])
            wait_until(lambda: row_of(control, identity)["state"] == "running", 30, "the listener to run")
            pids.add(row_of(control, identity)["pid"])
        pid, took = kill_and_wait_restart(control, identity)
        assert pid not in pids, "the restarted agent has an old pid"
        pids.add(pid)
        restart_times.append(round(took, 2))
        assert store_file.read_bytes() == store_before, "the agent's config store changed"
        assert auth_entry(platform.home, identity) == auth_before, "the agent's auth entry changed"
    # one crash more than the limit allows: the loop stops and the agent is FAILED
    os.kill(row_of(control, identity)["pid"], signal.SIGKILL)
    wait_until(lambda: row_of(control, identity)["state"] == "FAILED", 30, "the agent to be FAILED")
    failed_pid = row_of(control, identity)["pid"]
    state = row_of(control, identity)["state"]
    control.core.stop(timeout=5)  # vctl connects as control.connection: the identity must be free
    made.remove(control)
    env = {**os.environ, "VOLTTRON_HOME": str(platform.home)}
    env.pop("VOLTTRON_VIP_ADDR", None)
    status = subprocess.run([str(Path(sys.executable).parent / "vctl"), "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    lines = [x for x in status.stdout.splitlines() if "listener" in x]
    assert len(lines) == 1 and "FAILED" in lines[0], status.stdout
    line = lines[0]
    assert store_file.read_bytes() == store_before and auth_entry(platform.home, identity) == auth_before
    report("kills", kills)
    report("restarts_observed", len(restart_times))
    report("restart_delay_s", restart_times)
    report("state_after_limit", state)
    report("failed_pid", failed_pid)
    report("vctl_status_line", " ".join(line.split()))


def test_kill_9_of_an_agent_restarts_it_then_a_crash_loop_ends_failed(platform, agents, listener_wheel,
                                                                      report) -> None:
    """5 kills: 5 restarts, store and auth unchanged; the 6th ends FAILED (vctl status)."""
    crash_battery(platform, agents, listener_wheel, report, kills=LIMIT)


@pytest.mark.slow
def test_kill_9_of_an_agent_restarts_it_then_a_crash_loop_ends_failed_long(slow_enabled, platform, agents,
                                                                           listener_wheel, report) -> None:
    """20 kills (a stop/start after every 5), then the crash loop ending FAILED."""
    if not slow_enabled:
        pytest.skip(reason="long variant: run with -m slow or VOLTTRON_TEST_SLOW=1")
    crash_battery(platform, agents, listener_wheel, report, kills=20)
