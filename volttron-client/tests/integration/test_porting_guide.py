"""docs/porting-guide.md, run: its file blocks written, then its bash blocks in one shell, in order.

Also: the guide's mapping tables list exactly the rows of the porting tables in the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from volttron.client.porting import MODULE_MAP, NAME_MAP

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "porting-guide.md"
FENCE = re.compile(r'^```(\w+)(?:[ \t]+title="([^"]+)")?[^\n]*\n(.*?)^```', re.S | re.M)


def fences() -> list[tuple[str, str, str]]:
    return FENCE.findall(GUIDE.read_text())


def test_the_mapping_tables_match_the_code() -> None:
    rows = set(re.findall(r"^\| `([\w.]+)` \| `([\w.]+)` \|$", GUIDE.read_text(), re.M))
    expected = set(MODULE_MAP) | {(f"{m}.{n}", f"{nm}.{nn}") for (m, n), (nm, nn) in NAME_MAP.items()}
    assert rows == expected


@pytest.mark.integration
def test_every_command_of_the_porting_guide(tmp_path: Path, volttron_platform) -> None:
    files = [(title, body) for _, title, body in fences() if title]
    commands = [body for kind, title, body in fences() if kind == "bash" and not title]
    assert len(files) >= 5 and len(commands) >= 5
    for title, body in files:
        path = tmp_path / title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        VOLTTRON_HOME=str(volttron_platform.home),
        PYTHONDONTWRITEBYTECODE="1",
    )
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + "\n".join(commands)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    assert result.returncode == 0, output
    agent = (tmp_path / "CounterAgent" / "counter" / "agent.py").read_text()
    assert "volttron.platform" not in agent and "vip_main(counter_agent, version=__version__)" in agent
    pyproject = (tmp_path / "CounterAgent" / "pyproject.toml").read_text()
    assert 'volttron-counter = "counter.agent:main"' in pyproject
    assert "1 passed" in result.stdout and "counter" in result.stdout
    assert (tmp_path / "CounterAgent" / "dist" / "volttron_counter-1.2.0-py3-none-any.whl").is_file()
