"""Read a monolithic agent's ``setup.py`` without running it, and suggest a ``pyproject.toml``.

The ``setuptools.installation`` ``eggsecutable`` entry point of the monolithic agents becomes a
console script (``[project.scripts]``), the launcher the modular platform starts; the dependency on
``volttron`` becomes one on ``volttron-client``; the build backend is poetry-core.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from volttron.client.porting.mapping import DEFAULT_CLIENT_REQUIREMENT, PortingError, dotted


@dataclass
class SetupInfo:
    """What a monolithic agent's ``setup.py`` says, read without running it."""

    name: str
    version: str
    package: str | None
    entry_point: str | None
    description: str | None = None
    author: str | None = None
    author_email: str | None = None
    license: str | None = None
    requires: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _literal(node: ast.AST | None, constants: dict[str, object]) -> object:
    """A literal value, also through names bound to literals and string concatenation; else None."""
    if node is None:
        return None
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left, constants), _literal(node.right, constants)
        return left + right if isinstance(left, str) and isinstance(right, str) else None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None


def _constants(tree: ast.Module) -> dict[str, object]:
    """Module-level names bound once, to a literal, and never assigned again anywhere."""
    counts: dict[str, int] = defaultdict(int)
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    counts[sub.id] += 1
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            value = _literal(node.value, {})
            if counts[name] == 1 and value is not None:
                found[name] = value
    return found


def _agent_packages(root: Path) -> list[str]:
    """Top-level packages holding an ``agent.py`` that defines ``main``."""
    found = []
    for agent in sorted(root.glob("*/agent.py")):
        if (agent.parent / "__init__.py").exists() and re.search(r"^def main\(", agent.read_text(), re.M):
            found.append(agent.parent.name)
    return found


def _module_version(path: Path) -> str | None:
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            value = _literal(node.value, {})
            return value if isinstance(value, str) else None
    return None


def read_setup(root: Path) -> SetupInfo:
    """Read ``root/setup.py`` and ``requirements.txt`` statically; guesses are explained in ``notes``."""
    path = root / "setup.py"
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError) as exc:
        raise PortingError(f"{path}: cannot read: {exc}") from exc
    constants = _constants(tree)
    call = next(
        (
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and dotted(n.func) in ("setup", "setuptools.setup")
        ),
        None,
    )
    if call is None:
        raise PortingError(f"{path}: no setup(...) call found")
    kwargs = {k.arg: k.value for k in call.keywords if k.arg}
    notes: list[str] = []
    packages = _agent_packages(root)
    package = packages[0] if len(packages) == 1 else None
    entry_point = None
    entry_points = _literal(kwargs.get("entry_points"), constants)
    if isinstance(entry_points, dict):
        for group in ("setuptools.installation", "console_scripts", "volttron.agent"):
            for spec in entry_points.get(group) or []:
                if isinstance(spec, str) and "=" in spec:
                    entry_point = spec.split("=", 1)[1].strip()
                    notes.append(
                        f"setup.py: entry point {group} {spec.split('=')[0].strip()} = {entry_point} "
                        "becomes a console script ([project.scripts]); the platform starts console scripts"
                    )
                    break
            if entry_point:
                break
    if entry_point is None and package:
        entry_point = f"{package}.agent:main"
        notes.append(
            f"setup.py: the eggsecutable entry point is computed at run time; using {entry_point} "
            "as the console script"
        )
    if package is None and entry_point:
        package = entry_point.split(".")[0].split(":")[0]
    name = _literal(kwargs.get("name"), constants)
    if not isinstance(name, str):
        name = f"{package}agent" if package else re.sub(r"[^A-Za-z0-9]+", "-", root.resolve().name).lower()
        notes.append(
            f"setup.py: the name is computed at run time; using {name!r} (consider 'volttron-{name}')"
        )
    version = _literal(kwargs.get("version"), constants)
    if not isinstance(version, str):
        version = (_module_version(root / package / "agent.py") if package else None) or "0.1.0"
        notes.append(
            f"setup.py: the version is computed at run time; using {version!r} from the agent module"
        )
    listed: Any = _literal(kwargs.get("install_requires"), constants) or []
    requires = [r for r in listed if isinstance(r, str)]
    requirements = root / "requirements.txt"
    if requirements.exists():
        requires += [
            line.strip()
            for line in requirements.read_text().splitlines()
            if line.strip() and not line.strip().startswith(("#", "-"))
        ]
    dropped = [r for r in requires if re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() == "volttron"]
    if dropped:
        notes.append("setup.py: the dependency on 'volttron' is replaced by volttron-client")
    texts = {
        key: _literal(kwargs.get(key), constants)
        for key in ("description", "author", "author_email", "license")
    }
    return SetupInfo(
        name=name,
        version=version,
        package=package,
        entry_point=entry_point,
        requires=list(dict.fromkeys(r for r in requires if r not in dropped)),
        notes=notes,
        **{key: value if isinstance(value, str) else None for key, value in texts.items()},
    )


def suggest_pyproject(
    info: SetupInfo, readme: str | None = None, client_requirement: str = DEFAULT_CLIENT_REQUIREMENT
) -> str:
    """A ``pyproject.toml`` (poetry-core, console script) for the agent ``info`` describes."""
    q = json.dumps
    lines = [
        "[build-system]",
        'requires = ["poetry-core>=2.0"]',
        'build-backend = "poetry.core.masonry.api"',
        "",
        "[project]",
        f"name = {q(info.name)}",
        f"version = {q(info.version)}",
        f"description = {q(info.description or f'The {info.name} VOLTTRON agent.')}",
    ]
    if info.author:
        email = f", email = {q(info.author_email)}" if info.author_email else ""
        lines.append(f"authors = [{{ name = {q(info.author)}{email} }}]")
    if info.license and re.fullmatch(r"[A-Za-z0-9.+() -]+", info.license):
        lines.append(f"license = {q(info.license)}")
    if readme:
        lines.append(f"readme = {q(readme)}")
    lines += [
        'requires-python = ">=3.10"',
        'keywords = ["volttron", "agent"]',
        'classifiers = ["Programming Language :: Python :: 3"]',  # registered ones only: PyPI refuses others
        "dependencies = [",
        *(f"    {q(r)}," for r in [client_requirement, *info.requires]),
        "]",
    ]
    if info.entry_point:
        key = info.name if re.fullmatch(r"[A-Za-z0-9_-]+", info.name) else q(info.name)
        lines += ["", "[project.scripts]", f"{key} = {q(info.entry_point)}"]
    if info.package:
        lines += ["", "[tool.poetry]", f"packages = [{{ include = {q(info.package)} }}]"]
    return "\n".join(lines) + "\n"
