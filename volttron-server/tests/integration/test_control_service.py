"""``platform.control`` in a real ``volttron`` process, driven over VIP as vctl drives it.

The test process connects as ``control.connection`` with the keys the platform wrote, sends the
listener's wheel over a channel and installs, starts, stops and removes it. The listener is
installed in the test environment in development mode, so the AIP uses its code without pip.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from volttron.client.commands.transfer import FileSender, parse_request, serve_install
from volttron.client.known_identities import CONTROL
from volttron.client.packaging import build_wheel
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import Agent, RemoteError, Unauthorized
from volttron.server.services.control.agent import CONTROL_CAPABILITY

pytestmark = pytest.mark.integration

LISTENER_DIR = Path(__file__).resolve().parents[3] / "volttron-listener-agent"
CALL_TIMEOUT = 60.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="session")
def listener_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LISTENER_DIR.is_dir():
        pytest.skip(reason="the listener agent's source is not beside the server")
    return build_wheel(LISTENER_DIR, tmp_path_factory.mktemp("listener-wheel"), timeout=300)


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "platform-tmp"
    folder.mkdir()
    return folder


@pytest.fixture
def platform(platform_factory, uploads: Path):
    return platform_factory(env={"TMPDIR": str(uploads)}).start()


@pytest.fixture
def connect(platform) -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def make(identity: str = "control.connection") -> Agent:
        agent = build_agent(
            address=platform.local_address,
            identity=identity,
            volttron_home=str(platform.home),
            enable_channel=True,
            timeout=10,
        )
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.core.stop(timeout=5)


def call(agent: Agent, method: str, *args: Any, **kwargs: Any) -> Any:
    return agent.vip.rpc.call(CONTROL, method, *args, **kwargs).get(timeout=CALL_TIMEOUT)


def install_wheel(
    agent: Agent, wheel: Path, steps: list[str] | None = None, **options: Any
) -> dict[str, Any]:
    channel = agent.vip.channel(CONTROL)
    try:
        result = agent.vip.rpc.call(
            CONTROL,
            "install",
            wheel.name,
            channel_name=channel.name,
            progress_channel=channel.name,
            **options,
        )
        progress = (lambda step, message: steps.append(step)) if steps is not None else None
        serve_install(channel, result, wheel, idle_timeout=30, progress=progress)
        return result.get(timeout=CALL_TIMEOUT)
    finally:
        channel.close()


def agent_dirs(home: Path) -> list[str]:
    folder = home / "agents"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def auth_users(home: Path) -> set[str]:
    return {e["user_id"] for e in json.loads((home / "auth.json").read_text())["allow"]}


def row_of(agent: Agent, identity: str) -> dict[str, Any] | None:
    return next((r for r in call(agent, "agent_status_rows") if r["identity"] == identity), None)


def test_install_start_stop_remove_over_vip(platform, connect, listener_wheel: Path, uploads: Path) -> None:
    admin = connect()
    steps: list[str] = []
    report = install_wheel(admin, listener_wheel, steps, vip_identity="l1", tag="demo", start=True)
    assert report["identity"] == "l1" and report["started"] and report["tag"] == "demo"
    assert steps[0] == "transfer" and steps[-1] == "done" and "auth" in steps
    assert agent_dirs(platform.home) == ["l1"] and "l1" in auth_users(platform.home)
    assert not list(uploads.iterdir()), "the uploaded wheel is not left in the platform's temp folder"
    pid = report["pid"]
    wait_until(lambda: "l1" in call(admin, "peerlist"), 30, "the listener to connect")
    assert call(admin, "agent_status", report["agent_uuid"][:6]) == [pid, None]
    assert call(admin, "list_agents")[0]["tag"] == "demo"
    assert call(admin, "agent_vip_identity", report["agent_uuid"]) == "l1"

    row = call(admin, "stop_agent", "l1")
    assert row["state"] == "stopped" and not alive(pid)
    wait_until(lambda: "l1" not in call(admin, "peerlist"), 10, "the router to forget l1")

    result = call(admin, "remove_agent", "l1")
    assert result["identity"] == "l1"
    assert agent_dirs(platform.home) == [] and "l1" not in auth_users(platform.home)
    assert call(admin, "list_agents") == []


def test_an_ordinary_agent_cannot_manage_agents_or_stop_the_platform(
    platform, connect, listener_wheel
) -> None:
    authorize(platform, "mallory")
    mallory = connect("mallory")
    for method, args in [
        ("install_agent", ["volttron-listener-agent", None]),
        ("install", ["volttron-listener-agent"]),
        ("start_agent", ["x"]),
        ("stop_agent", ["x"]),
        ("remove_agent", ["x"]),
        ("tag_agent", ["x", "t"]),
        ("shutdown", []),
        ("stop_platform", []),
    ]:
        with pytest.raises(Unauthorized, match=CONTROL_CAPABILITY):
            call(mallory, method, *args)
    assert call(mallory, "list_agents") == []  # reading is open
    assert platform.running() and agent_dirs(platform.home) == []
    # the same capability in mallory's entry lets it in: the check is the capability, not the name
    authorize(platform, "mallory", {CONTROL_CAPABILITY: None})
    wait_until(lambda: _may_install(mallory), 10, "the new capability to apply")


def _may_install(agent: Agent) -> bool:
    try:
        call(agent, "clear_status")
    except Unauthorized:
        return False
    return True


def authorize(platform, identity: str, capabilities: dict[str, Any] | None = None) -> None:
    """An allow entry for ``identity`` with keys in its key store, where build_agent finds them."""
    from volttron.utils.keystore import KeyStore

    path = platform.home / "keystores" / identity / "keystore.json"
    keys = KeyStore(path).keypair  # made on first use
    platform.add_allow_entry(identity, keys, capabilities)


def _fake_wheel(folder: Path, name: str, entry_points: str | None) -> Path:
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            "vtest_fake-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: vtest-fake\nVersion: 0.1\n"
        )
        if entry_points is not None:
            archive.writestr("vtest_fake-0.1.dist-info/entry_points.txt", entry_points)
    return wheel


class CorruptingSender(FileSender):
    def answer(self, request: list) -> bytes:
        data = super().answer(request)
        return bytes(64) if request[0] == "checksum" else data


def _send_corrupted(agent: Agent, wheel: Path) -> dict[str, Any]:
    channel = agent.vip.channel(CONTROL)
    result = agent.vip.rpc.call(CONTROL, "install", wheel.name, channel_name=channel.name, vip_identity="bad")
    with open(wheel, "rb") as stream:
        sender = CorruptingSender(stream, wheel.stat().st_size)
        while not result.ready():
            try:
                request = parse_request(channel.recv(timeout=0.2))
            except Exception:  # noqa: BLE001 - the poll timeout; the result decides
                continue
            channel.send(sender.answer(request))
    channel.close()
    return result.get(timeout=CALL_TIMEOUT)


def test_bad_uploads_fail_with_one_reason_and_leave_nothing(
    platform, connect, tmp_path: Path, uploads
) -> None:
    admin = connect()
    garbage = tmp_path / "vtest_fake-0.1-py3-none-any.whl"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(RemoteError, match="not a readable zip"):
        install_wheel(admin, garbage, vip_identity="bad")
    (tmp_path / "noentry").mkdir()
    noentry = _fake_wheel(tmp_path / "noentry", "vtest_fake-0.1-py3-none-any.whl", None)
    with pytest.raises(RemoteError, match="no agent entry point"):
        install_wheel(admin, noentry, vip_identity="bad")
    good = _fake_wheel(tmp_path, "vtest_ok-0.1-py3-none-any.whl", "[console_scripts]\nvtest-fake = x:main\n")
    with pytest.raises(RemoteError, match="checksum mismatch"):
        _send_corrupted(admin, good)
    with pytest.raises(RemoteError, match="not a wheel file name"):
        call(admin, "install", "../../evil.whl", channel_name="nothing-sent")
    assert agent_dirs(platform.home) == []
    assert "bad" not in auth_users(platform.home)
    assert not list(uploads.iterdir())
    assert platform.running()


def test_concurrent_installs_of_one_identity_exactly_one_wins(platform, connect, listener_wheel) -> None:
    authorize(platform, "admin2", {CONTROL_CAPABILITY: None})
    first, second = connect(), connect("admin2")
    jobs = [
        gevent.spawn(install_wheel, agent, listener_wheel, vip_identity="same") for agent in (first, second)
    ]
    gevent.joinall(jobs, timeout=120)
    assert all(job.ready() for job in jobs)
    won = [job for job in jobs if job.successful()]
    lost = [job for job in jobs if not job.successful()]
    assert len(won) == 1 and len(lost) == 1, [job.exception for job in jobs]
    assert isinstance(lost[0].exception, RemoteError)
    assert "already installed" in str(lost[0].exception) or "in progress" in str(lost[0].exception)
    assert agent_dirs(platform.home) == ["same"]


def test_enabled_agents_autostart_and_a_platform_stop_leaves_no_agent(
    platform_factory, uploads, listener_wheel
):
    platform = platform_factory(env={"TMPDIR": str(uploads)}).start()
    admin = build_agent(
        address=platform.local_address,
        identity="control.connection",
        volttron_home=str(platform.home),
        enable_channel=True,
        timeout=10,
    )
    try:
        install_wheel(admin, listener_wheel, vip_identity="early", priority="10", start=True)
        late = install_wheel(admin, listener_wheel, vip_identity="late", enable=True, start=True)
        install_wheel(admin, listener_wheel, vip_identity="manual")
        pids = [late["pid"], row_of(admin, "early")["pid"]]
    finally:
        admin.core.stop(timeout=5)
    assert platform.stop() == 0
    wait_until(lambda: not any(alive(p) for p in pids), 10, "the agent processes to be gone")

    again = platform_factory(name="home", env={"TMPDIR": str(uploads)}).start()
    admin = build_agent(
        address=again.local_address,
        identity="control.connection",
        volttron_home=str(again.home),
        enable_channel=True,
        timeout=10,
    )
    try:
        wait_until(
            lambda: (
                {r["identity"] for r in call(admin, "agent_status_rows") if r["state"] == "running"}
                == {"early", "late"}
            ),
            30,
            "the enabled agents to autostart",
        )
        assert row_of(admin, "manual")["state"] == "stopped"
        pids = [row_of(admin, i)["pid"] for i in ("early", "late")]
        call(admin, "stop_platform")
    finally:
        admin.core.stop(timeout=5)
    assert again.wait(20) == 0
    assert not any(alive(p) for p in pids)
    assert not (again.home / "VOLTTRON_PID").exists()
