"""The platform's own Python environment, as pip sees it, and the rule that keeps it working.

Agents are installed with ``<python> -m pip`` into the environment the server runs in (DESIGN.md §5).
Installing must never change the platform's own packages, so every install is first resolved with
``pip install --dry-run --report`` under a constraints file that pins the installed version of each
*protected* distribution: the platform roots (:data:`PLATFORM_ROOTS`), every installed
``volttron-*`` distribution, and everything they depend on. A resolution that cannot keep those
pins fails, and the conflict pip names is reported. pip's own configuration (``pip.conf``,
``PIP_*`` variables) is respected; :class:`PipOptions` adds explicit index settings.

Editable installs (a developer's checkout) are never replaced or uninstalled.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from volttron.client.packaging import normalize_name
from volttron.server.aip.errors import AgentInstallError, DependencyConflictError

PLATFORM_ROOTS: tuple[str, ...] = (
    "volttron-server",
    "volttron-client",
    "volttron-utils",
    "gevent",
    "greenlet",
    "pyzmq",
    "pika",
    "pip",
)
"""Distributions the platform itself runs on; they and their dependencies are never changed."""

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_TAIL_LINES = 15


@dataclass(frozen=True)
class PipOptions:
    """Index settings added to pip's own configuration, and the time one pip run may take."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    timeout: float = 900.0

    def arguments(self) -> list[str]:
        """The pip command-line options for these settings."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args


@dataclass(frozen=True)
class InstalledDistribution:
    """One distribution in the environment."""

    name: str
    """Normalized (PEP 503) name."""
    display_name: str
    version: str
    requires: tuple[str, ...] = ()
    editable: bool = False
    location: str | None = None


@dataclass(frozen=True)
class PlannedChange:
    """One distribution pip would install or replace."""

    name: str
    version: str
    requested: bool
    installed_version: str | None
    url: str | None = None
    """Where pip would get it (``download_info.url`` of pip's report)."""


@dataclass(frozen=True)
class PipResult:
    """The exit code and combined output of one pip run."""

    argv: tuple[str, ...]
    returncode: int
    output: str

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines of output, without pip's noise about ignored index locations."""
        kept = [line for line in self.output.splitlines() if "is ignored: it is neither a file" not in line]
        return "\n".join(kept[-lines:])


@dataclass
class EnvironmentSnapshot:
    """The installed distributions at one moment, and which of them are protected."""

    installed: dict[str, InstalledDistribution]
    protected: dict[str, InstalledDistribution] = field(default_factory=dict)
    core: frozenset[str] = frozenset()
    """The closure of :data:`PLATFORM_ROOTS`: never installable as an agent, never uninstalled."""


def requirement_name(requirement: str) -> str | None:
    """The normalized distribution name at the start of a requirement string, or None."""
    match = _REQUIREMENT_NAME.match(requirement)
    return normalize_name(match.group(1)) if match else None


def _applies_without_extras(requirement: str) -> bool:
    _, _, marker = requirement.partition(";")
    return "extra" not in marker


def dependency_closure(roots: Iterable[str], installed: Mapping[str, InstalledDistribution]) -> set[str]:
    """``roots`` and every installed distribution they require, transitively (extras ignored).

    Environment markers other than ``extra`` are not evaluated: a requirement that may not apply
    here is still followed, which can only protect more, never less.
    """
    seen: set[str] = set()
    stack = [normalize_name(r) for r in roots]
    while stack:
        name = stack.pop()
        if name in seen or name not in installed:
            continue
        seen.add(name)
        for requirement in installed[name].requires:
            dep = requirement_name(requirement)
            if dep and _applies_without_extras(requirement) and dep not in seen:
                stack.append(dep)
    return seen


class PythonEnvironment:
    """pip operations on the environment of ``python`` (the server's own interpreter by default)."""

    def __init__(
        self,
        python: str | None = None,
        roots: Sequence[str] = PLATFORM_ROOTS,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.python = python or sys.executable
        self.roots = tuple(roots)
        self._env = dict(os.environ if env is None else env)
        self._env.update({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})

    # ----- reading

    def snapshot(self, timeout: float = 300.0) -> EnvironmentSnapshot:
        """What is installed now (``pip inspect``), with the protected set computed."""
        result = self.run_pip(["inspect"], timeout, quiet_stderr=True)
        if result.returncode != 0:
            raise AgentInstallError(f"cannot list the installed packages:\n{result.tail()}", "check")
        try:
            report = json.loads(result.output)
        except ValueError as exc:
            raise AgentInstallError(f"pip inspect gave unreadable output: {exc}", "check") from None
        installed: dict[str, InstalledDistribution] = {}
        for item in report.get("installed", []):
            metadata = item.get("metadata") or {}
            display = metadata.get("name")
            if not display:
                continue
            direct = item.get("direct_url") or {}
            installed[normalize_name(display)] = InstalledDistribution(
                name=normalize_name(display),
                display_name=display,
                version=str(metadata.get("version", "")),
                requires=tuple(metadata.get("requires_dist") or ()),
                editable=bool((direct.get("dir_info") or {}).get("editable")),
                location=item.get("metadata_location"),
            )
        core = dependency_closure(self.roots, installed)
        volttron = [n for n in installed if n.startswith("volttron-")]
        protected_names = dependency_closure([*self.roots, *volttron], installed)
        return EnvironmentSnapshot(
            installed=installed,
            protected={n: installed[n] for n in sorted(protected_names)},
            core=frozenset(core),
        )

    @staticmethod
    def constraints_text(snapshot: EnvironmentSnapshot, exclude: Iterable[str] = ()) -> str:
        """A pip constraints file pinning every protected distribution except ``exclude``."""
        skip = {normalize_name(n) for n in exclude}
        lines = [
            f"{d.display_name}=={d.version}"
            for n, d in snapshot.protected.items()
            if n not in skip and d.version
        ]
        return "\n".join(lines) + "\n"

    # ----- resolving and installing

    def plan(
        self,
        target: str,
        constraints: Path,
        options: PipOptions,
        pre: bool,
        snapshot: EnvironmentSnapshot,
        label: str | None = None,
        work_dir: Path | None = None,
    ) -> list[PlannedChange]:
        """What ``pip install target`` would change, under ``constraints``, without changing anything.

        Raises :class:`DependencyConflictError` when pip cannot keep the pins, naming the protected
        distributions in the conflict; :class:`AgentInstallError` for any other resolution failure.
        ``label`` names the target in messages (default: ``target`` itself). pip's report is written
        in a folder made in ``work_dir`` (default: the system's temporary folder).
        """
        with tempfile.TemporaryDirectory(prefix="volttron-pip-", dir=work_dir) as tmp:
            report_path = Path(tmp) / "report.json"
            args = ["install", "--dry-run", "--report", str(report_path), "-c", str(constraints)]
            args += (["--pre"] if pre else []) + options.arguments() + [target]
            result = self.run_pip(args, options.timeout)
            if result.returncode != 0:
                raise self._resolution_error(label or target, result, constraints)
            report = json.loads(report_path.read_text())
        changes = []
        for item in report.get("install", []):
            metadata = item.get("metadata") or {}
            name = normalize_name(metadata.get("name", ""))
            changes.append(
                PlannedChange(
                    name=name,
                    version=str(metadata.get("version", "")),
                    requested=bool(item.get("requested")),
                    installed_version=_version_of(snapshot, name),
                    url=(item.get("download_info") or {}).get("url"),
                )
            )
        return changes

    def install(
        self, target: str, constraints: Path, options: PipOptions, pre: bool, reinstall_target: bool = False
    ) -> None:
        """Install ``target`` and its dependencies under ``constraints``.

        With ``reinstall_target`` the target itself is then reinstalled (``--force-reinstall
        --no-deps``), so new code of an unchanged version replaces the old, and nothing else is touched.
        """
        base = ["install", "-c", str(constraints)] + (["--pre"] if pre else []) + options.arguments()
        result = self.run_pip([*base, target], options.timeout)
        if result.returncode == 0 and reinstall_target:
            result = self.run_pip([*base, "--force-reinstall", "--no-deps", target], options.timeout)
        if result.returncode != 0:
            raise AgentInstallError(f"pip could not install {target}:\n{result.tail()}", "install")

    def fetch_wheel(self, requirement: str, dest: Path, options: PipOptions, pre: bool) -> Path:
        """Get the wheel of ``requirement`` (a name, ``name==1.0`` ...) from the index, without dependencies.

        pip downloads the wheel, or builds one when the index only has a source archive.
        """
        args = ["wheel", "--no-deps", "--wheel-dir", str(dest)] + (["--pre"] if pre else [])
        result = self.run_pip(args + options.arguments() + [requirement], options.timeout)
        if result.returncode != 0:
            raise AgentInstallError(
                f"cannot get {requirement!r} from the package index:\n{result.tail()}", "resolve"
            )
        wheels = sorted(dest.glob("*.whl"))
        if len(wheels) != 1:
            raise AgentInstallError(f"pip gave {len(wheels)} wheels for {requirement!r}, not one", "resolve")
        return wheels[0]

    def fetch_planned(self, changes: Iterable[PlannedChange], dest: Path, options: PipOptions) -> list[Path]:
        """The wheels of planned changes, from where pip's plan said (built when only a source archive is
        there), so that the files they would write can be checked before anything is installed."""
        urls = [c.url for c in changes if c.url]
        if not urls:
            return []
        dest.mkdir(parents=True, exist_ok=True)
        result = self.run_pip(["wheel", "--no-deps", "--wheel-dir", str(dest), *urls], options.timeout)
        if result.returncode != 0:
            raise AgentInstallError(
                f"cannot get the planned packages to check them:\n{result.tail()}", "check"
            )
        return sorted(dest.glob("*.whl"))

    def uninstall(self, names: Iterable[str], timeout: float = 300.0) -> PipResult | None:
        """``pip uninstall -y`` the given distributions (None when there is nothing to do)."""
        names = list(names)
        if not names:
            return None
        return self.run_pip(["uninstall", "-y", *names], timeout)

    def run_pip(self, args: Sequence[str], timeout: float, quiet_stderr: bool = False) -> PipResult:
        """Run ``python -m pip args``; the output is returned, never printed."""
        argv = (self.python, "-m", "pip", *args)
        try:
            done = subprocess.run(
                argv,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if quiet_stderr else subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return PipResult(argv, -1, f"pip {args[0]} did not finish within {timeout:g} s")
        return PipResult(argv, done.returncode, done.stdout.decode("utf-8", "replace"))

    # ----- helpers

    def _resolution_error(self, target: str, result: PipResult, constraints: Path) -> AgentInstallError:
        pinned = {}
        for line in constraints.read_text().splitlines():
            name, _, version = line.partition("==")
            if name:
                pinned[normalize_name(name)] = version
        causes = _conflict_causes(result.output)
        involved = sorted({n for line in causes for n in _names_in(line) if n in pinned})
        if causes and involved:
            platform = ", ".join(f"{n} {pinned[n]}" for n in involved)
            reasons = "; ".join(line for line in causes if "(constraint)" not in line)
            return DependencyConflictError(
                f"refusing to install {target}: it would change the platform's own packages "
                f"({platform}). {reasons or 'See the conflict below.'}\n{result.tail()}",
                involved,
            )
        return AgentInstallError(f"pip cannot resolve {target}:\n{result.tail()}", "resolve")


def _version_of(snapshot: EnvironmentSnapshot, name: str) -> str | None:
    installed = snapshot.installed.get(name)
    return installed.version if installed else None


def _conflict_causes(output: str) -> list[str]:
    """The lines pip prints under "The conflict is caused by:"."""
    causes: list[str] = []
    collecting = False
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("The conflict is caused by"):
            collecting = True
            continue
        if collecting:
            if not line:
                if causes:
                    break
                continue
            causes.append(line)
    return causes


def _names_in(line: str) -> set[str]:
    """Every word of a conflict line that could be a distribution name, normalized."""
    return {normalize_name(word) for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)}
