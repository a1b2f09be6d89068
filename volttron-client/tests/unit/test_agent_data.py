"""The agent data directory helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from volttron.client.agent_data import AgentDataDirError, get_agent_data_dir
from volttron.utils.errors import VolttronError


def test_agent_data_dir_wins(tmp_path: Path) -> None:
    env = {"AGENT_DATA_DIR": str(tmp_path / "d"), "AGENT_VIP_IDENTITY": "x", "VOLTTRON_HOME": "/nowhere"}
    assert get_agent_data_dir(env) == tmp_path / "d"
    assert not (tmp_path / "d").exists()


def test_falls_back_to_the_identity_folder(tmp_path: Path) -> None:
    env = {"AGENT_VIP_IDENTITY": "my.agent", "VOLTTRON_HOME": str(tmp_path / "home")}
    path = get_agent_data_dir(env, create=True)
    assert path == tmp_path / "home" / "agents" / "my.agent" / "data" and path.is_dir()


def test_reads_the_environment_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path / "first"))
    assert get_agent_data_dir() == tmp_path / "first"
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path / "second"))
    assert get_agent_data_dir() == tmp_path / "second"


@pytest.mark.parametrize("env", [{}, {"AGENT_DATA_DIR": " "}, {"AGENT_VIP_IDENTITY": "../x"}])
def test_clear_error_without_either_variable(env: dict[str, str]) -> None:
    with pytest.raises(AgentDataDirError) as caught:
        get_agent_data_dir(env)
    assert isinstance(caught.value, VolttronError)
    assert "AGENT_DATA_DIR" in str(caught.value) or "AGENT_VIP_IDENTITY" in str(caught.value)
