"""Secure mode's parts: the start-up checks, real system users, the permission layout, and the AIP
using them (install, status rows, removal, rollback) without starting agent processes.

Tests that create users need root and skip otherwise. Every user is made for a ``tmp_path`` home,
whose path is in the user's comment; the ``users`` fixture removes any left over after the test.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from volttron.server.aip import agent_users
from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.agent_users import (
    AgentUsers,
    SecureModeError,
    check_requirements,
    secure_agent_directory,
    secure_home,
)
from volttron.server.aip.errors import AgentInstallError, AIPError
from volttron.server.aip.launcher import LaunchSettings, build_launch_spec
from volttron.server.aip.platform_agents import AIPConfig, AIPPlatform
from volttron.server.options import OptionsError, parse_options

as_root = pytest.mark.requires_root(reason="creates system users")
LISTENER = "volttron-listener-agent"  # installed in development mode: the AIP installs it without pip


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path: Path) -> tuple[str, str]:
    info = os.lstat(path)
    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A fresh folder that other users may pass through (pytest's own are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="vsm-", dir="/tmp"))
    os.chmod(folder, 0o711)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def users(tmp_path: Path) -> Iterator[AgentUsers]:
    made = AgentUsers(tmp_path / "home")
    yield made
    for name in made.owned():
        made.remove(name)


# ---------------------------------------------------------------------------- options and checks


def test_the_option_and_the_config_key(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    env = {"VOLTTRON_HOME": str(home)}
    assert parse_options(["--secure-agent-users"], env=env).secure_agent_users is True
    plain = parse_options([], env=env)
    assert plain.secure_agent_users is False and not plain.notes
    (home / "config").write_text("[volttron]\nsecure-agent-users = True\n")
    assert parse_options([], env=env).secure_agent_users is True
    with pytest.raises(OptionsError, match="zmq message bus only"):
        parse_options(["--secure-agent-users", "--message-bus", "rmq"], env=env)


def test_not_root_is_refused_in_one_line() -> None:
    with pytest.raises(SecureModeError) as caught:
        check_requirements(Path("/tmp/h"), euid=1000)
    message = str(caught.value)
    assert message.startswith("--secure-agent-users needs root") and "docs/secure-mode.md" in message
    assert "\n" not in message


def test_a_python_or_home_others_cannot_reach_is_refused(open_folder: Path) -> None:
    closed = open_folder / "closed"
    (closed / "bin").mkdir(parents=True)
    python = closed / "bin" / "python"
    python.write_text("")
    os.chmod(python, 0o755)
    os.chmod(closed, 0o700)
    expected = rf"cannot use the platform's Python {python}: {closed} has mode 0700"
    with pytest.raises(SecureModeError, match=expected):
        check_requirements(Path("/tmp/h"), euid=0, python=str(python), import_paths=[])
    expected = rf"cannot reach VOLTTRON_HOME {closed}/home: {closed} has mode 0700"
    with pytest.raises(SecureModeError, match=expected):
        check_requirements(closed / "home", euid=0, python="/bin/sh", import_paths=[])
    os.chmod(closed, 0o711)
    check_requirements(closed / "home", euid=0, python=str(python), import_paths=[str(closed / "bin")])


def test_secure_home_keeps_everything_but_agents_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "keystores" / "x").mkdir(parents=True)
    (home / "known_hosts").write_text("{}")
    os.chmod(home / "known_hosts", 0o644)
    os.chmod(home / "keystores", 0o755)
    secure_home(home)
    assert mode(home) == 0o711 and mode(home / "agents") == 0o711 and mode(home / "agents/.locks") == 0o700
    assert mode(home / "known_hosts") == 0o600 and mode(home / "keystores") == 0o700


# ---------------------------------------------------------------------------- users


@as_root
def test_create_and_remove_a_user_and_its_group(users: AgentUsers, tmp_path: Path) -> None:
    name = users.create("demo.agent", tmp_path / "home/agents/demo.agent/data")
    account = pwd.getpwnam(name)
    assert name.startswith("volttron_") and users.exists(name)
    assert account.pw_gecos == f"VOLTTRON agent demo.agent of {tmp_path / 'home'}"
    assert account.pw_shell.endswith(("nologin", "false")) and account.pw_uid < 1000
    assert grp.getgrgid(account.pw_gid).gr_name == name
    assert users.owned() == [name]
    assert name not in AgentUsers(tmp_path / "other").owned()
    with pytest.raises(SecureModeError, match="another platform home"):
        AgentUsers(tmp_path / "other").remove(name)
    users.remove(name)
    assert not users.exists(name) and users.owned() == []
    with pytest.raises(KeyError):
        grp.getgrnam(name)


@as_root
def test_only_agent_users_are_ever_removed(users: AgentUsers) -> None:
    with pytest.raises(SecureModeError, match="not an agent user name"):
        users.remove("root")
    assert pwd.getpwnam("root")


@as_root
def test_removal_ends_processes_left_running_as_the_user(users: AgentUsers, tmp_path: Path) -> None:
    name = users.create("demo.agent", tmp_path / "data")
    account = pwd.getpwnam(name)
    child = subprocess.Popen(
        ["sleep", "60"], user=account.pw_uid, group=account.pw_gid, extra_groups=[], start_new_session=True
    )
    try:
        users.remove(name)
        assert not psutil.pid_exists(child.pid)  # killed and reaped
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


@as_root
def test_stale_users_are_removed_and_those_in_use_kept(users: AgentUsers, tmp_path: Path) -> None:
    kept = users.create("a", tmp_path / "a")
    stale = users.create("b", tmp_path / "b")
    assert users.remove_stale([kept]) == [stale]
    assert users.owned() == [kept]


@as_root
def test_the_permission_layout_of_an_agent_directory(users: AgentUsers, tmp_path: Path) -> None:
    directory = AgentDirectory.populate(
        tmp_path / "home/agents/demo.agent", name="pip", version="1", config="{}"
    )
    (directory.data_dir / "old").mkdir()
    (directory.data_dir / "old/db").write_text("restored as root")
    name = users.create("demo.agent", directory.data_dir)
    secure_agent_directory(directory, name, recursive=True)
    assert (owner(directory.path), mode(directory.path)) == (("root", name), 0o750)
    assert (owner(directory.data_dir), mode(directory.data_dir)) == ((name, name), 0o700)
    assert owner(directory.data_dir / "old/db") == (name, name)
    assert (owner(directory.keystore_path), mode(directory.keystore_path)) == ((name, name), 0o600)
    assert directory.config_path is not None
    assert (owner(directory.config_path), mode(directory.config_path)) == (("root", name), 0o640)
    assert owner(directory.path / "UUID")[0] == "root"

    spec = build_launch_spec(
        directory, LaunchSettings(volttron_home=tmp_path / "home", base_env={"HOME": "/root"}), user=name
    )
    assert spec.user == name
    assert (spec.env["HOME"], spec.env["USER"], spec.env["LOGNAME"]) == (str(directory.data_dir), name, name)
    assert build_launch_spec(directory, LaunchSettings(volttron_home=tmp_path / "home")).user is None


# ---------------------------------------------------------------------------- the AIP in secure mode


def _aip(home: Path, hooks: object | None = None) -> AIPPlatform:
    return AIPPlatform(AIPConfig(volttron_home=home, secure_agent_users=True), hooks=hooks)


@as_root
def test_install_status_and_remove_with_a_user(users: AgentUsers, tmp_path: Path) -> None:
    aip = _aip(tmp_path / "home")
    report = aip.install(LISTENER, vip_identity="l1")
    name = AgentDirectory(tmp_path / "home/agents/l1").user
    assert name is not None and users.owned() == [name]
    assert pwd.getpwnam(name).pw_dir == str(tmp_path / "home/agents/l1/data")
    assert aip.agent_status_row("l1")["user"] == name
    uuid = report["agent_uuid"]
    assert aip.status_agents(get_agent_user=True) == [[uuid, LISTENER, name, [None, None], "l1"]]
    assert aip.status_agents() == [[uuid, LISTENER, [None, None], "l1"]]
    assert owner(tmp_path / "home/agents/l1/data")[0] == name
    assert f"removed the system user {name}" in aip.remove("l1")["notes"]
    assert not users.exists(name) and users.owned() == []


@as_root
def test_a_failed_install_removes_the_user_it_made(users: AgentUsers, tmp_path: Path) -> None:
    class RefusingHooks:
        def on_agent_installed(self, identity: str, publickey: str) -> None:
            raise AIPError("auth.json is read-only")

        def on_agent_removed(self, identity: str) -> None:
            pass

    aip = _aip(tmp_path / "home", RefusingHooks())
    with pytest.raises(AgentInstallError) as caught:
        aip.install(LISTENER, vip_identity="l1")
    assert caught.value.step == "auth"
    assert users.owned() == [] and aip.list_agents() == []


@as_root
def test_a_user_that_cannot_be_made_fails_the_install_cleanly(
    users: AgentUsers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aip = _aip(tmp_path / "home")
    monkeypatch.setattr(agent_users, "_tool", lambda name: "/bin/false")  # every useradd fails
    with pytest.raises(AgentInstallError, match="could not create a system user for l1") as caught:
        aip.install(LISTENER, vip_identity="l1")
    assert caught.value.step == "user"
    assert aip.list_agents() == [] and users.owned() == []
    assert not (tmp_path / "home/auth.json").exists() or "l1" not in (tmp_path / "home/auth.json").read_text()
    assert [p.name for p in (tmp_path / "home/agents").iterdir()] == [".locks"]


def test_without_secure_mode_no_user_is_made(tmp_path: Path) -> None:
    aip = AIPPlatform(AIPConfig(volttron_home=tmp_path / "home"))
    aip.install(LISTENER, vip_identity="l1")
    assert "user" not in aip.agent_status_row("l1")
    assert not (tmp_path / "home/agents/l1/USER_ID").exists()
    assert AgentUsers(tmp_path / "home").owned() == []
    aip.remove("l1")
