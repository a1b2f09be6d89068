"""A project made by ``vctl create-agent`` as a developer uses it: its own tests pass, it builds with
``python -m build`` and ``poetry build``, copier makes the same project, and ``vctl install`` runs it
on a real platform. Also: the volttron-client wheel carries the template.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from trove_classifiers import classifiers as trove_classifiers

from volttron.client.testing.platform import wait_until

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
CLIENT = Path(__file__).resolve().parents[2]
COPIER_TEMPLATE = CLIENT.parent / "templates" / "copier-agent"
ANSWERS = {
    "project_name": "volttron-chiller-watch",
    "project_description": "Watches the chillers.",
    "author_fullname": "Jo Doe",
    "author_email": "jo@example.com",
}


def run(args: list[str | os.PathLike[str]], cwd: Path, timeout: float = 300, **env: str) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, (
        f"{args} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("created")
    run(
        [
            BIN / "vctl",
            "create-agent",
            ANSWERS["project_name"],
            "--description",
            ANSWERS["project_description"],
            "--author",
            ANSWERS["author_fullname"],
            "--author-email",
            ANSWERS["author_email"],
        ],
        cwd=folder,
    )
    return folder / ANSWERS["project_name"]


def test_generated_project_passes_its_own_tests(project: Path) -> None:
    out = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:xdist"], cwd=project)
    assert "10 passed" in out, out


def test_generated_project_builds_with_build_and_poetry(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "src-copy"
    shutil.copytree(project, source, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    run([sys.executable, "-m", "build", "--outdir", tmp_path / "build-dist", source], cwd=tmp_path)
    run([BIN / "poetry", "build", "--no-interaction"], cwd=source, POETRY_CONFIG_DIR=str(tmp_path / "poetry"))
    for dist in (tmp_path / "build-dist", source / "dist"):
        artifacts = sorted(p.name for p in dist.iterdir())
        assert artifacts == [
            "volttron_chiller_watch-0.1.0-py3-none-any.whl",
            "volttron_chiller_watch-0.1.0.tar.gz",
        ]
        run([BIN / "twine", "check", "--strict", *sorted(dist.iterdir())], cwd=tmp_path)
        with zipfile.ZipFile(dist / artifacts[0]) as wheel:
            names = wheel.namelist()
            metadata = wheel.read("volttron_chiller_watch-0.1.0.dist-info/METADATA").decode()
            entry_points = wheel.read("volttron_chiller_watch-0.1.0.dist-info/entry_points.txt").decode()
        assert "volttron_chiller_watch/agent.py" in names
        assert (
            "Requires-Dist: volttron-client (>=0.1,<0.2)" in metadata
            or "Requires-Dist: volttron-client<0.2,>=0.1" in metadata
        )
        prefix = "Classifier: "
        classifiers = {line[len(prefix):] for line in metadata.splitlines() if line.startswith(prefix)}
        assert classifiers and classifiers <= set(trove_classifiers), "PyPI refuses unregistered classifiers"
        assert "Keywords: volttron,agent" in metadata
        assert "volttron-chiller-watch=volttron_chiller_watch.agent:main" in entry_points.replace(" ", "")


def test_copier_makes_the_same_project(project: Path, tmp_path: Path) -> None:
    data = [arg for key, value in ANSWERS.items() for arg in ("--data", f"{key}={value}")]
    run([BIN / "copier", "copy", "--defaults", *data, COPIER_TEMPLATE, tmp_path / "copied"], cwd=tmp_path)
    copied = tmp_path / "copied"
    answers = (copied / ".copier-answers.yml").read_text()
    assert "project_name: volttron-chiller-watch" in answers
    (copied / ".copier-answers.yml").unlink()

    def tree(root: Path) -> list[str]:
        skip = {".pytest_cache", "__pycache__"}
        return sorted(
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not skip & set(p.parts)
        )

    assert tree(copied) == tree(project)
    _, mismatch, errors = filecmp.cmpfiles(project, copied, tree(project), shallow=False)
    assert not mismatch and not errors


def test_copier_refuses_a_bad_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            BIN / "copier",
            "copy",
            "--defaults",
            "--data",
            "project_name=9 lives",
            COPIER_TEMPLATE,
            tmp_path / "x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "starting with a letter" in result.stdout + result.stderr
    assert not (tmp_path / "x" / "pyproject.toml").exists()


def test_client_wheel_carries_the_template(tmp_path: Path) -> None:
    run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path, CLIENT], cwd=tmp_path)
    (wheel,) = tmp_path.glob("volttron_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    template = CLIENT / "src" / "volttron" / "client" / "templates" / "agent"
    expected = {
        "volttron/client/templates/agent/" + str(p.relative_to(template))
        for p in template.rglob("*")
        if p.is_file()
    }
    assert expected <= names, sorted(expected - names)


def test_vctl_install_runs_the_generated_agent(project: Path, volttron_platform) -> None:
    identity = "chiller.watch"
    installed = volttron_platform.vctl(
        "install",
        str(project),
        "--agent-config",
        str(project / "config"),
        "--vip-identity",
        identity,
        "--start",
    )
    try:
        observer = volttron_platform.build_agent("test.observer")

        def answers() -> bool:
            try:
                return observer.vip.rpc.call(identity, "rpc_method", 5, 3).get(timeout=2) == 4
            except Exception:
                return False

        wait_until(answers, 30, f"the installed agent to answer ({installed.stdout}{installed.stderr})")
        status = volttron_platform.vctl("status").stdout
        assert identity in status and "running" in status.lower()
    finally:
        volttron_platform.vctl("remove", identity, check=False)
