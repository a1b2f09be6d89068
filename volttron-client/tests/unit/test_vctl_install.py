"""``vctl install`` without a platform: checking the source, the sender's loop, and the command's
failures that need no platform (missing path, not a wheel, no entry point, failed build, bad
config), each one line with a non-zero exit, and ``vctl`` against a home where nothing runs."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from volttron.client.commands.cli import EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_USAGE, CommandError, run_cli
from volttron.client.commands.install import looks_like_path, prepare_source, read_agent_config
from volttron.client.commands.transfer import COMPLETE, UploadError, UploadTimeout, serve_install
from volttron.client.commands.vctl import vctl
from volttron.client.packaging import BuildError
from volttron.client.vip.agent.errors import ResultTimeout


def make_wheel(
    folder: Path, entry_points: str | None = "[console_scripts]\nvtest = vtest.agent:main\n"
) -> Path:
    wheel = folder / "vtest-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            "vtest-0.1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: vtest\nVersion: 0.1.0\n"
        )
        if entry_points is not None:
            archive.writestr("vtest-0.1.0.dist-info/entry_points.txt", entry_points)
    return wheel


# -- the source ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "is_path"),
    [
        ("./agent", True),
        ("agents/listener", True),
        ("~/x", True),
        ("x.whl", True),
        ("volttron-listener-agent", False),
        ("volttron-listener-agent==0.1", False),
        ("git+https://example.com/x", False),
    ],
)
def test_paths_and_package_names_are_told_apart(source: str, is_path: bool) -> None:
    assert looks_like_path(source) is is_path


def test_a_wheel_with_an_entry_point_is_ready_to_send(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    assert prepare_source(str(wheel), tmp_path / "build").wheel == wheel


def test_a_package_name_goes_to_the_platform_as_is(tmp_path: Path) -> None:
    prepared = prepare_source("volttron-listener-agent", tmp_path)
    assert prepared.package == "volttron-listener-agent" and prepared.wheel is None


def test_a_bare_name_is_a_package_even_beside_a_folder_of_that_name(tmp_path: Path, monkeypatch) -> None:
    # issue 12 item 5: in the repository root `vctl install volttron-listener-agent` means the index's
    (tmp_path / "volttron-listener-agent").mkdir()
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    prepared = prepare_source("volttron-listener-agent", tmp_path / "build", said.append)
    assert prepared.package == "volttron-listener-agent" and prepared.wheel is None
    assert said == ["installing the package volttron-listener-agent; "
                    "for the folder, give ./volttron-listener-agent"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing" / "agent", "no such file or directory"),
        (lambda d: (d / "notes.txt", (d / "notes.txt").write_text("x"))[0], "not a wheel"),
        (
            lambda d: (d / "x-1-py3-none-any.whl", (d / "x-1-py3-none-any.whl").write_text("x"))[0],
            "corrupt wheel",
        ),
        (lambda d: make_wheel(d, entry_points=None), "no agent entry point"),
        (lambda d: (d / "empty", (d / "empty").mkdir())[0], "nothing to build"),
    ],
    ids=["missing", "not-a-wheel", "corrupt", "no-entry-point", "empty-directory"],
)
def test_bad_sources_fail_with_one_line(tmp_path: Path, make, message: str) -> None:
    source = make(tmp_path)
    with pytest.raises(CommandError, match=message) as exc:
        prepare_source(str(source), tmp_path / "build")
    assert exc.value.exit_code == EXIT_ERROR and "\n" not in exc.value.format_message()


def test_a_failed_build_is_one_line_with_the_builds_last_error(tmp_path: Path, monkeypatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Path:
        raise BuildError(
            "the build of /src failed (`python -m build` exited with 1); last lines:",
            "Traceback ...\nSystemExit: this build is broken on purpose\nERROR Backend failed",
        )

    monkeypatch.setattr("volttron.client.packaging.build_wheel", fail)
    (tmp_path / "src").mkdir()
    said: list[str] = []
    with pytest.raises(CommandError) as exc:
        prepare_source(str(tmp_path / "src"), tmp_path / "build", said.append)
    assert exc.value.format_message() == (
        "the build of /src failed (`python -m build` exited with 1): ERROR Backend failed"
    )
    assert any("broken on purpose" in s for s in said)  # the tail is shown above the error


def test_agent_config_must_parse(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("a: 1\n# comment\n")
    assert read_agent_config(str(good)) == "a: 1\n# comment\n"
    bad = tmp_path / "bad.json"
    bad.write_text("{not: [valid")
    with pytest.raises(CommandError, match="--agent-config"):
        read_agent_config(str(bad))
    with pytest.raises(CommandError, match="cannot read it"):
        read_agent_config(str(tmp_path / "missing.yml"))


# -- the sender's loop ---------------------------------------------------------------------------


class ScriptedChannel:
    """Delivers ``frames`` one per recv; records what is sent; then times out."""

    def __init__(self, frames: list[bytes], result: FakeResult) -> None:
        self.frames = list(frames)
        self.sent: list[bytes] = []
        self.result = result

    def recv(self, timeout: float | None = None) -> bytes:
        if self.frames:
            return self.frames.pop(0)
        self.result.done_after_idle()
        raise ResultTimeout(timeout, "nothing")

    def send(self, data: bytes, timeout: float | None = None) -> None:
        self.sent.append(data)


class FakeResult:
    def __init__(self, finish_when_idle: bool = True) -> None:
        self.done = False
        self.finish_when_idle = finish_when_idle

    def done_after_idle(self) -> None:
        self.done = self.finish_when_idle

    def ready(self) -> bool:
        return self.done


def req(*value: Any) -> bytes:
    return json.dumps(list(value)).encode()


def test_serve_install_sends_the_file_and_reports_progress(tmp_path: Path) -> None:
    wheel = tmp_path / "a.whl"
    wheel.write_bytes(b"0123456789")
    result = FakeResult()
    channel = ScriptedChannel(
        [
            req("fetch", 6),
            req("checksum"),
            req("fetch", 6),
            req("checksum"),
            req("fetch", 6),
            req("alive"),
            req("progress", "install", "installing a 0.1"),
        ],
        result,
    )
    steps: list[tuple[str, str]] = []
    sent: list[tuple[int, int]] = []
    serve_install(
        channel,
        result,
        wheel,
        idle_timeout=5,
        progress=lambda *s: steps.append(s),
        sent=lambda *s: sent.append(s),
    )
    assert channel.sent == [
        b"012345",
        hashlib.sha512(b"012345").digest(),
        b"6789",
        hashlib.sha512(b"0123456789").digest(),
        COMPLETE,
    ]
    assert steps == [("install", "installing a 0.1")]
    assert sent[-1] == (10, 10)


def test_progress_queued_before_the_answer_is_still_reported() -> None:
    result = FakeResult()
    result.done = True  # the answer is noticed first
    steps: list[tuple[str, str]] = []
    channel = ScriptedChannel(
        [req("progress", "activate", "a"), req("progress", "done", "installed")], result
    )
    serve_install(channel, result, None, idle_timeout=5, progress=lambda *s: steps.append(s))
    assert steps == [("activate", "a"), ("done", "installed")]


def test_serve_install_gives_up_when_the_platform_is_silent(tmp_path: Path) -> None:
    result = FakeResult(finish_when_idle=False)
    started = time.monotonic()
    with pytest.raises(UploadTimeout, match="sent nothing for 0.3 s"):
        serve_install(ScriptedChannel([], result), result, None, idle_timeout=0.3)
    assert time.monotonic() - started < 5


def test_serve_install_refuses_a_request_for_a_file_it_does_not_send() -> None:
    result = FakeResult()
    with pytest.raises(UploadError, match="not being sent"):
        serve_install(ScriptedChannel([req("fetch", 10)], result), result, None, idle_timeout=5)
    with pytest.raises(UploadError, match="unreadable"):
        serve_install(ScriptedChannel([b"\xff garbage"], result), result, None, idle_timeout=5)


# -- the command, where no platform runs ---------------------------------------------------------


def run_vctl(args: list[str], home: Path, capsys, monkeypatch) -> tuple[int, str, str, float]:
    monkeypatch.setenv("VOLTTRON_HOME", str(home))
    started = time.monotonic()
    with pytest.raises(SystemExit) as exc:
        run_cli(vctl, "vctl", args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err, time.monotonic() - started


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["list"],
        ["peerlist"],
        ["start", "x"],
        ["shutdown", "--platform"],
        ["install", "volttron-listener-agent"],
        ["rpc", "list"],
    ],
)
def test_commands_say_the_platform_is_not_running(tmp_path: Path, capsys, monkeypatch, command) -> None:
    code, out, err, took = run_vctl(["-t", "5", *command], tmp_path / "home", capsys, monkeypatch)
    assert code == EXIT_NOT_RUNNING, err
    assert err.startswith("vctl: error: VOLTTRON is not running in") and err.count("\n") == 1
    assert took < 5


def test_a_stale_pid_file_is_not_a_running_platform(tmp_path: Path, capsys, monkeypatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (home / "VOLTTRON_PID").write_text(f"{dead}\n")
    code, _, err, _ = run_vctl(["status"], home, capsys, monkeypatch)
    assert code == EXIT_NOT_RUNNING and "not running" in err


@pytest.mark.parametrize(
    ("source", "message"),
    [("missing-dir/", "missing-dir/: no such file or directory"), ("agent.whl", "no such file or directory")],
)
def test_install_of_a_missing_path_needs_no_platform(tmp_path, capsys, monkeypatch, source, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err, _ = run_vctl(["install", source], tmp_path / "home", capsys, monkeypatch)
    assert code == EXIT_ERROR and message in err and err.count("\n") == 1


def test_install_of_a_wheel_without_entry_point_needs_no_platform(tmp_path, capsys, monkeypatch) -> None:
    wheel = make_wheel(tmp_path, entry_points=None)
    code, _, err, _ = run_vctl(["install", str(wheel)], tmp_path / "home", capsys, monkeypatch)
    assert code == EXIT_ERROR and "no agent entry point" in err and err.count("\n") == 1


def test_bad_timeout_is_a_usage_error(tmp_path, capsys, monkeypatch) -> None:
    code, _, err, _ = run_vctl(["-t", "0", "status"], tmp_path, capsys, monkeypatch)
    assert code == EXIT_USAGE and "timeout" in err


def test_vctl_help_lists_the_agent_commands(tmp_path, capsys, monkeypatch) -> None:
    code, out, _, _ = run_vctl(["--help"], tmp_path, capsys, monkeypatch)
    assert code == 0
    for name in (
        "install",
        "remove",
        "start",
        "stop",
        "restart",
        "status",
        "list",
        "tag",
        "enable",
        "disable",
        "health",
        "clear",
        "peerlist",
        "shutdown",
        "rpc",
    ):
        assert f"  {name} " in out, name
