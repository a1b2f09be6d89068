"""Choosing an agent's build, and reading wheels, without running any build tool."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from volttron.client import packaging
from volttron.client.packaging import (
    BuildError,
    SourceError,
    WheelError,
    build_wheel,
    inspect_wheel,
    parse_entry_points,
    plan_build,
    select_agent_entry_point,
)
from volttron.utils.errors import VolttronError

METADATA = "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extra}\n"


def make_wheel(
    folder: Path,
    name: str = "demo-agent",
    version: str = "1.2.3",
    entry_points: str | None = None,
    requires: tuple[str, ...] = (),
) -> Path:
    """A minimal wheel file written with zipfile."""
    stem = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{stem}-py3-none-any.whl"
    extra = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as archive:
        metadata = METADATA.format(name=name, version=version, extra=extra)
        archive.writestr(f"{stem}.dist-info/METADATA", metadata)
        archive.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        if entry_points is not None:
            archive.writestr(f"{stem}.dist-info/entry_points.txt", entry_points)
        archive.writestr("demo/__init__.py", "")
    return path


def touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("")
    return folder


class TestPlanBuild:
    def test_missing_path(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError, match="no such file or directory"):
            plan_build(tmp_path / "nope")

    def test_file_is_not_a_directory(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError, match="not a directory"):
            plan_build(touch(tmp_path, "setup.py") / "setup.py")

    def test_no_build_files(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError, match="nothing to build"):
            plan_build(touch(tmp_path / "src", "README.md"))

    def test_errors_share_the_root(self) -> None:
        assert issubclass(SourceError, VolttronError)
        assert issubclass(BuildError, VolttronError)
        assert issubclass(WheelError, VolttronError)

    def test_setup_py_and_pipfile_use_pipenv(self, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(packaging.shutil, "which", lambda tool: f"/usr/bin/{tool}")
        plan = plan_build(touch(tmp_path, "setup.py", "Pipfile"))
        assert plan.kind == "pipenv-setup.py"
        assert plan.argv == ("/usr/bin/pipenv", "run", "python3", "setup.py", "bdist_wheel")
        assert plan.note == ""

    def test_pipfile_without_pipenv_falls_back_and_says_so(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(packaging.shutil, "which", lambda tool: None)
        plan = plan_build(touch(tmp_path, "setup.py", "Pipfile"))
        assert plan.kind in ("pep517-build", "pip-wheel")
        assert "pipenv is not installed" in plan.note

    def test_setup_py_alone(self, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(packaging, "_importable", lambda module, python: True)
        plan = plan_build(touch(tmp_path, "setup.py", "pyproject.toml"))
        assert plan.kind == "setup.py"
        assert plan.argv == (sys.executable, "setup.py", "bdist_wheel")
        assert plan.cwd == tmp_path.resolve()

    def test_setup_py_without_wheel_package_falls_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(packaging, "_importable", lambda module, python: module != "wheel")
        plan = plan_build(touch(tmp_path, "setup.py"))
        assert plan.kind == "pep517-build"
        assert "PEP 517" in plan.note

    def test_poetry_lock_uses_poetry(self, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(packaging.shutil, "which", lambda tool: "/opt/poetry" if tool == "poetry" else "")
        plan = plan_build(touch(tmp_path, "poetry.lock", "pyproject.toml"))
        assert plan.kind == "poetry"
        assert plan.argv[:2] == ("/opt/poetry", "build")
        assert plan.collects_from == tmp_path.resolve() / "dist"

    def test_poetry_missing_falls_back_to_pep517(self, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(packaging.shutil, "which", lambda tool: None)
        plan = plan_build(touch(tmp_path, "poetry.lock", "pyproject.toml"))
        assert plan.kind in ("pep517-build", "pip-wheel")
        assert "poetry is not installed" in plan.note

    def test_poetry_lock_without_pyproject_and_no_poetry(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(packaging.shutil, "which", lambda tool: None)
        with pytest.raises(SourceError, match="no pyproject.toml"):
            plan_build(touch(tmp_path, "poetry.lock"))

    def test_pyproject_uses_build_when_importable(self, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(packaging, "_importable", lambda module, python: True)
        plan = plan_build(touch(tmp_path, "pyproject.toml"))
        assert plan.kind == "pep517-build"
        assert plan.argv[1:4] == ("-m", "build", "--wheel")

    def test_pyproject_uses_pip_wheel_without_build(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(packaging, "_importable", lambda module, python: False)
        plan = plan_build(touch(tmp_path, "pyproject.toml"))
        assert plan.kind == "pip-wheel"
        assert plan.argv[1:5] == ("-m", "pip", "wheel", "--no-deps")

    def test_build_wheel_checks_the_source_first(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError):
            build_wheel(tmp_path / "missing", tmp_path / "out")
        assert not (tmp_path / "out").exists()


class TestInspectWheel:
    def test_reads_name_version_entry_points_requires(self, tmp_path: Path) -> None:
        wheel = make_wheel(
            tmp_path,
            entry_points="[console_scripts]\ndemo-agent = demo.agent:main\n",
            requires=("gevent>=23", "pyyaml"),
        )
        info = inspect_wheel(wheel)
        assert (info.name, info.version) == ("demo-agent", "1.2.3")
        assert info.entry_points == {"console_scripts": {"demo-agent": "demo.agent:main"}}
        assert info.requires == ("gevent>=23", "pyyaml")
        assert info.agent_entry_point == ("console_scripts", "demo-agent", "demo.agent:main")
        assert info.path == wheel

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(WheelError, match="no such wheel file"):
            inspect_wheel(tmp_path / "x-1.0-py3-none-any.whl")

    def test_not_a_wheel_by_name(self, tmp_path: Path) -> None:
        path = tmp_path / "agent.tar.gz"
        path.write_bytes(b"\x1f\x8b")
        with pytest.raises(WheelError, match="not a wheel"):
            inspect_wheel(path)

    def test_corrupt_zip(self, tmp_path: Path) -> None:
        path = tmp_path / "broken-1.0-py3-none-any.whl"
        path.write_bytes(b"this is not a zip archive")
        with pytest.raises(WheelError, match="corrupt wheel"):
            inspect_wheel(path)

    def test_zip_without_metadata(self, tmp_path: Path) -> None:
        path = tmp_path / "empty-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("empty/__init__.py", "")
        with pytest.raises(WheelError, match="METADATA"):
            inspect_wheel(path)

    def test_no_entry_point(self, tmp_path: Path) -> None:
        wheel = make_wheel(tmp_path)
        with pytest.raises(WheelError, match="no agent entry point"):
            inspect_wheel(wheel)
        assert inspect_wheel(wheel, require_entry_point=False).agent_entry_point is None

    def test_entry_points_of_other_groups_are_not_launchers(self, tmp_path: Path) -> None:
        wheel = make_wheel(tmp_path, entry_points="[pytest11]\nplugin = demo.plugin\n")
        with pytest.raises(WheelError, match="no agent entry point"):
            inspect_wheel(wheel)


class TestEntryPointSelection:
    def test_console_script_named_like_the_distribution_is_preferred(self) -> None:
        eps = {"console_scripts": {"helper": "demo.tools:main", "demo-agent": "demo.agent:main"}}
        expected = ("console_scripts", "demo-agent", "demo.agent:main")
        assert select_agent_entry_point(eps, "demo_agent") == expected

    def test_first_console_script_otherwise(self) -> None:
        eps = {"console_scripts": {"one": "demo.one:main", "two": "demo.two:main"}}
        assert select_agent_entry_point(eps, "other")[1] == "one"

    def test_order_of_groups(self) -> None:
        eps = {
            "volttron.agent": {"launch": "demo.v:main"},
            "setuptools.installation": {"eggsecutable": "demo.e:m"},
        }
        assert select_agent_entry_point(eps) == ("setuptools.installation", "eggsecutable", "demo.e:m")
        assert select_agent_entry_point({"volttron.agent": {"launch": "demo.v:main"}}) == (
            "volttron.agent",
            "launch",
            "demo.v:main",
        )

    def test_named_groups_need_their_name(self) -> None:
        assert select_agent_entry_point({"volttron.agent": {"other": "x:y"}}) is None

    def test_parse_entry_points_keeps_case(self) -> None:
        assert parse_entry_points("[console_scripts]\nMyAgent = pkg.Mod:Main\n") == {
            "console_scripts": {"MyAgent": "pkg.Mod:Main"}
        }

    def test_parse_entry_points_rejects_garbage(self) -> None:
        with pytest.raises(WheelError, match="entry_points.txt"):
            parse_entry_points("no section header here = x\n")
