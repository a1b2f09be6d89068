"""docs/developer-guide.md, run: its bash blocks in one shell, its python blocks as the new project's tests.

The shell runs in a temporary folder with this interpreter's scripts first on PATH,
``VOLTTRON_HOME`` naming a running platform (the ``volttron_platform`` fixture) and
``VOLTTRON_REPO`` this checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "developer-guide.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
CLEAN_VENV = "clean-venv"
"""The info-string tag of the block that ``tests/test_wheels.py`` runs in a clean venv instead."""


def blocks(kind: str) -> list[str]:
    return [body for info, tags, body in FENCE.findall(GUIDE.read_text())
            if info == kind and CLEAN_VENV not in tags.split()]


def test_the_guide_has_commands_and_examples() -> None:
    assert len(blocks("bash")) >= 4 and len(blocks("python")) >= 2
    assert not [info for info, _, _ in FENCE.findall(GUIDE.read_text()) if info in ("sh", "shell", "console")]


def test_every_command_and_example_of_the_developer_guide(tmp_path: Path, volttron_platform) -> None:
    examples = "\n\n".join(blocks("python"))
    script = "\n".join(
        [
            "set -euo pipefail",
            *blocks("bash")[:2],  # create the project (and the copier twin), go into it
            f"cat > tests/test_from_the_guide.py <<'GUIDE_EOF'\n{examples}\nGUIDE_EOF",
            *blocks("bash")[2:],
        ]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        VOLTTRON_HOME=str(volttron_platform.home),
        VOLTTRON_REPO=str(ROOT),
        POETRY_CONFIG_DIR=str(tmp_path / "poetry-config"),
        POETRY_CACHE_DIR=str(tmp_path / "poetry-cache"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    assert result.returncode == 0, output
    project = work / "volttron-demo-agent"
    assert (work / "volttron-other-agent" / "pyproject.toml").is_file()
    assert re.search(r"\b1\d passed\b", result.stdout), output  # the template's 10 tests and the guide's 5
    assert sorted(p.name for p in (project / "dist").iterdir()) == [
        "volttron_demo_agent-0.1.0-py3-none-any.whl",
        "volttron_demo_agent-0.1.0.tar.gz",
    ]
    assert "demo.agent" in result.stdout  # vctl status listed it
