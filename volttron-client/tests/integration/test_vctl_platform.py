"""The real ``vctl`` console script against a real ``volttron`` process (reference §5.1, §5.4).

``volttron`` runs in a temporary ``VOLTTRON_HOME`` with its own pip settings (a local, empty
package index), and every command runs as a user types it, from the repository root. The first
test is the quickstart's walk-through: the listener installed from source, running with health
GOOD, heartbeats in the log; then ``l2`` installed, stopped and removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.testing.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
LISTENER = "volttron-listener-agent"
VCTL = str(Path(sys.executable).with_name("vctl"))
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent is gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


class VctlPlatform:
    """A ``volttron`` process in its own home, and ``vctl`` commands run against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(mode=0o700)
        self.port = free_port()
        self.tcp_address = f"tcp://127.0.0.1:{self.port}"
        self.log = root / "volttron.log"
        index = root / "empty-index"
        index.mkdir()
        (index / "index.html").write_text("<html><body></body></html>\n")
        # vctl keeps the user's pip settings (it builds wheels); the platform gets an empty index
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLTTRON_", "AGENT_"))}
        self.env["VOLTTRON_HOME"] = str(self.home)
        self.platform_env = {k: v for k, v in self.env.items() if not k.startswith("PIP_")}
        self.platform_env.update(
            HOME=str(root),
            PIP_CONFIG_FILE=os.devnull,
            PIP_INDEX_URL=index.as_uri(),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> VctlPlatform:
        with open(self.root / "volttron.stderr", "ab") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "volttron.server",
                    "-v",
                    "-l",
                    str(self.log),
                    "--vip-address",
                    self.tcp_address,
                ],
                env=self.platform_env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.root,
            )
        wait_until(self._ready, START_TIMEOUT, "the platform to answer vctl")
        return self

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log_text()
        return self.vctl("-t", "2", "peerlist", check=False).returncode == 0

    def vctl(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [VCTL, *args], env=env or self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert result.returncode == 0, f"vctl {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        return result

    def status(self) -> dict[str, dict[str, Any]]:
        return {row["identity"]: row for row in json.loads(self.vctl("status", "--json").stdout)}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError("volttron did not stop on SIGTERM") from None


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[VctlPlatform]:
    assert (REPO / LISTENER).is_dir() and Path(VCTL).exists(), \
        "these tests run from the repository checkout with its venv (scripts/bootstrap)"
    instance = VctlPlatform(tmp_path).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def listener_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from volttron.client.packaging import build_wheel

    return build_wheel(REPO / LISTENER, tmp_path_factory.mktemp("wheel"), timeout=300)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("vctl: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_quickstart_walkthrough(platform: VctlPlatform) -> None:
    installed = platform.vctl(
        "install", f"{LISTENER}/", "--vip-identity", "listener", "--tag", "quickstart", "--enable", "--start"
    )
    assert re.fullmatch(r"Agent [0-9a-f-]{36} installed as listener and started \[\d+\]\n", installed.stdout)
    assert "transfer: sent" in installed.stderr and "done: installed listener" in installed.stderr

    def listener_good() -> bool:
        row = platform.status().get("listener", {})
        return row.get("state") == "running" and row.get("health") == "GOOD"

    wait_until(listener_good, 30, "the listener to run with health GOOD")
    table = platform.vctl("status")
    header, line = table.stdout.splitlines()  # the header on stdout too (issue 13 item 8)
    assert header.split() == ["UUID", "AGENT", "IDENTITY", "TAG", "PRIORITY", "STATUS", "HEALTH"]
    assert re.fullmatch(
        r"\w+\s+volttron-listener-agent-0\.1\.0\s+listener\s+quickstart\s+50\s+running \[\d+\]\s+GOOD", line
    ), line
    wait_until(lambda: "Topic: heartbeat/listener" in platform.log_text(), 30, "a heartbeat in the log")

    l2 = platform.vctl("install", f"{LISTENER}/", "--vip-identity", "l2", "--start")
    assert re.fullmatch(r"Agent ([0-9a-f-]{36}) installed as l2 and started \[\d+\]\n", l2.stdout)
    l2_uuid = l2.stdout.split()[1]
    pid = platform.status()["l2"]["pid"]
    assert platform.vctl("stop", "l2").stdout == f"Stopping {l2_uuid} l2\n"
    assert platform.status()["l2"]["status"] == "stopped" and not alive(pid)
    assert platform.vctl("remove", "l2").stdout == f"Removing {l2_uuid} l2\n"
    assert set(platform.status()) == {"listener"}
    assert not (platform.home / "agents" / "l2").exists()
    users = {e["user_id"] for e in json.loads((platform.home / "auth.json").read_text())["allow"]}
    assert "l2" not in users and "listener" in users


def test_bad_installs_fail_with_one_line_and_leave_nothing(platform: VctlPlatform, tmp_path: Path) -> None:
    noentry = tmp_path / "noentry"
    (noentry / "src" / "vtest_noentry").mkdir(parents=True)
    (noentry / "src" / "vtest_noentry" / "__init__.py").write_text("")
    (noentry / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["poetry-core>=2.0"]\nbuild-backend = "poetry.core.masonry.api"\n'
        '[project]\nname = "vtest-noentry"\nversion = "0.1.0"\n'
        '[tool.poetry]\npackages = [{ include = "vtest_noentry", from = "src" }]\n'
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "setup.py").write_text('raise SystemExit("this build is broken on purpose")\n')
    notwheel = tmp_path / "notes.txt"
    notwheel.write_text("not a wheel")
    cases = [
        (str(tmp_path / "missing"), 1, "no such file or directory"),
        (str(notwheel), 1, "not a wheel"),
        (str(noentry), 1, "no agent entry point"),
        (str(broken), 1, "the build of"),
        ("vtest-no-such-agent-anywhere", 20, "vtest-no-such-agent-anywhere"),
    ]
    for source, code, message in cases:
        started = time.monotonic()
        result = platform.vctl("-t", "60", "install", source, "--vip-identity", "bad", check=False)
        assert result.returncode == code, (source, result.stderr)
        assert message in one_error_line(result), (source, result.stderr)
        assert time.monotonic() - started < 60
    assert not [p for p in (platform.home / "agents").iterdir() if not p.name.startswith(".")]
    users = {e["user_id"] for e in json.loads((platform.home / "auth.json").read_text())["allow"]}
    assert "bad" not in users
    assert platform.status() == {}


def test_concurrent_installs_of_one_identity(platform: VctlPlatform, listener_wheel: Path) -> None:
    command = [VCTL, "install", str(listener_wheel), "--vip-identity", "same"]
    runs = [
        subprocess.Popen(
            command, env=platform.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes = [(run.wait(120), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 20], outcomes
    loser = next(err for code, _, err in outcomes if code == 20)
    assert "already installed" in loser or "in progress" in loser
    assert set(platform.status()) == {"same"}


def test_agent_names_unknown_and_ambiguous(platform: VctlPlatform, listener_wheel: Path) -> None:
    for identity in ("one", "two"):
        platform.vctl("install", str(listener_wheel), "--vip-identity", identity)
    uuids = {i: r["uuid"] for i, r in platform.status().items()}
    unknown = platform.vctl("start", "nobody", check=False)
    assert unknown.returncode == 1 and "'nobody'" in one_error_line(unknown)
    common = os.path.commonprefix(list(uuids.values()))
    if common:  # two random UUIDs share a prefix only sometimes
        ambiguous = platform.vctl("start", common, check=False)
        assert ambiguous.returncode == 1 and "matches 2 agents" in one_error_line(ambiguous)
    prefix = uuids["one"][: len(common) + 1]
    assert platform.vctl("tag", prefix, "by-prefix").stdout == "by-prefix\n"
    assert platform.status()["one"]["tag"] == "by-prefix"
    assert platform.vctl("enable", "two", "-p", "7").stdout.endswith("with priority 07\n")
    header, _, two = platform.vctl("list").stdout.splitlines()  # the header is on stdout too
    assert header.split()[0] == "UUID" and two.split()[-1] == "07"


def test_remote_address_and_a_stopped_platform(platform: VctlPlatform, tmp_path: Path) -> None:
    remote_home = tmp_path / "elsewhere"
    store = remote_home / "keystores" / "control.connection" / "keystore.json"
    store.parent.mkdir(parents=True)
    shutil.copy(platform.home / "keystores" / "control.connection" / "keystore.json", store)
    serverkey = json.loads((platform.home / "keystore").read_text())["public"]
    env = {**platform.env, "VOLTTRON_HOME": str(remote_home)}
    remote = ["--vip-address", platform.tcp_address]
    peers = platform.vctl(*remote, "--serverkey", serverkey, "peerlist", env=env).stdout.split()
    assert "platform.control" in peers
    started = time.monotonic()
    no_key = platform.vctl("-t", "3", *remote, "status", env=env, check=False)
    assert no_key.returncode == 10 and "--serverkey" in one_error_line(no_key)
    assert time.monotonic() - started < 10

    assert platform.vctl("shutdown", "--platform").stdout.splitlines()[-1] == "Platform stopped"
    assert platform.process is not None and platform.process.wait(20) == 0
    local = platform.vctl("status", check=False)
    assert local.returncode == 10 and "VOLTTRON is not running" in one_error_line(local)
    started = time.monotonic()
    gone = platform.vctl("-t", "2", *remote, "--serverkey", serverkey, "status", env=env, check=False)
    assert gone.returncode == 10 and time.monotonic() - started < 8, gone.stderr
    one_error_line(gone)


def test_platform_stop_leaves_no_agent_process(platform: VctlPlatform, listener_wheel: Path) -> None:
    platform.vctl("install", str(listener_wheel), "--vip-identity", "keeper", "--enable", "--start")
    pid = platform.status()["keeper"]["pid"]
    assert alive(pid)
    platform.vctl("shutdown", "--platform")
    wait_until(lambda: not alive(pid), 10, "the agent process to be gone")
    assert not (platform.home / "VOLTTRON_PID").exists()


def _listener_is_editable() -> bool:
    import importlib.metadata

    try:
        text = importlib.metadata.distribution("volttron-listener-agent").read_text("direct_url.json") or "{}"
    except importlib.metadata.PackageNotFoundError:
        return False
    return bool(json.loads(text).get("dir_info", {}).get("editable"))


def test_install_by_package_name_uses_the_platforms_environment(platform: VctlPlatform) -> None:
    assert _listener_is_editable(), "scripts/bootstrap installs the listener in development mode"
    result = platform.vctl("--json", "install", "volttron-listener-agent", "--vip-identity", "byname",
                           "--start")
    report = json.loads(result.stdout)
    assert report["identity"] == "byname" and report["started"] and report["connected"]
    assert "development (editable) mode" in result.stderr
    assert platform.status()["byname"]["state"] == "running"


def test_key_commands_for_the_auth_group(platform: VctlPlatform, listener_wheel: Path) -> None:
    import click
    from click.testing import CliRunner

    from volttron.client.commands.auth_keys import KEY_COMMANDS
    from volttron.client.commands.vctl import VctlOptions

    @click.group()
    @click.pass_context
    def auth(ctx: click.Context) -> None:
        ctx.obj = VctlOptions(
            home=platform.home, timeout=10, vip_address=None, json=False, debug=False, verbose=0
        )

    for command in KEY_COMMANDS:
        auth.add_command(command)
    platform.vctl("install", str(listener_wheel), "--vip-identity", "keyed")
    runner = CliRunner()
    serverkey = runner.invoke(auth, ["serverkey"])
    assert serverkey.exit_code == 0, serverkey.output
    assert serverkey.output.strip() == json.loads((platform.home / "keystore").read_text())["public"]
    publickey = runner.invoke(auth, ["publickey", "keyed"])
    assert publickey.exit_code == 0, publickey.output
    agent_key = json.loads((platform.home / "agents" / "keyed" / "keystore.json").read_text())["public"]
    assert agent_key in publickey.output
    pair = json.loads(runner.invoke(auth, ["keypair"]).output)
    assert len(pair["public"]) == 43 and len(pair["secret"]) == 43


def test_health_right_after_start_and_the_commands_a_user_looks_for(
    platform: VctlPlatform, listener_wheel: Path
) -> None:
    # issue 13 item 1: the listener publishes twice within microseconds at start; the health
    # service took that gap for its period and said "stale" a second later while status said GOOD
    platform.vctl("install", str(listener_wheel), "--vip-identity", "listener", "--start")

    def health() -> dict[str, Any]:
        return json.loads(platform.vctl("health", "listener").stdout)

    # from the first heartbeat on (the burst), not from the first GOOD: stale reads UNKNOWN
    wait_until(lambda: health().get("last_heartbeat"), 30, "the listener's first heartbeats")
    seen_until = time.monotonic() + 4.0  # past the allowance of a microsecond period (1 s)
    while time.monotonic() < seen_until:
        record = health()
        assert record["state"] == "connected", f"stale right after start: {record['context']}"
        assert record["heartbeat_period"] == 5.0
        assert platform.status()["listener"]["health"] == record["status"]
    everyone = json.loads(platform.vctl("health").stdout)  # without an agent: all peers
    assert {"listener", "platform.control", "platform.health"} <= set(everyone)

    # issue 13 item 8: rpc call, publish, subscribe, --version, start/stop say when nothing is to do
    called = platform.vctl("rpc", "call", "platform.health", "get_agent_health", '"listener"', "--json")
    assert json.loads(called.stdout)["peer"] == "listener"
    assert platform.vctl("rpc", "call", "listener", "health.get_status").stdout.startswith("{")
    bad_arg = platform.vctl("rpc", "call", "listener", "health.get_status", "not-json", check=False)
    assert bad_arg.returncode == 2 and "is not JSON" in one_error_line(bad_arg)
    missing = platform.vctl("rpc", "call", "listener", "no_such_method", check=False)
    assert missing.returncode == 20, missing.stderr
    published = platform.vctl("publish", "demo/vctl", '{"from": "vctl"}')
    assert re.fullmatch(r"published on demo/vctl to [1-9]\d* subscriber\(s\)\n", published.stdout)
    wait_until(lambda: "Topic: demo/vctl" in platform.log_text(), 20, "the listener to log vctl's message")
    heard = platform.vctl("subscribe", "heartbeat/listener", "-n", "1", "-s", "30", "--json")
    (line,) = heard.stdout.splitlines()
    assert json.loads(line)["topic"] == "heartbeat/listener" and json.loads(line)["sender"] == "listener"
    quiet = platform.vctl("subscribe", "nothing/here", "-n", "1", "-s", "0.5", check=False)
    assert quiet.returncode == 75 and "heard 0 of 1" in one_error_line(quiet)
    assert re.fullmatch(r"vctl \d+\.\d+\.\d+\n", platform.vctl("--version").stdout)
    assert re.fullmatch(r"already running|listener is already running \[\d+\]\n",
                        platform.vctl("start", "listener").stdout)
    platform.vctl("stop", "listener")
    assert platform.vctl("stop", "listener").stdout.startswith("listener is not running")


def test_exit_codes_follow_the_documented_table(platform: VctlPlatform, tmp_path: Path) -> None:
    # issue 13 item 4: one table (vctl --help, the user guide) and the code follows it
    from volttron.client.commands.cli import EXIT_CODES

    documented = dict(EXIT_CODES)
    help_text = platform.vctl("--help").stdout
    for code, meaning in EXIT_CODES:
        assert f"{code:>3}  {meaning}" in help_text
    not_a_project = tmp_path / "just-a-folder"
    not_a_project.mkdir()
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"message": ')
    cases = {
        "unknown identity": (["start", "nobody"], 1),
        "bad path": (["install", str(tmp_path / "missing")], 1),
        "non-project directory": (["install", str(not_a_project)], 1),
        "invalid JSON file": (["config", "store", "someone", "config", str(bad_json)], 1),
        "unknown command": (["no-such-command"], 2),
        "bad option": (["status", "--no-such-option"], 2),
        "malformed JSON argument": (["publish", "a/topic", "{"], 2),
        "no such peer": (["rpc", "call", "nobody.here", "ping"], 20),
    }
    for what, (args, code) in cases.items():
        result = platform.vctl(*args, check=False)
        assert code in documented
        assert result.returncode == code, f"{what}: exit {result.returncode}, not {code}: {result.stderr}"
        one_error_line(result)
    platform.stop()
    stopped = platform.vctl("status", check=False)
    assert stopped.returncode == 10 and 10 in documented


def _interrupt_install_at(platform: VctlPlatform, marker: str, identity: str, tmp: Path,
                          ready: Callable[[], Any] | None = None) -> tuple[int, str]:
    """Run ``vctl install`` of the listener's source, Ctrl-C (SIGINT to its process group, as a
    terminal does) once stderr shows ``marker`` (and ``ready()`` holds); returns the exit code and
    all of stderr."""
    env = {**platform.env, "TMPDIR": str(tmp)}
    process = subprocess.Popen([VCTL, "install", f"{LISTENER}/", "--vip-identity", identity, "--start"],
                               env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    seen = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # ends when vctl exits: bounded by the communicate timeout below
            seen.append(line)
            if marker in line:
                if ready is not None:
                    wait_until(ready, 60, "the moment to press Ctrl-C")
                os.killpg(process.pid, signal.SIGINT)
                break
        _, rest = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return process.returncode, "".join(seen) + rest


def _processes_using(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                environ = (entry / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(path) in text or f"TMPDIR={path}" in environ:
                found.append(int(entry.name))
    return found


def test_ctrl_c_during_the_build_leaves_no_folder(platform: VctlPlatform, tmp_path: Path) -> None:
    # issue 13 item 2: the build ran in its own session, so Ctrl-C did not reach it; it went on and
    # re-created volttron-build-*/ (and left build-env-*) after vctl had removed its folder
    work = tmp_path / "tmp"
    work.mkdir()
    # Ctrl-C while the build's pip sets up its isolated environment (build-env-*): mid-build
    code, stderr = _interrupt_install_at(platform, "building ", "never", work,
                                         ready=lambda: next(work.rglob("build-env-*"), None))
    assert code == 130, stderr
    assert "KeyboardInterrupt" not in stderr.replace("vctl: error:", "")
    one_error_line(subprocess.CompletedProcess([], code, "", stderr))
    wait_until(lambda: not _processes_using(work), 60, "the build to be gone")
    assert sorted(p.name for p in work.iterdir()) == [], "Ctrl-C during the build left files behind"
    assert "never" not in platform.status()


def test_ctrl_c_after_the_upload_says_the_install_goes_on(platform: VctlPlatform, tmp_path: Path) -> None:
    # issue 13 item 2: Ctrl-C printed a bare KeyboardInterrupt and "aborted" while the platform
    # finished the install and started the agent; vctl must say what the platform does
    code, stderr = _interrupt_install_at(platform, "resolve: ", "goes.on", tmp_path)
    assert code == 130, stderr
    assert "KeyboardInterrupt" not in stderr and "aborted" not in stderr, stderr
    assert "the platform goes on and finishes the install" in one_error_line(
        subprocess.CompletedProcess([], code, "", stderr))
    wait_until(lambda: platform.status().get("goes.on", {}).get("state") == "running", 60,
               "the install that vctl said goes on")


def test_an_agent_that_does_not_compile_is_refused_at_install(platform: VctlPlatform, tmp_path: Path) -> None:
    # issue 13 item 5: a wheel whose agent has a syntax error installed as "done", then crash-looped
    # for ~30 s before status showed the SyntaxError
    from volttron.client.packaging import build_wheel

    project = tmp_path / "broken"
    package = project / "src" / "vtest_broken"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "agent.py").write_text("def main():\n    return 0\n\ndef oops(:\n    pass\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["poetry-core>=2.0"]\nbuild-backend = "poetry.core.masonry.api"\n'
        '[project]\nname = "vtest-broken"\nversion = "0.1.0"\n'
        '[project.scripts]\nvtest-broken = "vtest_broken.agent:main"\n'
        '[tool.poetry]\npackages = [{ include = "vtest_broken", from = "src" }]\n'
    )
    wheel = build_wheel(project, tmp_path / "dist", timeout=300)
    started = time.monotonic()
    result = platform.vctl("install", str(wheel), "--vip-identity", "broken", "--start", check=False)
    line = one_error_line(result)
    assert result.returncode == 20, result.stderr
    assert "vtest_broken/agent.py:4" in line and "SyntaxError" in line, line
    assert time.monotonic() - started < 30
    assert "broken" not in platform.status()
