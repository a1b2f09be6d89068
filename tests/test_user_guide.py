"""docs/user-guide.md, run: its ``bash`` blocks, in order, in one shell, against a fresh platform home.

The guide starts the platform itself (in the background) and ends with ``vctl shutdown --platform``;
the test checks the platform really stopped, whatever happened in between.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "user-guide.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def bash_blocks() -> list[str]:
    return [body for kind, body in FENCE.findall(GUIDE.read_text()) if kind == "bash"]


def test_the_guide_has_runnable_blocks() -> None:
    blocks = bash_blocks()
    assert len(blocks) >= 6
    assert "vctl shutdown --platform" in blocks[-1]


@pytest.mark.integration
def test_every_command_of_the_user_guide() -> None:
    # a short folder: the platform's ipc socket path must stay under the kernel's 107 bytes
    with tempfile.TemporaryDirectory(prefix="ug-", dir="/tmp") as work:
        workdir = Path(work)
        (workdir / "volttron-listener-agent").symlink_to(ROOT / "volttron-listener-agent")
        env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "VIRTUAL_ENV")}
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", HOME=str(workdir))
        script = "set -euxo pipefail\n" + "\n".join(bash_blocks())
        process = subprocess.Popen(["bash", "-c", script], cwd=workdir, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=420)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            pid_file = workdir / "vhome" / "VOLTTRON_PID"
            leftover = pid_file.read_text().strip() if pid_file.exists() else ""
            if leftover:
                try:
                    os.kill(int(leftover), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        log = (workdir / "vhome.log").read_text(errors="replace") if (workdir / "vhome.log").exists() else ""
        assert process.returncode == 0, f"{output[-6000:]}\n--- platform log\n{log[-4000:]}"
        assert not leftover, "the platform did not remove its PID file"
        assert "running [" in output and "GOOD" in output
        assert "configured live" in output  # vctl config get shows what was stored
        assert "heartbeat/listener" in log
