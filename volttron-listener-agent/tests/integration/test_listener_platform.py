"""The listener against a real platform (the testing kit's ``volttron_platform``): installed from this
source folder with ``vctl install``, started, heard.

The listener's log records come back through the platform's output relay into the platform log,
so the test sees the heartbeat it publishes and receives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from volttron.client.testing.platform import wait_until

pytestmark = pytest.mark.integration

LISTENER_DIR = Path(__file__).resolve().parents[2]


def test_listener_installed_from_source_hears_its_own_heartbeat(volttron_platform, tmp_path: Path) -> None:
    config = tmp_path / "listener.json"
    config.write_text('{"message": "listening in a test", "heartbeat_period": 1}')
    volttron_platform.vctl(
        "install", str(LISTENER_DIR), "--vip-identity", "l2", "--agent-config", str(config), "--start"
    )
    try:
        heard = "Topic: heartbeat/l2"
        wait_until(lambda: heard in volttron_platform.log_text(), 30, "the listener's heartbeat")
        log = volttron_platform.log_text()
        assert "VERSION IS: " in log and "listening in a test" in log
        observer = volttron_platform.build_agent("test.observer")
        health = observer.vip.rpc.call("l2", "health.get_status").get(timeout=10)
        assert health["status"] == "GOOD" and health["context"] == "listening in a test"
        status = volttron_platform.vctl("status").stdout
        assert "l2" in status and "running" in status.lower()
        volttron_platform.vctl("stop", "l2")
        assert "running" not in volttron_platform.vctl("status", "l2").stdout.lower()
    finally:
        volttron_platform.vctl("remove", "l2", check=False)
