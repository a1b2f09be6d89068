"""Turn an agent's source directory into a wheel, and read what a wheel declares.

This runs where the source is (usually beside ``vctl``), so that an agent can be installed into a
remote platform: the wheel is what travels. Standard library only.

The build is chosen by what the directory holds, in this order (the modular framework paper, §7):

1. ``setup.py`` and ``Pipfile``  -> ``pipenv run python3 setup.py bdist_wheel``
2. ``setup.py``                  -> ``python setup.py bdist_wheel`` (with the running interpreter)
3. ``poetry.lock``               -> ``poetry build --format wheel``
4. ``pyproject.toml``            -> a PEP 517 build: ``python -m build --wheel`` when the ``build``
   package is importable, else ``python -m pip wheel --no-deps``

When the tool a rule names is missing, :func:`plan_build` falls back to a PEP 517 build and says so
in :attr:`BuildPlan.note`.

::

    PackagingError              (VolttronError)
     +-- SourceError            missing path, not a directory, nothing to build
     +-- BuildError             the build command failed or timed out (``output_tail`` holds its last lines)
     +-- WheelError             not a wheel, corrupt archive, missing metadata, no entry point
"""

from __future__ import annotations

import configparser
import email.parser
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from volttron.utils.errors import VolttronError

AGENT_ENTRY_POINT_GROUPS: tuple[tuple[str, str | None], ...] = (
    ("console_scripts", None),
    ("setuptools.installation", "eggsecutable"),
    ("volttron.agent", "launch"),
)
"""Where an agent's launcher is looked for, in order: (group, required name or any)."""

DEFAULT_BUILD_TIMEOUT = 600.0
_TAIL_LINES = 25
_FALLBACK = "building {} with a PEP 517 build instead"


class PackagingError(VolttronError):
    """An agent source or wheel that cannot be packaged or read."""


class SourceError(PackagingError, ValueError):
    """The source path is missing, not a directory, or holds nothing we know how to build."""


class BuildError(PackagingError):
    """The build command failed or timed out; ``output_tail`` holds the last lines it printed."""

    def __init__(self, message: str, output_tail: str = "", returncode: int | None = None) -> None:
        full = f"{message}\n{output_tail}" if output_tail else message
        super().__init__(full)
        self.output_tail = output_tail
        self.returncode = returncode


class WheelError(PackagingError, ValueError):
    """A file that is not a readable wheel, or a wheel that declares no agent entry point."""


@dataclass(frozen=True)
class BuildPlan:
    """How a source directory will be built: a command, where it runs, and why it was chosen."""

    kind: str
    """One of ``pipenv-setup.py``, ``setup.py``, ``poetry``, ``pep517-build``, ``pip-wheel``."""
    argv: tuple[str, ...]
    cwd: Path
    collects_from: Path | None = None
    """When set, the tool ignores our output folder and writes here (``poetry build`` -> ``dist/``)."""
    note: str = ""
    """Why a fallback was used, for the user; empty when the rule applied as written."""


@dataclass(frozen=True)
class WheelInfo:
    """What a wheel declares: its distribution name, version, entry points and requirements."""

    path: Path
    name: str
    version: str
    entry_points: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    requires: tuple[str, ...] = ()

    @property
    def agent_entry_point(self) -> tuple[str, str, str] | None:
        """``(group, name, "module:function")`` of the agent's launcher, or None."""
        return select_agent_entry_point(self.entry_points, self.name)


def select_agent_entry_point(
    entry_points: Mapping[str, Mapping[str, str]], distribution: str = ""
) -> tuple[str, str, str] | None:
    """The launcher among ``entry_points`` (group -> name -> value), docs/protocol.md §4.4.

    The first group of :data:`AGENT_ENTRY_POINT_GROUPS` that has a usable entry wins; among several
    console scripts the one named like the distribution is preferred, else the first.
    """
    for group, wanted in AGENT_ENTRY_POINT_GROUPS:
        entries = entry_points.get(group) or {}
        if not entries:
            continue
        if wanted is not None:
            if wanted in entries:
                return group, wanted, entries[wanted]
            continue
        preferred = normalize_name(distribution)
        for name, value in entries.items():
            if normalize_name(name) == preferred:
                return group, name, value
        name, value = next(iter(entries.items()))
        return group, name, value
    return None


def normalize_name(name: str) -> str:
    """A distribution name in its PEP 503 normal form (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def plan_build(source_dir: Path | str, python: str | None = None) -> BuildPlan:
    """Choose how to build ``source_dir`` without running anything.

    Raises :class:`SourceError` for a missing path, a file, or a directory with no build files.
    """
    source = _check_source(source_dir)
    python = python or sys.executable
    files = ("setup.py", "Pipfile", "poetry.lock", "pyproject.toml")
    has = {name: (source / name).is_file() for name in files}
    if has["setup.py"] and has["Pipfile"]:
        pipenv = shutil.which("pipenv")
        if pipenv:
            return BuildPlan("pipenv-setup.py", (pipenv, "run", "python3", "setup.py", "bdist_wheel"), source)
        return _pep517(source, python, "pipenv is not installed; " + _FALLBACK.format("setup.py"))
    if has["setup.py"]:
        if _importable("setuptools", python) and _importable("wheel", python):
            return BuildPlan("setup.py", (python, "setup.py", "bdist_wheel"), source)
        return _pep517(source, python, "setuptools/wheel are missing; " + _FALLBACK.format("setup.py"))
    if has["poetry.lock"]:
        poetry = shutil.which("poetry")
        if poetry:
            return BuildPlan(
                "poetry", (poetry, "build", "--format", "wheel"), source, collects_from=source / "dist"
            )
        if not has["pyproject.toml"]:
            raise SourceError(f"{source} has a poetry.lock, no pyproject.toml, and poetry is not installed")
        return _pep517(source, python, "poetry is not installed; " + _FALLBACK.format("pyproject.toml"))
    if has["pyproject.toml"]:
        return _pep517(source, python, "")
    raise SourceError(
        f"{source} holds no setup.py, poetry.lock or pyproject.toml: nothing to build an agent wheel from"
    )


def build_wheel(
    source_dir: Path | str,
    out_dir: Path | str,
    timeout: float = DEFAULT_BUILD_TIMEOUT,
    *,
    python: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the agent in ``source_dir`` and return the path of its one wheel, placed in ``out_dir``.

    The tool writes into a fresh temporary folder (``poetry build`` writes to ``dist/``, from which
    only the wheels it just produced are taken). Raises :class:`SourceError` for a bad source,
    :class:`BuildError` (with the last lines of the build's output) when the build fails, times out
    or produces no wheel or several.
    """
    plan = plan_build(source_dir, python)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if plan.note and progress:
        progress(plan.note)
    with tempfile.TemporaryDirectory(prefix="volttron-build-") as tmp:
        target = Path(tmp) / "wheels"
        target.mkdir()
        argv = list(plan.argv)
        if plan.kind in ("pipenv-setup.py", "setup.py"):
            argv += ["--dist-dir", str(target)]
        elif plan.kind in ("pep517-build", "pip-wheel"):
            argv[argv.index("{outdir}")] = str(target)
        started = time.time()
        if progress:
            progress(f"building {plan.cwd} with: {' '.join(argv)}")
        _run_build(argv, plan.cwd, timeout, Path(tmp) / "build.log")
        if plan.collects_from is not None:
            wheels = [p for p in plan.collects_from.glob("*.whl") if p.stat().st_mtime >= started - 1]
        else:
            wheels = sorted(target.glob("*.whl"))
        if len(wheels) != 1:
            found = ", ".join(p.name for p in wheels) or "none"
            raise BuildError(f"the build of {plan.cwd} ({plan.kind}) should produce one wheel; found {found}")
        final = out / wheels[0].name
        shutil.copy2(wheels[0], final)
    return final


MAX_COMPILED_BYTES = 64 * 1024 * 1024
"""Python source checked by :func:`check_wheel_compiles` at most (a bound on the time it takes)."""


def check_wheel_compiles(path: Path | str) -> int:
    """Compile every ``.py`` file of a wheel with this interpreter; returns how many were checked.

    Raises :class:`WheelError` naming the first file that does not compile as ``file:line`` with the
    error, so that an agent that could only crash is refused before it is installed.
    """
    wheel = Path(path)
    checked = total = 0
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                if not member.filename.endswith(".py") or member.is_dir():
                    continue
                total += member.file_size
                if total > MAX_COMPILED_BYTES:
                    break  # a wheel this large is checked only in part; pip compiles the rest anyway
                source = archive.read(member)
                try:
                    compile(source, member.filename, "exec", dont_inherit=True)
                except (SyntaxError, ValueError) as exc:
                    where = f"{member.filename}:{getattr(exc, 'lineno', None) or '?'}"
                    detail = getattr(exc, "msg", None) or str(exc)
                    raise WheelError(
                        f"{wheel.name}: {where}: {type(exc).__name__}: {detail} (the agent cannot run)"
                    ) from None
                checked += 1
    except zipfile.BadZipFile as exc:
        raise WheelError(f"{wheel}: corrupt wheel (not a readable zip archive: {exc})") from exc
    return checked


def inspect_wheel(path: Path | str, require_entry_point: bool = True) -> WheelInfo:
    """Read name, version, entry points and requirements from a wheel file with :mod:`zipfile`.

    Raises :class:`WheelError` when the path is missing, not a ``.whl``, not a valid zip, has no
    ``.dist-info/METADATA``, or (with ``require_entry_point``) declares no agent entry point.
    """
    wheel = Path(path)
    if not wheel.is_file():
        raise WheelError(f"{wheel}: no such wheel file")
    if wheel.suffix != ".whl":
        raise WheelError(f"{wheel}: not a wheel (the file name must end in .whl)")
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            metadata_name = _dist_info_member(names, "METADATA")
            if metadata_name is None:
                raise WheelError(f"{wheel}: not a wheel (no .dist-info/METADATA inside)")
            metadata = archive.read(metadata_name).decode("utf-8", "replace")
            entry_name = _dist_info_member(names, "entry_points.txt")
            entry_text = archive.read(entry_name).decode("utf-8", "replace") if entry_name else ""
    except zipfile.BadZipFile as exc:
        raise WheelError(f"{wheel}: corrupt wheel (not a readable zip archive: {exc})") from exc
    message = email.parser.Parser().parsestr(metadata, headersonly=True)
    name, version = message.get("Name"), message.get("Version")
    if not name or not version:
        raise WheelError(f"{wheel}: METADATA lacks a Name or Version")
    info = WheelInfo(
        path=wheel,
        name=name.strip(),
        version=version.strip(),
        entry_points=parse_entry_points(entry_text),
        requires=tuple(message.get_all("Requires-Dist") or ()),
    )
    if require_entry_point and info.agent_entry_point is None:
        groups = ", ".join(g if n is None else f"{g}/{n}" for g, n in AGENT_ENTRY_POINT_GROUPS)
        raise WheelError(f"{wheel}: no agent entry point; declare one of: {groups} (e.g. a console script)")
    return info


def parse_entry_points(text: str) -> dict[str, dict[str, str]]:
    """Parse an ``entry_points.txt`` (INI, case-sensitive names) into group -> name -> value."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise WheelError(f"unreadable entry_points.txt: {exc}") from exc
    return {group: {k.strip(): v.strip() for k, v in parser.items(group)} for group in parser.sections()}


def _dist_info_member(names: list[str], leaf: str) -> str | None:
    for name in names:
        parts = name.split("/")
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == leaf:
            return name
    return None


def _check_source(source_dir: Path | str) -> Path:
    source = Path(source_dir).expanduser()
    if not source.exists():
        raise SourceError(f"{source}: no such file or directory")
    if not source.is_dir():
        raise SourceError(f"{source}: not a directory (give an agent source directory or a .whl file)")
    return source.resolve()


def _pep517(source: Path, python: str, note: str) -> BuildPlan:
    if _importable("build", python):
        argv: tuple[str, ...] = (python, "-m", "build", "--wheel", "--outdir", "{outdir}", str(source))
        return BuildPlan("pep517-build", argv, source, note=note)
    argv = (python, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", "{outdir}", str(source))
    return BuildPlan("pip-wheel", argv, source, note=note)


def _importable(module: str, python: str) -> bool:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return importlib.util.find_spec(module) is not None
    probe = subprocess.run(
        [python, "-c", f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


def _run_build(argv: list[str], cwd: Path, timeout: float, log_path: Path) -> None:
    """Run the build with its output in ``log_path``; raise BuildError on failure or timeout.

    The build's own temporary files go beside ``log_path`` (its ``TMPDIR``), so they go with the
    caller's work folder. Interrupted (Ctrl-C), the build is stopped before the exception goes on:
    the build runs in its own session, so the terminal's SIGINT does not reach it, and left running
    it would re-create its output folder after the caller removed it.
    """
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.setdefault("PIP_NO_INPUT", "1")
    build_tmp = log_path.parent / "tmp"
    build_tmp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(build_tmp)
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise BuildError(f"cannot run {argv[0]}: {exc}") from exc
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise BuildError(f"the build of {cwd} timed out after {timeout:g} s", _tail(log_path)) from None
        except BaseException:  # KeyboardInterrupt, a greenlet killed: stop the build, then go on
            _interrupt_group(proc)
            raise
    if returncode != 0:
        raise BuildError(
            f"the build of {cwd} failed (`{' '.join(argv)}` exited with {returncode}); last lines:",
            _tail(log_path),
            returncode,
        )


def _interrupt_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGINT the build's process group (so it removes its own files), SIGKILL after ``grace`` s."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _tail(log_path: Path, lines: int = _TAIL_LINES) -> str:
    text = log_path.read_text("utf-8", "replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])
