"""``vctl install`` when the platform's answer does not come: it asks the platform and tells the truth.

The connection is a stand-in for the platform (it answers ``list_agents`` and ``agent_status_rows``,
never the install call, and its channel stays silent); the code under test is vctl's own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from volttron.client.commands import install as install_module
from volttron.client.commands.cli import EXIT_TIMEOUT, CommandError
from volttron.client.commands.install import InstallRequest, PreparedSource, run_install
from volttron.client.vip.agent.errors import ResultTimeout

OLD = {"uuid": "old-1", "identity": "other", "name": "volttron-other", "version": "1", "state": "running",
       "pid": 10, "tag": None, "priority": None}
NEW = {"uuid": "new-1", "identity": "listener", "name": "volttron-listener-agent", "version": "0.1.0",
       "state": "stopped", "pid": None, "tag": None, "priority": None}


class SilentChannel:
    name = "c1"

    def recv(self, timeout: float | None = None) -> bytes:
        time.sleep(timeout or 0)
        raise ResultTimeout(timeout, "nothing")

    def send(self, data: bytes, timeout: float | None = None) -> None:
        raise AssertionError("nothing was asked")

    def close(self) -> None:
        pass


class NeverReady:
    def ready(self) -> bool:
        return False


class Settings:
    timeout = 0.1


class LostAnswerPlatform:
    """Installs (the agent appears in its lists after the call) but its answer never arrives."""

    def __init__(self, after: list[dict[str, Any]]) -> None:
        self.rows = [OLD]
        self.after = after
        self.settings = Settings()

    def channel(self) -> SilentChannel:
        return SilentChannel()

    def call_async(self, method: str, *args: Any, **kwargs: Any) -> NeverReady:
        assert method == "install"
        self.rows = [OLD, *self.after]
        return NeverReady()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "list_agents":
            return [{k: r[k] for k in ("uuid", "identity", "name")} for r in self.rows]
        assert method == "agent_status_rows", method
        return self.rows


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install_module, "SILENCE_GRACE", 0.3)


def test_an_install_whose_answer_was_lost_is_reported_installed(tmp_path: Path) -> None:
    wheel = tmp_path / "volttron_listener_agent-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"w")
    said: list[str] = []
    report = run_install(LostAnswerPlatform([NEW]), InstallRequest(source=str(wheel)),
                         PreparedSource(wheel=wheel), said.append)
    assert report["agent_uuid"] == "new-1" and report["identity"] == "listener"
    assert report["started"] is False
    assert any("found installed" in line for line in said), said


def test_without_the_agent_on_the_platform_vctl_says_the_install_may_be_finishing(tmp_path: Path) -> None:
    wheel = tmp_path / "volttron_listener_agent-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"w")
    with pytest.raises(CommandError, match="may still be finishing the install") as caught:
        run_install(LostAnswerPlatform([]), InstallRequest(source=str(wheel)), PreparedSource(wheel=wheel))
    assert caught.value.exit_code == EXIT_TIMEOUT


def test_another_agent_that_appeared_meanwhile_is_not_taken_for_ours() -> None:
    stranger = {**NEW, "uuid": "new-2", "identity": "x", "name": "volttron-other-thing"}
    with pytest.raises(CommandError, match="may still be finishing"):
        run_install(LostAnswerPlatform([stranger]), InstallRequest(source="volttron-listener-agent"),
                    PreparedSource(package="volttron-listener-agent>=0.1"))
