"""VOLTTRON_HOME and the paths inside it, read from the environment at call time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from volttron.utils import home


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VOLTTRON_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home.get_home() == tmp_path / ".volttron"
    assert home.get_home({}) == tmp_path / ".volttron"
    assert home.get_home({"VOLTTRON_HOME": ""}) == tmp_path / ".volttron"


def test_home_from_environment_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOLTTRON_HOME", str(tmp_path / "a"))
    assert home.get_home() == tmp_path / "a"
    monkeypatch.setenv("VOLTTRON_HOME", str(tmp_path / "b") + "///")
    assert home.get_home() == tmp_path / "b"


def test_home_is_absolute_and_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home.get_home({"VOLTTRON_HOME": "~/vh/"}) == tmp_path / "vh"
    monkeypatch.chdir(tmp_path)
    assert home.get_home({"VOLTTRON_HOME": "relative"}) == tmp_path / "relative"
    assert home.get_home({"VOLTTRON_HOME": "/"}) == Path("/")


def test_well_known_paths(tmp_path: Path) -> None:
    h = tmp_path
    assert home.platform_keystore_path(h) == h / "keystore"
    assert home.known_hosts_path(h) == h / "known_hosts"
    assert home.auth_file_path(h) == h / "auth.json"
    assert home.pid_file_path(h) == h / "VOLTTRON_PID"
    assert home.config_file_path(h) == h / "config"
    assert home.agents_dir(h) == h / "agents"
    keystore = home.identity_keystore_path("control.connection", h)
    assert keystore == h / "keystores" / "control.connection" / "keystore.json"
    assert home.config_store_dir(h) == h / "configuration_store"
    assert home.certificates_dir(str(h)) == h / "certificates"


def test_paths_default_to_current_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOLTTRON_HOME", str(tmp_path))
    assert home.platform_keystore_path() == tmp_path / "keystore"
    assert home.agents_dir() == tmp_path / "agents"


def test_local_vip_address(tmp_path: Path) -> None:
    address = home.local_vip_address(tmp_path)
    if sys.platform.startswith("linux"):
        assert address == f"ipc://@{tmp_path}/run/vip.socket"
    else:
        assert address == f"ipc://{tmp_path}/run/vip.socket"
    assert os.fspath(tmp_path) in address
