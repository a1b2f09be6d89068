"""README.md, run: ``scripts/quickstart --detach`` and then the README's ``bash`` block, from the
checkout as a user would, against a platform home in a temporary folder; the checkout stays clean.
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
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def bash_blocks() -> list[str]:
    return [body for kind, body in FENCE.findall(README.read_text()) if kind == "bash"]


def test_the_readme_shows_its_config_file_and_runs_in_a_scratch_folder() -> None:
    (block,) = bash_blocks()
    assert "mktemp -d" in block.splitlines()[0]
    assert "cat > cfg.json" in block and block.index("cat > cfg.json") < block.index("config store")


def _kill_leftover(home: Path) -> str:
    pid_file = home / "VOLTTRON_PID"
    leftover = pid_file.read_text().strip() if pid_file.exists() else ""
    if leftover:
        try:
            os.kill(int(leftover), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    return leftover


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_readme_commands_work(clean_checkout: None) -> None:
    with tempfile.TemporaryDirectory(prefix="rd-", dir="/tmp") as work:
        workdir = Path(work)
        home = workdir / "h"
        (workdir / "tmp").mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "VIRTUAL_ENV")}
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", HOME=str(workdir),
                   VOLTTRON_HOME=str(home), TMPDIR=str(workdir / "tmp"))
        script = "set -euxo pipefail\nscripts/quickstart --detach\n" + "\n".join(bash_blocks())
        process = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=480)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            leftover = _kill_leftover(home)
        log_path = home / "volttron.log"
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        assert process.returncode == 0, f"{output[-6000:]}\n--- platform log\n{log[-4000:]}"
        assert not leftover, "the platform did not remove its PID file"
        assert '"context": "configured live"' in output, output[-3000:]
        assert "configuration 'config' updated: message 'configured live', heartbeat every 10 s" in log
        assert list((workdir / "tmp").glob("volttron-demo-*/cfg.json")), "no cfg.json in the scratch folder"
        # issue 13 item 9: the -vv log quickstart follows is readable: each vctl's connect and drop
        # and each re-read of auth.json at DEBUG, a heartbeat on one line
        chatter = [line for line in log.splitlines()
                   if ("control.connection" in line and ("accepted" in line or "dropped peer" in line))
                   or "re-read" in line]
        assert chatter and all(" DEBUG: " in line for line in chatter), chatter
        heartbeats = [line for line in log.splitlines() if "Topic: heartbeat/listener" in line]
        one_line = all(line.rstrip().endswith("Message: 'GOOD'") for line in heartbeats)
        assert heartbeats and one_line, heartbeats[:3]
