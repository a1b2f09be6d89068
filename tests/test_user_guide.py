"""docs/user-guide.md, run: its ``bash`` blocks, in order, in one shell, against a fresh platform home.

The guide starts the platform itself (in the background) and ends with ``vctl shutdown --platform``;
the test checks the platform really stopped, whatever happened in between. It runs from the
checkout as a user would; the guide moves to a scratch folder (``mktemp``, here under the test's own
``TMPDIR``) and must leave the checkout as it found it.
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

from volttron.client.commands.cli import EXIT_CODES

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "user-guide.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
TABLE_ROW = re.compile(r"^\s*\|\s*(\d+)\s*\|\s*(.*?)\s*\|\s*$", re.M)


def bash_blocks() -> list[str]:
    return [body for kind, body in FENCE.findall(GUIDE.read_text()) if kind == "bash"]


def test_the_guide_has_runnable_blocks() -> None:
    blocks = bash_blocks()
    assert len(blocks) >= 6
    assert "mktemp -d" in blocks[0], "the guide must move to a scratch folder before it writes anything"
    assert "vctl shutdown --platform" in blocks[-1]


def test_the_exit_code_table_is_the_one_vctl_follows() -> None:
    # issue 13 item 4: one table in the docs, in vctl --help (generated from EXIT_CODES) and in the code
    documented = [(int(code), meaning) for code, meaning in TABLE_ROW.findall(GUIDE.read_text())]
    assert documented == list(EXIT_CODES)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_every_command_of_the_user_guide(clean_checkout: None) -> None:
    # a short folder: the platform's ipc socket path must stay under the kernel's 107 bytes
    with tempfile.TemporaryDirectory(prefix="ug-", dir="/tmp") as work:
        workdir = Path(work)
        (workdir / "tmp").mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "VIRTUAL_ENV")}
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", HOME=str(workdir),
                   TMPDIR=str(workdir / "tmp"), VOLTTRON_REPO=str(ROOT))
        script = "set -euxo pipefail\n" + "\n".join(bash_blocks())
        process = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=420)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            leftovers = []
            for pid_file in (workdir / "tmp").glob("volttron-guide-*/vhome/VOLTTRON_PID"):
                leftover = pid_file.read_text().strip()
                leftovers.append(leftover)
                try:
                    os.kill(int(leftover), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        logs = list((workdir / "tmp").glob("volttron-guide-*/vhome.log"))
        log = logs[0].read_text(errors="replace") if logs else ""
        assert process.returncode == 0, f"{output[-6000:]}\n--- platform log\n{log[-4000:]}"
        assert not leftovers, "the platform did not remove its PID file"
        assert logs, "the guide did not work in its scratch folder"
        assert "running [" in output and "GOOD" in output
        assert "configured live" in output  # vctl config get shows what was stored
        assert "heartbeat/listener" in log
        # the stored configuration changed the running listener (issue 13 item 3)
        assert "configuration 'config' updated: message 'configured live', heartbeat every 10 s" in log
        (keys,) = (workdir / "tmp").glob("volttron-guide-*/remote-agent-keys.json")
        assert keys.stat().st_mode & 0o077 == 0, "the secret key file is readable by others"
