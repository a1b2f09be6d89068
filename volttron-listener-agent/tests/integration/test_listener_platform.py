"""The listener against a real platform: installed from this source folder by the AIP, started, heard.

A ``volttron`` process runs in a temporary ``VOLTTRON_HOME``; the AIP (in this test process)
installs the listener as ``vctl install ./volttron-listener-agent --vip-identity l2 --start`` would,
which also writes its auth entry. The listener's JSON log records come back through the AIP's
output relay, so the test sees the heartbeat it publishes and receives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest

pytest.importorskip("volttron.server.aip.platform_agents")
pytest.importorskip("volttron.client.runner", reason="the client's agent runtime is not in this tree yet")
from volttron.server.aip.platform_agents import AIPConfig, AIPPlatform  # noqa: E402
from volttron.server.aip.supervisor import SupervisorPolicy  # noqa: E402

pytestmark = pytest.mark.integration

LISTENER_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        gevent.sleep(0.05)


@pytest.fixture
def platform_home(tmp_path: Path) -> Iterator[Path]:
    """A running ``volttron`` in its own home; stopped (SIGTERM, then SIGKILL) afterwards."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "VOLTTRON_"))}
    env.update(VOLTTRON_HOME=str(home), HOME=str(tmp_path))
    log = open(tmp_path / "platform.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "volttron.server", "-vv"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        pid_file = home / "VOLTTRON_PID"
        wait_until(
            lambda: proc.poll() is not None or (pid_file.exists() and pid_file.read_text().strip()),
            START_TIMEOUT,
            "the platform to start",
        )
        assert proc.poll() is None, (tmp_path / "platform.log").read_text()
        yield home
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def test_listener_installed_from_source_hears_its_own_heartbeat(platform_home: Path, caplog) -> None:
    policy = SupervisorPolicy(restart_limit=2, backoff_initial=0.5, sigint_grace=10.0, sigterm_grace=5.0)
    aip = AIPPlatform(AIPConfig(volttron_home=platform_home, supervisor=policy))
    config = '{"message": "listening in a test", "heartbeat_period": 1}'
    with caplog.at_level("INFO", logger="agents"):
        try:
            result = aip.install(str(LISTENER_DIR), vip_identity="l2", config=config, start=True)
            assert result["started"] and result["name"] == "volttron-listener"
            heard = "Topic: heartbeat/l2"
            wait_until(
                lambda: any(heard in r.getMessage() for r in caplog.records), 30, "the listener's heartbeat"
            )
            messages = [r.getMessage() for r in caplog.records if r.name.startswith("agents.l2.listener")]
            assert any(m.startswith("VERSION IS: ") for m in messages)
            assert any("listening in a test" in m for m in messages)
            assert aip.agent_status_row("l2")["state"] == "running"
            stopped = aip.stop("l2")
            assert stopped["returncode"] == 0, stopped
        finally:
            assert aip.shutdown() == []
            for row in aip.list_agents():
                aip.remove(row["uuid"])
