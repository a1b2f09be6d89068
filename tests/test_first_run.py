"""What a first run shows (issue 13 item 9): bootstrap's progress, and a readable platform log.

The bootstrap test makes its own environment (``VOLTTRON_VENV``) in a temporary folder with pip
cut off from every index, so it fails fast at the install step: what matters is that each step
said what it was doing before that, and that the failure is pip's, not silence.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from volttron.server.services.auth.policy import AuthPolicy
from volttron_listener_agent.settings import format_message

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration  # a venv with pip: about 40 s on a busy host
def test_bootstrap_says_what_it_does_before_pip_runs(tmp_path: Path) -> None:
    empty = tmp_path / "no-packages"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(VOLTTRON_VENV=str(tmp_path / "venv"), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONFIG_FILE=os.devnull)
    result = subprocess.run(["bash", ROOT / "scripts" / "bootstrap"], capture_output=True, text=True,
                            env=env, timeout=240, check=False)
    steps = [line for line in result.stderr.splitlines() if line.startswith("bootstrap: [")]
    assert [s.split("]")[0] for s in steps] == ["bootstrap: [1/3", "bootstrap: [2/3", "bootstrap: [3/3"], (
        result.stderr[-3000:])
    assert "creating the virtual environment" in steps[0]
    assert result.returncode != 0, "pip had no index: the install step must fail"
    assert "No matching distribution" in result.stderr or "Could not find" in result.stderr
    assert not (ROOT / "volttron-utils" / "build").exists()


def test_a_re_read_of_auth_json_is_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"allow": [], "deny": []}))
    policy = AuthPolicy(path)
    path.write_text(json.dumps({"allow": [{"credentials": "x" * 43, "user_id": "u"}], "deny": []}))
    os.utime(path, ns=(1, 1))  # a different signature even on a coarse clock
    with caplog.at_level(logging.DEBUG, logger="volttron.server.services.auth.policy"):
        policy.current()
    records = [r for r in caplog.records if "re-read" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG


def test_a_heartbeat_is_one_line_in_the_log() -> None:
    line = format_message("pubsub", "listener", "", "heartbeat/listener",
                          {"TimeStamp": "2026-01-01T00:00:00+00:00", "heartbeat_period": 5.0}, "GOOD")
    assert "\n" not in line and line.endswith("Message: 'GOOD'")


@pytest.mark.parametrize("command", ["vctl", "volttron"])
def test_version_option(command: str) -> None:
    # issue 13 item 8
    executable = Path(sys.executable).with_name(command)
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"{command} \d+\.\d+\.\d+\n", result.stdout), result.stdout


def test_shell_completion_as_documented() -> None:
    # issue 13 item 8: the line in vctl --help and the user guide gives bash a working completion
    vctl = Path(sys.executable).with_name("vctl")
    env = {**os.environ, "_VCTL_COMPLETE": "bash_source"}
    script = subprocess.run([vctl], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert script.returncode == 0 and "complete " in script.stdout, script.stderr
    env.update(_VCTL_COMPLETE="bash_complete", COMP_WORDS="vctl sub", COMP_CWORD="1")
    words = subprocess.run([vctl], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert "plain,subscribe" in words.stdout.splitlines(), words.stdout
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    assert 'eval "$(_VCTL_COMPLETE=bash_source vctl)"' in guide
