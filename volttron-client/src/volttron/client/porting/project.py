"""Port a whole agent folder: every module, plus a ``pyproject.toml`` suggested from ``setup.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from volttron.client.porting.imports import PortResult, Problem, port_source
from volttron.client.porting.mapping import DEFAULT_CLIENT_REQUIREMENT, PortingError
from volttron.client.porting.setup_py import read_setup, suggest_pyproject

_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "env", "build", "dist", "__pycache__", "node_modules", ".tox"}


@dataclass
class ProjectReport:
    """What :func:`port_project` did (or would do, with ``dry_run``)."""

    root: Path
    files: dict[Path, PortResult] = field(default_factory=dict)
    pyproject: str | None = None
    pyproject_written: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[tuple[Path, Problem]]:
        """Every unmapped name, by file."""
        return [(path, problem) for path, result in self.files.items() for problem in result.problems]


def _python_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*.py")
        if not (_SKIP_DIRS & set(p.relative_to(root).parts[:-1])) and not p.parent.name.endswith(".egg-info")
    )


def port_project(
    root: str | Path,
    dry_run: bool = False,
    write_pyproject: bool = True,
    client_requirement: str = DEFAULT_CLIENT_REQUIREMENT,
) -> ProjectReport:
    """Port every module under ``root`` and suggest a ``pyproject.toml`` from its ``setup.py``.

    Changed modules are rewritten and a missing ``pyproject.toml`` is written, unless ``dry_run``.
    ``setup.py`` is read, never changed: delete it once the new ``pyproject.toml`` is right
    (``vctl install`` builds with ``setup.py`` while it exists).
    """
    root = Path(root)
    if not root.is_dir():
        raise PortingError(f"{root} is not a folder")
    report = ProjectReport(root)
    for path in _python_files(root):
        if path == root / "setup.py":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PortingError(f"{path}: cannot read: {exc}") from exc
        result = port_source(text)
        if result.changes or result.problems:
            report.files[path] = result
        if result.changed and not dry_run:
            path.write_text(result.text, encoding="utf-8")
    if (root / "setup.py").exists():
        info = read_setup(root)
        readme = next((n for n in ("README.md", "README.rst", "README.txt") if (root / n).exists()), None)
        report.pyproject = suggest_pyproject(info, readme, client_requirement)
        if readme is None:
            report.notes.append(
                "no README: add a README.md and readme = \"README.md\" to [project]; the package index "
                "shows it, and `twine check --strict` fails without a description"
            )
        report.notes += info.notes
        if (root / "pyproject.toml").exists():
            report.notes.append("pyproject.toml exists: compare it with the suggestion")
        elif write_pyproject and not dry_run:
            (root / "pyproject.toml").write_text(report.pyproject)
            report.pyproject_written = True
        report.notes.append(
            "setup.py: delete it once pyproject.toml is right (vctl install prefers setup.py)"
        )
    if (root / "config").exists():
        report.notes.append("config: install it with `vctl install ... --agent-config config`")
    return report
