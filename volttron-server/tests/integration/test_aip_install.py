"""Installing real agent wheels into the shared environment with pip, and running them.

Every distribution these tests install is named ``volttron-testagent-*`` and is uninstalled again
(a session fixture removes any left over). Wheels are built once per session from
``tests/fixtures/agents`` with the client's ``build_wheel``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from volttron.client.packaging import build_wheel
from volttron.client.testing.waiting import wait_until
from volttron.server.aip.auth_entries import AuthFileHooks
from volttron.server.aip.environment import PipOptions, PythonEnvironment
from volttron.server.aip.errors import (
    AgentBusyError,
    AgentInstallError,
    DependencyConflictError,
    IdentityInUseError,
)
from volttron.server.aip.installer import InstallerSettings
from volttron.server.aip.platform_agents import AIPConfig, AIPPlatform
from volttron.server.aip.supervisor import AgentState, SupervisorPolicy
from volttron.utils.keystore import KeyStore

# one worker runs this file and test_aip_isolation.py (one test at a time anyway: they share the venv's
# lock), so the other worker is never idle waiting for the lock, and the wheels are built once
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("shared-venv")]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
BASIC = "volttron-testagent-basic"
DEFAULT_ID = f"{BASIC}-0.1.0_1"
POLICY = SupervisorPolicy(
    restart_limit=1, backoff_initial=0.05, backoff_max=0.1, sigint_grace=2.0, sigterm_grace=2.0
)


def test_distributions(environment: PythonEnvironment) -> set[str]:
    return {n for n in environment.snapshot().installed if n.startswith("volttron-testagent-")}


test_distributions.__test__ = False  # a helper, not a test


LOCK_PATH = Path(tempfile.gettempdir()) / "volttron-aip-install-tests.lock"


@contextlib.contextmanager
def _shared_venv() -> Iterator[None]:
    """One user of the shared venv's test distributions at a time, across xdist workers."""
    with open(LOCK_PATH, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # bounded by pytest's timeout
        yield


@pytest.fixture(scope="session")
def environment() -> PythonEnvironment:
    env = PythonEnvironment()
    with _shared_venv():
        env.uninstall(sorted(test_distributions(env)))
    yield env
    with _shared_venv():
        env.uninstall(sorted(test_distributions(env)))


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory, environment: PythonEnvironment) -> dict[str, Path]:
    """The fixture projects built once, plus a PEP 503 index holding the basic agent."""
    root = tmp_path_factory.mktemp("agent-wheels")
    built = {}
    for project in ("testagent", "conflict", "noentry"):
        source = shutil.copytree(FIXTURES / project, root / "src" / project)
        built[project] = build_wheel(source, root / "wheels", timeout=300)
    prerelease = shutil.copytree(FIXTURES / "testagent", root / "src" / "testagent-rc")
    pyproject = prerelease / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0rc1"'))
    built["testagent-rc"] = build_wheel(prerelease, root / "wheels", timeout=300)
    page = root / "index" / BASIC
    page.mkdir(parents=True)
    links = "".join(
        f'<a href="{built[k].as_uri()}">{built[k].name}</a>\n' for k in ("testagent", "testagent-rc")
    )
    (page / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    (root / "index" / "index.html").write_text(f'<html><body><a href="{BASIC}/">{BASIC}</a></body></html>\n')
    built["index"] = root / "index"
    return built


@pytest.fixture(autouse=True)
def venv_lock(environment: PythonEnvironment) -> Iterator[None]:
    """One test of this file at a time across xdist workers: they all install the same test
    distributions into the one shared venv and check that none is left behind."""
    with _shared_venv():
        yield


@pytest.fixture
def platform(venv_lock: None, tmp_path: Path, wheels: dict[str, Path], environment: PythonEnvironment):
    settings = InstallerSettings(pip=PipOptions(index_url=wheels["index"].as_uri()))
    aip = AIPPlatform(AIPConfig(volttron_home=tmp_path / "home", installer=settings, supervisor=POLICY))
    yield aip
    assert aip.shutdown() == []
    for row in aip.list_agents():
        aip.remove(row["uuid"])
    assert not test_distributions(environment)


def agent_entries(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "agents").iterdir() if p.name != ".locks")


def auth_users(home: Path) -> list[str]:
    path = home / "auth.json"
    return [] if not path.exists() else [e["user_id"] for e in json.loads(path.read_text())["allow"]]


def test_install_from_wheel_shares_code_and_last_removal_uninstalls(
    platform: AIPPlatform, wheels: dict[str, Path], environment: PythonEnvironment, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    steps: list[str] = []
    first = platform.install(str(wheels["testagent"]), progress=lambda step, message: steps.append(step))
    assert first["identity"] == DEFAULT_ID and first["changes"] == [f"{BASIC} 0.1.0"]
    assert steps[0] == "resolve" and steps[-1] == "done" and "install" in steps and "auth" in steps
    directory = home / "agents" / DEFAULT_ID
    assert (directory / "UUID").read_text().strip() == first["agent_uuid"]
    assert (directory / "NAME").read_text().strip() == BASIC
    assert (directory / "data").is_dir()
    assert stat.S_IMODE(os.stat(directory / "keystore.json").st_mode) == 0o600
    assert AuthFileHooks(home).entries_for(DEFAULT_ID)[0]["credentials"] == platform.agent_publickey(
        DEFAULT_ID
    )
    assert BASIC in test_distributions(environment)

    second = platform.install(str(wheels["testagent"]))
    assert second["identity"] == f"{BASIC}-0.1.0_2" and second["changes"] == []
    assert platform.get_all_agent_publickeys().keys() == {DEFAULT_ID, second["identity"]}

    removed = platform.remove(first["agent_uuid"][:8])
    assert removed["uninstalled"] == [] and "still used" in removed["notes"][0]
    assert BASIC in test_distributions(environment)
    removed = platform.remove(second["identity"])
    assert removed["uninstalled"] == [BASIC]
    assert BASIC not in test_distributions(environment)
    assert agent_entries(home) == [] and auth_users(home) == []


def test_explicit_identity_duplicate_and_force_reinstall_keep_data_and_keys(
    platform: AIPPlatform, wheels: dict[str, Path], tmp_path: Path
) -> None:
    wheel = str(wheels["testagent"])
    first = platform.install(wheel, vip_identity="test.agent", tag="t1", config={"mode": "run"}, enable=True)
    assert (first["identity"], first["tag"], first["priority"]) == ("test.agent", "t1", "50")
    data = tmp_path / "home/agents/test.agent/data"
    (data / "keep.txt").write_text("precious")
    keys = (tmp_path / "home/agents/test.agent/keystore.json").read_text()
    running = platform.start("test.agent")

    with pytest.raises(IdentityInUseError, match="--force"):
        platform.install(wheel, vip_identity="test.agent")
    assert platform.agent_status_row("test.agent")["pid"] == running["pid"]

    again = platform.install(wheel, vip_identity="test.agent", force=True, config="mode: run\nextra: 1\n")
    assert again["reinstalled"] and again["agent_uuid"] == first["agent_uuid"]
    assert again["started"] and again["pid"] != running["pid"]  # it was running: restarted
    assert (again["tag"], again["priority"]) == ("t1", "50")
    assert (data / "keep.txt").read_text() == "precious"
    assert (tmp_path / "home/agents/test.agent/keystore.json").read_text() == keys
    assert (tmp_path / "home/agents/test.agent/config").read_text() == "mode: run\nextra: 1\n"
    assert auth_users(tmp_path / "home") == ["test.agent"]
    assert agent_entries(tmp_path / "home") == ["test.agent"]


def test_conflicting_dependency_is_refused_and_nothing_changes(
    platform: AIPPlatform, wheels: dict[str, Path], environment: PythonEnvironment, tmp_path: Path
) -> None:
    freeze_before = _platform_freeze(environment)
    with pytest.raises(DependencyConflictError) as caught:
        platform.install(str(wheels["conflict"]), vip_identity="conflicted", isolated=False)
    assert caught.value.conflicts == ["pyzmq"] and caught.value.step == "check"
    assert "pyzmq" in str(caught.value) and "volttron-testagent-conflict" in str(caught.value)
    assert _platform_freeze(environment) == freeze_before
    assert agent_entries(tmp_path / "home") == [] and auth_users(tmp_path / "home") == []


@pytest.mark.parametrize(
    "case,step,message",
    [
        ("missing", "resolve", "no such file or directory"),
        ("not-a-wheel", "resolve", "corrupt wheel"),
        ("empty-dir", "resolve", "nothing to build"),
        ("no-entry-point", "resolve", "no agent entry point"),
        ("unknown-name", "resolve", "volttron-testagent-unknown"),
        ("failing-build", "resolve", "this build fails on purpose"),
    ],
)
def test_failed_installs_leave_nothing_behind(
    platform: AIPPlatform,
    wheels: dict[str, Path],
    environment: PythonEnvironment,
    tmp_path: Path,
    case: str,
    step: str,
    message: str,
) -> None:
    sources = {
        "missing": str(tmp_path / "nowhere" / "agent.whl"),
        "not-a-wheel": str(tmp_path / "garbage-1.0-py3-none-any.whl"),
        "empty-dir": str(tmp_path / "empty"),
        "no-entry-point": str(wheels["noentry"]),
        "unknown-name": "volttron-testagent-unknown",
        "failing-build": str(shutil.copytree(FIXTURES / "broken", tmp_path / "broken")),
    }
    (tmp_path / "garbage-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AgentInstallError) as caught:
        platform.install(sources[case], vip_identity="doomed", tag="x", enable=True)
    assert caught.value.step == step
    assert message in str(caught.value)
    assert agent_entries(tmp_path / "home") == [] and auth_users(tmp_path / "home") == []
    assert not test_distributions(environment)


class FailingHooks:
    """Auth hooks whose install callback fails, as a broken auth service would."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def on_agent_installed(self, identity: str, publickey: str) -> None:
        raise AgentBusyError("auth service unavailable")

    def on_agent_removed(self, identity: str) -> None:
        self.removed.append(identity)


def test_failure_after_pip_install_rolls_the_install_back(
    wheels: dict[str, Path], environment: PythonEnvironment, tmp_path: Path
) -> None:
    aip = AIPPlatform(AIPConfig(volttron_home=tmp_path / "home"), hooks=FailingHooks())
    with pytest.raises(AgentInstallError) as caught:
        aip.install(str(wheels["testagent"]))
    assert caught.value.step == "auth" and "auth service unavailable" in str(caught.value)
    assert agent_entries(tmp_path / "home") == []
    assert not test_distributions(environment)


def test_concurrent_installs_of_one_identity_one_wins(platform: AIPPlatform, wheels: dict[str, Path]) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def install() -> None:
        barrier.wait(10)
        try:
            outcomes.append(platform.installer.install(str(wheels["testagent"]), vip_identity="race"))
        except (AgentBusyError, IdentityInUseError) as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=install) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(outcomes) == 2
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(winners) == 1 and winners[0].record.identity == "race"
    assert [d.identity for d in platform.folder.directories()] == ["race"]


def test_install_by_name_from_an_index_and_upgrade_to_a_prerelease(
    platform: AIPPlatform, tmp_path: Path
) -> None:
    result = platform.install(BASIC)
    assert result["identity"] == DEFAULT_ID and result["version"] == "0.1.0"  # pre-releases need pre=True
    (tmp_path / "home/agents" / DEFAULT_ID / "data/keep.txt").write_text("kept")
    upgraded = platform.install(BASIC, vip_identity=DEFAULT_ID, force=True, pre=True)
    assert upgraded["version"] == "0.2.0rc1" and upgraded["agent_uuid"] == result["agent_uuid"]
    assert upgraded["changes"] == [f"{BASIC} 0.2.0rc1"]
    assert (tmp_path / "home/agents" / DEFAULT_ID / "data/keep.txt").read_text() == "kept"
    assert (tmp_path / "home/agents" / DEFAULT_ID / "VERSION").read_text().strip() == "0.2.0rc1"


def test_installed_agent_runs_with_its_environment(
    platform: AIPPlatform, wheels, tmp_path: Path, caplog
) -> None:
    serverkey = KeyStore.generate(tmp_path / "home" / "keystore").public  # made after the AIP started
    with caplog.at_level(logging.INFO, logger="agents"):
        result = platform.install(str(wheels["testagent"]), vip_identity="runner", tag="lab", start=True)
        assert result["started"] and result["pid"]
        starts = tmp_path / "home/agents/runner/data/starts.jsonl"
        wait_until(starts.exists)
        wait_until(lambda: any(r.name == "agents.runner.vtestagent.agent" for r in caplog.records))
    entry = json.loads(starts.read_text().splitlines()[0])
    env = entry["env"]
    keys = json.loads((tmp_path / "home/agents/runner/keystore.json").read_text())
    assert entry["cwd"] == str(tmp_path / "home/agents/runner") and entry["stdin_is_devnull"]
    assert env["AGENT_VIP_IDENTITY"] == "runner" and env["AGENT_UUID"] == result["agent_uuid"]
    assert env["AGENT_DATA_DIR"] == str(tmp_path / "home/agents/runner/data")
    assert env["AGENT_PUBLICKEY"] == keys["public"] and env["AGENT_SECRETKEY"] == keys["secret"]
    assert env["AGENT_TAG"] == "lab" and env["AGENT_CONFIG"] is None
    assert env["VOLTTRON_SERVERKEY"] == serverkey and env["MESSAGEBUS"] == "zmq"
    assert env["VOLTTRON_HOME"] == str(tmp_path / "home") and env["_LAUNCHED_BY_PLATFORM"] == "1"
    assert platform.status_agents() == [[result["agent_uuid"], BASIC, [result["pid"], None], "runner"]]
    assert platform.stop("runner")["state"] == "stopped"
    assert platform.agent_status("runner") == [None, 0]


def test_crashing_agent_ends_failed_with_its_error(platform: AIPPlatform, wheels) -> None:
    result = platform.install(str(wheels["testagent"]), config={"mode": "crash"}, start=True)
    platform.supervisor.wait_state(result["identity"], [AgentState.FAILED], timeout=20)
    row = platform.agent_status_row(result["identity"])
    assert (row["state"], row["returncode"], row["pid"]) == ("FAILED", 3, None)
    assert row["last_error"] == "RuntimeError: testagent crashed on purpose"
    assert platform.status_agents()[0][2] == [None, 3]


def test_autostart_follows_priority_and_shutdown_stops_all(platform: AIPPlatform, wheels) -> None:
    wheel = str(wheels["testagent"])
    platform.install(wheel, vip_identity="later", priority=20, config={"mode": "run"})
    platform.install(wheel, vip_identity="first", priority="05", config={"mode": "run"})
    platform.install(wheel, vip_identity="manual", config={"mode": "run"})
    assert platform.autostart() == ["first", "later"]
    rows = {row["identity"]: row for row in platform.status()}
    assert rows["first"]["state"] == rows["later"]["state"] == "running" and rows["manual"]["pid"] is None
    pids = [rows["first"]["pid"], rows["later"]["pid"]]
    assert platform.shutdown() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _platform_freeze(environment: PythonEnvironment) -> list[str]:
    """``pip freeze`` of what an install could wrongly change: the platform's own packages.

    Other tests install their own agents into the shared venv at the same time, so the whole
    freeze is not stable while the suite runs in parallel.
    """
    lines = environment.run_pip(["freeze", "--all"], 120).output.splitlines()
    keep = ("volttron", "-e", "gevent", "pyzmq", "pika")
    return [line for line in lines if line.lower().startswith(keep) and "testagent" not in line]


def test_an_editable_distribution_is_used_as_is_and_never_uninstalled(
    platform: AIPPlatform, environment: PythonEnvironment
) -> None:
    listener = environment.snapshot().installed.get("volttron-listener-agent")
    if listener is None or not listener.editable:
        pytest.skip(reason="volttron-listener-agent is not installed in editable mode here")
    freeze_before = _platform_freeze(environment)
    result = platform.install("volttron-listener-agent", vip_identity="listen.dev")
    assert result["changes"] == [] and result["version"] == listener.version
    assert any("editable" in note for note in result["notes"])
    removed = platform.remove("listen.dev")
    assert removed["uninstalled"] == [] and "kept installed" in removed["notes"][0]
    assert _platform_freeze(environment) == freeze_before
