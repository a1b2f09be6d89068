"""docs/multi-platform.md, run: its ``bash`` blocks, in order, in one shell, with two fresh platforms.

The guide starts both platforms in the background, links them, calls across them and shuts both
down; the test gives them free ports and checks that both really stopped, whatever happened.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "multi-platform.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def bash_blocks() -> list[str]:
    return [body for kind, body in FENCE.findall(GUIDE.read_text()) if kind == "bash"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_guide_has_runnable_blocks() -> None:
    blocks = bash_blocks()
    assert len(blocks) >= 5
    assert "external_platform_discovery.json" in "".join(blocks)
    assert "vctl shutdown --platform" in blocks[-1]


def _kill_leftover(pid_file: Path) -> str:
    leftover = pid_file.read_text().strip() if pid_file.exists() else ""
    if leftover:
        try:
            os.kill(int(leftover), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    return leftover


@pytest.mark.integration
def test_every_command_of_the_multi_platform_guide() -> None:
    # a short folder: each platform's ipc socket path must stay under the kernel's 107 bytes
    with tempfile.TemporaryDirectory(prefix="mp-", dir="/tmp") as work:
        workdir = Path(work)
        env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "VIRTUAL_ENV")}
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", HOME=str(workdir),
                   A_PORT=str(free_port()), B_PORT=str(free_port()))
        script = "set -euxo pipefail\n" + "\n".join(bash_blocks())
        process = subprocess.Popen(["bash", "-c", script], cwd=workdir, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            leftovers = [_kill_leftover(workdir / home / "VOLTTRON_PID") for home in ("a", "b")]
        logs = "\n".join((workdir / f"{home}.log").read_text(errors="replace")[-3000:]
                         for home in ("a", "b") if (workdir / f"{home}.log").exists())
        assert process.returncode == 0, f"{output[-6000:]}\n--- platform logs\n{logs}"
        assert leftovers == ["", ""], "a platform did not remove its PID file"
        assert "linked to platform 'B'" in output and "linked to platform 'A'" in output
        (peers,) = [line for line in output.splitlines() if line.startswith("peers of B:")]
        assert "platform.control" in peers and "instance.B." in peers  # A's link, as B sees it
