"""Secure mode (``volttron --secure-agent-users``) with real system users, as root.

A real platform installs the listener agent with ``vctl``; the tests check, from outside, what the
platform promises: the agent process runs as its own user with no other group, that user writes
only to its ``data/`` and reads neither another agent's directory nor ``auth.json`` nor any key
store, the agent still works on the bus, ``vctl status`` names the user and ``vctl remove`` deletes
it. The access checks run a separate Python as the agent's user with ``runuser``.

Secure mode needs the platform's Python and home reachable by other users. On this machine the
interpreter lives under ``/root`` (pyenv) and pytest's temporary folders are 0700, so the
``reachable`` fixture adds the search bit (``o+x``, never read) to exactly the folders in the way,
for the duration of one test, and puts their modes back afterwards. The tests hold a file lock
across xdist workers so that only one of them changes and restores those modes at a time.

Every user a test's platform creates carries that platform's home in its comment; teardown removes
any that are left (``AgentUsers.owned``), whatever happened in the test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.packaging import build_wheel
from volttron.client.testing.plugin import root_required, skip_or_fail
from volttron.client.testing.waiting import wait_until
from volttron.server.aip.agent_users import AgentUsers, SecureModeError, check_requirements

pytestmark = [
    pytest.mark.integration,
    pytest.mark.requires_root(reason="secure mode creates system users"),
    pytest.mark.xdist_group("secure-mode"),  # one worker: the tests take turns anyway (_one_at_a_time)
]

LISTENER_DIR = Path(__file__).resolve().parents[3] / "volttron-listener-agent"
VCTL = str(Path(sys.executable).with_name("vctl"))
LOCK_PATH = Path(tempfile.gettempdir()) / "volttron-secure-mode-tests.lock"
PROBE = r"""
import json, os, sys
results = {}
for name, op, path in json.loads(sys.argv[1]):
    try:
        if op == "write":
            with open(path, "a") as handle:
                handle.write("x")
        elif op == "read":
            with open(path) as handle:
                handle.read()
        else:
            os.listdir(path)
        results[name] = "ok"
    except PermissionError:
        results[name] = "denied"
    except OSError as exc:
        results[name] = type(exc).__name__
print(json.dumps(results))
"""


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder of the test outside pytest's own temporary tree (this module's ``tmp_path``).

    Agent users must pass through every folder above a platform's home. Any pytest session that
    starts meanwhile (a nested one, as the generated agent's tests are run) makes
    ``/tmp/pytest-of-<user>`` 0700 again, locking them out in the middle of a test.
    """
    path = Path(tempfile.mkdtemp(prefix="vt-secure-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _one_at_a_time() -> Iterator[None]:
    """One secure-mode test at a time across xdist workers (they change and restore folder modes)."""
    with open(LOCK_PATH, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # bounded by pytest's timeout
        yield


def _blocking_folders(paths: list[Path]) -> list[Path]:
    """The folders on the way to ``paths`` (as given and resolved) that others may not pass through."""
    found: dict[Path, None] = {}
    for path in paths:
        for candidate in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
            for parent in reversed(candidate.parents):
                if not os.stat(parent).st_mode & stat.S_IXOTH:
                    found.setdefault(parent)
    return list(found)


@contextlib.contextmanager
def reachable_paths(paths: list[Path]) -> Iterator[None]:
    """The folders on the way to ``paths`` passable by other users (``o+x``, never read) for a while,
    one test at a time across workers; their modes are put back after. Also used by
    test_published_platform.py, whose platform runs as a user of its own."""
    with _one_at_a_time():
        folders = _blocking_folders(paths)
        modes = {folder: stat.S_IMODE(os.stat(folder).st_mode) for folder in folders}
        try:
            for folder, mode in modes.items():
                os.chmod(folder, mode | stat.S_IXOTH)
            yield
        finally:
            for folder, mode in modes.items():
                os.chmod(folder, mode)


@pytest.fixture
def reachable(tmp_path: Path) -> Iterator[None]:
    """The platform's Python and ``tmp_path`` reachable by other users for this test (see above)."""
    with reachable_paths([Path(sys.executable), Path(sys.base_prefix), tmp_path / "home"]):
        try:
            check_requirements(tmp_path / "home")
        except SecureModeError as exc:
            skip_or_fail(f"secure mode cannot work on this machine: {exc}", root_required())
        yield


@pytest.fixture(scope="session")
def listener_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert LISTENER_DIR.is_dir(), f"the listener agent's source is not beside the server ({LISTENER_DIR})"
    return build_wheel(LISTENER_DIR, tmp_path_factory.mktemp("listener-wheel"), timeout=300)


class SecurePlatform:
    """A started platform (from ``platform_factory``) and ``vctl`` against it."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.home: Path = process.home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLTTRON_", "AGENT_"))}
        self.env["VOLTTRON_HOME"] = str(self.home)

    def vctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([VCTL, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check:
            log = self.process.log_text()[-3000:]
            assert result.returncode == 0, f"vctl {args} -> {result.returncode}\n{result.stderr}\n{log}"
        return result

    def status(self) -> dict[str, dict[str, Any]]:
        return {row["identity"]: row for row in json.loads(self.vctl("status", "--json").stdout)}

    def install(self, wheel: Path, identity: str) -> dict[str, Any]:
        self.vctl("install", str(wheel), "--vip-identity", identity, "--start")
        return wait_for_running(self, identity)


def wait_for_running(platform: SecurePlatform, identity: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        row = platform.status().get(identity)
        return row if row and row["state"] == "running" else None

    return wait_until(running, 60, f"{identity} to run")


@pytest.fixture
def cleanup_users(tmp_path: Path) -> Iterator[None]:
    """Remove every user the test's platform made, even when the test failed."""
    yield
    users = AgentUsers(tmp_path / "home")
    left = users.owned()
    for name in left:
        users.remove(name)
    assert not left, f"users left behind: {left}"


@pytest.fixture
def secure_platform(reachable: None, cleanup_users: None, platform_factory) -> SecurePlatform:
    return SecurePlatform(platform_factory(args=["--secure-agent-users"]).start())


def proc_ids(pid: int) -> dict[str, list[int]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
    return fields


def probe_as(user: str, checks: list[tuple[str, str, Path]]) -> dict[str, str]:
    """Run each ``(name, op, path)`` (op: write, read, list) as ``user``; ``{name: ok|denied|...}``."""
    payload = json.dumps([[name, op, str(path)] for name, op, path in checks])
    result = subprocess.run(
        ["runuser", "-u", user, "--", sys.executable, "-c", PROBE, payload],
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_each_agent_runs_as_its_own_user_confined_to_its_data(
    secure_platform: SecurePlatform, listener_wheel: Path
) -> None:
    platform, home = secure_platform, secure_platform.home
    first = platform.install(listener_wheel, "l1")
    second = platform.install(listener_wheel, "l2")
    user1, user2 = first["user"], second["user"]
    assert user1 and user2 and user1 != user2 and user1.startswith("volttron_")
    assert (home / "agents/l1/USER_ID").read_text().strip() == user1
    account = pwd.getpwnam(user1)

    # the process runs as the agent's user and group, with no supplementary group
    ids = proc_ids(first["pid"])
    assert ids["Uid"] == [account.pw_uid] * 4 and ids["Gid"] == [account.pw_gid] * 4 and ids["Groups"] == []

    # vctl status shows the user, in the table and in --json
    table = platform.vctl("status")
    assert table.stdout.split()[:3] == ["UUID", "AGENT", "AGENT_USER"]
    line = next(row for row in table.stdout.splitlines() if " l1 " in f" {row} ")
    assert user1 in line.split()

    # it works on the bus: it answers an RPC (its method list) through the platform
    assert "health.get_status" in platform.vctl("rpc", "list", "-v", "l1").stdout.split()
    config = home.parent / "l2-config.json"
    config.write_text('{"a": 1}')
    platform.vctl("config", "store", "l2", "config", str(config), "--json")

    agents = home / "agents"
    checks = [
        ("own data", "write", agents / "l1/data/probe.txt"),
        ("own keystore", "read", agents / "l1/keystore.json"),
        ("own dir", "write", agents / "l1/probe.txt"),
        ("own UUID", "write", agents / "l1/UUID"),
        ("other dir", "list", agents / "l2"),
        ("other keystore", "read", agents / "l2/keystore.json"),
        ("other data", "write", agents / "l2/data/probe.txt"),
        ("auth.json", "read", home / "auth.json"),
        ("platform keystore", "read", home / "keystore"),
        ("vctl keystore", "read", home / "keystores/control.connection/keystore.json"),
        ("config store", "list", home / "configuration_store"),
        ("other's config", "read", home / "configuration_store/l2.store"),
        ("home", "list", home),
        ("home write", "write", home / "probe.txt"),
        ("platform code", "write", Path(sysconfig.get_paths()["purelib"]) / "probe.txt"),
    ]
    results = probe_as(user1, checks)
    assert results == {
        "own data": "ok",
        "own keystore": "ok",
        **{name: "denied" for name, _, _ in checks[2:]},
    }, results
    assert (agents / "l1/data/probe.txt").stat().st_uid == account.pw_uid
    assert probe_as(user2, [("other keystore", "read", agents / "l1/keystore.json")]) == {
        "other keystore": "denied"
    }

    # removing the agent removes its user and group
    platform.vctl("remove", "l1")
    assert subprocess.run(["getent", "passwd", user1], capture_output=True).returncode == 2
    assert subprocess.run(["getent", "group", user1], capture_output=True).returncode == 2
    assert not (agents / "l1").exists()
    assert set(platform.status()) == {"l2"}
    platform.vctl("remove", "l2")
    assert AgentUsers(home).owned() == []


def test_the_user_is_kept_across_a_restart_and_a_reinstall(
    secure_platform: SecurePlatform, listener_wheel: Path
) -> None:
    platform = secure_platform
    user = platform.install(listener_wheel, "l1")["user"]
    (platform.home / "agents/l1/data/keep.txt").write_text("precious")
    platform.vctl("restart", "l1")
    assert wait_for_running(platform, "l1")["user"] == user
    platform.vctl("install", str(listener_wheel), "--vip-identity", "l1", "--force", "--start")
    row = wait_for_running(platform, "l1")
    assert row["user"] == user
    assert proc_ids(row["pid"])["Uid"][0] == pwd.getpwnam(user).pw_uid
    kept = platform.home / "agents/l1/data/keep.txt"
    assert kept.read_text() == "precious" and kept.stat().st_uid == pwd.getpwnam(user).pw_uid
    platform.vctl("remove", "l1")
    assert AgentUsers(platform.home).owned() == []


def test_a_stale_user_of_this_home_is_removed_at_start(
    reachable: None, cleanup_users: None, platform_factory, tmp_path: Path
) -> None:
    users = AgentUsers(tmp_path / "home")
    stale = users.create("crashed.install", tmp_path / "home/agents/crashed.install/data")
    process = platform_factory(args=["--secure-agent-users"]).start()
    SecurePlatform(process).vctl("status")  # the control service (and so the AIP) is up
    assert not users.exists(stale)
    assert f"removed the stale agent user {stale}" in process.log_text()


def test_without_the_option_no_user_is_made(
    reachable: None, cleanup_users: None, platform_factory, listener_wheel: Path
) -> None:
    platform = SecurePlatform(platform_factory().start())
    row = platform.install(listener_wheel, "l1")
    assert "user" not in row and not (platform.home / "agents/l1/USER_ID").exists()
    assert proc_ids(row["pid"])["Uid"][0] == os.geteuid()
    assert platform.vctl("status").stdout.split()[:3] == ["UUID", "AGENT", "IDENTITY"]
    assert AgentUsers(platform.home).owned() == []
    platform.vctl("remove", "l1")


def test_not_root_is_one_line_and_exit_77(reachable: None, tmp_path: Path) -> None:
    home = tempfile.mkdtemp(prefix="vsm-", dir="/tmp")
    try:
        os.chmod(home, 0o711)
        env = {"PATH": os.environ.get("PATH", ""), "VOLTTRON_HOME": f"{home}/home", "HOME": home}
        command = [sys.executable, "-m", "volttron.server", "--secure-agent-users"]
        result = subprocess.run(
            ["runuser", "-u", "nobody", "--", *command],
            env=env, capture_output=True, text=True, timeout=60, cwd="/",
        )
    finally:
        os.rmdir(home)
    assert result.returncode == 77, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("volttron: error: --secure-agent-users needs root"), lines
    assert "docs/secure-mode.md" in lines[0]


def test_an_isolated_agent_runs_as_its_own_user_from_its_own_environment(
    secure_platform: SecurePlatform, listener_wheel: Path, platform_factory
) -> None:
    # issue 12 item 2: secure mode with an agent in an environment of its own, also after the
    # platform's restart (which makes the home's other entries private again)
    platform = secure_platform
    heard = "Topic: heartbeat/iso"
    platform.vctl("install", str(listener_wheel), "--vip-identity", "iso", "--isolated", "--start")
    env = platform.home / "environments" / "volttron-listener-agent"
    code = next(env.glob("lib/python*/site-packages")) / "volttron_listener_agent" / "agent.py"
    for restart in (True, False):
        before = platform.process.log_text().count(heard)
        row = wait_for_running(platform, "iso")
        assert proc_ids(row["pid"])["Uid"][0] == pwd.getpwnam(row["user"]).pw_uid
        argv0 = Path(f"/proc/{row['pid']}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0 == str(env / "bin" / "python")
        wait_until(lambda n=before: platform.process.log_text().count(heard) > n, 60, "a heartbeat")
        checks = [("code", "read", code), ("write", "write", code)]
        assert probe_as(row["user"], checks) == {"code": "ok", "write": "denied"}
        if restart:
            platform.process.stop()
            platform.process = platform_factory(args=["--secure-agent-users"]).start()
            platform.vctl("start", "iso")
    platform.vctl("remove", "iso")
    assert not env.exists() and AgentUsers(platform.home).owned() == []
