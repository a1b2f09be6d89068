"""Real builds of tiny agent projects with build_wheel (runs the build tools; a few seconds each)."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from volttron.client.packaging import BuildError, build_wheel, inspect_wheel, plan_build
from volttron.client.testing.waiting import wait_until

pytestmark = pytest.mark.integration

FLIT_PROJECT = """
[build-system]
requires = ["flit_core>=3.4,<5"]
build-backend = "flit_core.buildapi"

[project]
name = "volttron-testpkg-flit"
version = "0.3.0"
description = "packaging test"

[project.scripts]
volttron-testpkg-flit = "vtestpkg_flit:main"

[tool.flit.module]
name = "vtestpkg_flit"
"""

POETRY_PROJECT = """
[build-system]
requires = ["poetry-core>=1.0"]
build-backend = "poetry.core.masonry.api"

[tool.poetry]
name = "volttron-testpkg-poetry"
version = "0.4.0"
description = "packaging test"
authors = ["Test <test@example.com>"]
packages = [{ include = "vtestpkg_poetry" }]

[tool.poetry.dependencies]
python = ">=3.10"

[tool.poetry.scripts]
volttron-testpkg-poetry = "vtestpkg_poetry:main"
"""

SETUP_PY = """
from setuptools import setup

setup(
    name="volttron-testpkg-setup",
    version="0.5.0",
    py_modules=["vtestpkg_setup"],
    entry_points={"setuptools.installation": ["eggsecutable = vtestpkg_setup:main"]},
)
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def test_pyproject_builds_one_wheel(tmp_path: Path) -> None:
    source = write(
        tmp_path / "flit",
        {"pyproject.toml": FLIT_PROJECT, "vtestpkg_flit.py": '"""x"""\ndef main():\n    return 0\n'},
    )
    messages: list[str] = []
    wheel = build_wheel(source, tmp_path / "out", timeout=300, progress=messages.append)
    assert wheel.parent == tmp_path / "out" and wheel.suffix == ".whl"
    info = inspect_wheel(wheel)
    assert (info.name, info.version) == ("volttron-testpkg-flit", "0.3.0")
    assert info.agent_entry_point == ("console_scripts", "volttron-testpkg-flit", "vtestpkg_flit:main")
    assert any("building" in m for m in messages)
    assert list((tmp_path / "out").iterdir()) == [wheel]


def test_setup_py_project_builds(tmp_path: Path) -> None:
    module = "def main():\n    return 0\n"
    source = write(tmp_path / "setup", {"setup.py": SETUP_PY, "vtestpkg_setup.py": module})
    wheel = build_wheel(source, tmp_path / "out", timeout=300)
    info = inspect_wheel(wheel)
    assert (info.name, info.version) == ("volttron-testpkg-setup", "0.5.0")
    assert info.agent_entry_point == ("setuptools.installation", "eggsecutable", "vtestpkg_setup:main")


@pytest.mark.skipif(shutil.which("poetry") is not None, reason="tests the fallback for a missing poetry")
def test_poetry_project_without_poetry_falls_back_to_pep517(tmp_path: Path) -> None:
    source = write(
        tmp_path / "poetry",
        {
            "pyproject.toml": POETRY_PROJECT,
            "poetry.lock": "# empty lock\n",
            "vtestpkg_poetry/__init__.py": "def main():\n    return 0\n",
        },
    )
    messages: list[str] = []
    wheel = build_wheel(source, tmp_path / "out", timeout=300, progress=messages.append)
    assert inspect_wheel(wheel).name == "volttron-testpkg-poetry"
    assert any("poetry is not installed" in m for m in messages)


def test_failing_build_reports_its_last_lines(tmp_path: Path) -> None:
    source = write(tmp_path / "broken", {"setup.py": 'raise SystemExit("this build fails on purpose")\n'})
    with pytest.raises(BuildError) as caught:
        build_wheel(source, tmp_path / "out", timeout=300)
    assert "failed" in str(caught.value)
    assert "this build fails on purpose" in caught.value.output_tail
    assert not list((tmp_path / "out").glob("*.whl"))


def test_build_timeout_kills_the_build(tmp_path: Path) -> None:
    pid_file = tmp_path / "build.pid"
    # a build that never finishes by itself (it waits on an event nobody sets)
    hang = (f"import os, threading\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "threading.Event().wait(120)\n")
    source = write(tmp_path / "hang", {"setup.py": hang})
    plan_build(source)  # a valid source
    started = time.monotonic()
    with pytest.raises(BuildError, match="timed out after 8 s"):
        build_wheel(source, tmp_path / "out", timeout=8)
    assert time.monotonic() - started < 60
    if pid_file.exists():  # the build reached setup.py before the deadline: it must be gone now
        pid = int(pid_file.read_text())
        wait_until(lambda: not _alive(pid), 10, f"the build process {pid} to be gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
