"""Agents in environments of their own: ``$VOLTTRON_HOME/environments/<distribution>`` (issue 12 item 2).

An agent installed *isolated* gets a virtual environment shared by the instances of its
distribution, made from the platform's interpreter but seeing none of the platform's packages: an
agent of the published VOLTTRON brings its own ``volttron-core`` there, whose files would clash
with ours in the platform's environment. The agent directory names its environment in the file
``ENVIRONMENT``; the launcher starts it with that environment's interpreter.

An agent of this project (one that requires ``volttron-client`` or ``volttron-utils``) gets the
platform's own copy: the same version from the index, or, for a development (editable) install, the
same checkout (its ``.dist-info`` and ``.pth`` copied); their dependencies are pinned at the
platform's versions. An agent that requires the published ``volttron-core`` also gets
``volttron-lib-zmq``, its message bus, which that platform's environment would have provided.

Environments are made and filled with ``uv`` when it is installed next to the platform (measured in
docs/performance.md), else with ``venv --without-pip`` and the platform's pip (``pip --python``).
pip's index settings (``pip config``, ``PIP_*``) are passed to uv explicitly, since uv does not read
pip's files, with pip's rule of the best version on any index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from volttron.client.packaging import normalize_name, select_agent_entry_point
from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.environment import (
    PipOptions,
    PythonEnvironment,
    dependency_closure,
    requirement_name,
)
from volttron.server.aip.errors import AgentInstallError, AgentProcessError

ENVIRONMENTS_DIR = "environments"
MARKER_FILE = "ENVIRONMENT"
OUR_CLIENT_PACKAGES: tuple[str, ...] = ("volttron-client", "volttron-utils")
"""The platform's packages an agent of this project may require; given to it from the platform."""
PUBLISHED_MESSAGE_BUS = "volttron-lib-zmq"
"""The message bus plugin a published VOLTTRON's client loads (``volttron.messagebus``), which its
platform's environment provides and its agents therefore do not require: their environment gets it."""


def find_uv() -> str | None:
    """The ``uv`` executable beside the platform's interpreter, of the ``uv`` package, or on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def environment_of(directory: AgentDirectory) -> str | None:
    """The name of the agent's own environment, or None when it runs in the platform's."""
    marker = directory.path / MARKER_FILE
    try:
        name = marker.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name or None


def mark_environment(directory: AgentDirectory, name: str | None) -> None:
    """Record (or, with None, forget) that ``directory``'s agent runs in the environment ``name``."""
    marker = directory.path / MARKER_FILE
    if name is None:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text(name + "\n", encoding="utf-8")


def _site_packages(root: Path) -> Path:
    found = sorted(root.glob("lib/python*/site-packages"))
    if not found:
        raise AgentProcessError(f"the agent's environment {root} is missing or broken; reinstall the agent")
    return found[0]


def environment_entry_point(root: Path, distribution: str) -> tuple[str, str, str]:
    """``(group, name, "module:function")`` of ``distribution``'s launcher in the environment at ``root``."""
    import importlib.metadata

    wanted = normalize_name(distribution)
    for dist in importlib.metadata.distributions(path=[str(_site_packages(root))]):
        if normalize_name(dist.metadata["Name"] or "") == wanted:
            return agent_launcher(dist, distribution)
    raise AgentProcessError(f"the agent's code ({distribution}) is not installed in {root}; reinstall it")


def agent_launcher(dist: Any, distribution: str) -> tuple[str, str, str]:
    """``(group, name, "module:function")`` of the launcher among ``dist``'s entry points (an
    ``importlib.metadata.Distribution``); :class:`AgentProcessError` when it declares none."""
    groups: dict[str, dict[str, str]] = {}
    for entry in dist.entry_points:
        groups.setdefault(entry.group, {}).setdefault(entry.name, entry.value)
    found = select_agent_entry_point(groups, distribution)
    if found is None:
        raise AgentProcessError(f"{distribution} declares no agent entry point (e.g. a console script)")
    return found


def wheel_requirements(wheel: Path) -> list[str]:
    """The normalized names of the ``Requires-Dist`` of ``wheel`` that apply without extras."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        member = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        text = archive.read(member).decode("utf-8", "replace")
    names = []
    for line in text.splitlines():
        if line.lower().startswith("requires-dist:"):
            requirement = line.split(":", 1)[1]
            if "extra" not in requirement.partition(";")[2] and (name := requirement_name(requirement)):
                names.append(name)
    return names


class AgentEnvironments:
    """The agents' own environments under ``$VOLTTRON_HOME/environments``."""

    def __init__(
        self,
        home: Path,
        platform: PythonEnvironment,
        options: PipOptions,
        env: Mapping[str, str] | None = None,
        uv: str | None = None,
    ) -> None:
        self.root = Path(home) / ENVIRONMENTS_DIR
        self.platform = platform
        self.options = options
        self._env = dict(os.environ if env is None else env)
        self._env.pop("VIRTUAL_ENV", None)
        self.uv = uv if uv is not None else find_uv()

    @staticmethod
    def name_for(distribution: str) -> str:
        """The environment of a distribution's instances: its normalized name."""
        return normalize_name(distribution)

    def path(self, name: str) -> Path:
        """The folder of the environment ``name``."""
        return self.root / name

    def python(self, name: str) -> Path:
        """The interpreter of the environment ``name``."""
        return self.path(name) / "bin" / "python"

    def exists(self, name: str) -> bool:
        """True when the environment ``name`` has an interpreter."""
        return self.python(name).exists()

    def create(self, name: str) -> None:
        """Make the environment ``name`` from the platform's interpreter (no packages of the platform's)."""
        self.root.mkdir(mode=0o755, exist_ok=True)
        target = self.path(name)
        base = getattr(sys, "_base_executable", sys.executable)
        if self.uv:
            argv = [self.uv, "venv", "--quiet", "--no-project", "--python", self.platform.python, str(target)]
            self._run(argv, "create")
        else:
            self._run([base, "-m", "venv", "--without-pip", str(target)], "create")

    def install(self, name: str, wheel: Path, pre: bool, reinstall: str | None = None) -> None:
        """Install ``wheel`` and its dependencies into the environment ``name``.

        ``reinstall`` names a distribution whose code is replaced even when its version is unchanged.
        The platform's own ``volttron-client``/``volttron-utils`` are added when the agent requires them,
        :data:`PUBLISHED_MESSAGE_BUS` when the environment holds ``volttron-core``.
        """
        direct = "volttron-core" in wheel_requirements(wheel)
        ours, pins = self._our_packages(name, wheel)
        targets = [str(wheel), *ours, *([PUBLISHED_MESSAGE_BUS] if direct else [])]
        constraints = self.path(name) / "platform-constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
        self._install_targets(name, wheel, targets, pre, reinstall, constraints)
        core = _installed_version(self.path(name), "volttron-core")
        if core and not direct and not _installed_version(self.path(name), PUBLISHED_MESSAGE_BUS):
            self._install_targets(name, wheel, [PUBLISHED_MESSAGE_BUS, f"volttron-core=={core}"], pre, None,
                                  constraints)
        _readable_by_all(self.path(name))

    def _install_targets(
        self, name: str, wheel: Path, targets: list[str], pre: bool, reinstall: str | None, constraints: Path
    ) -> None:
        python = str(self.python(name))
        if self.uv:
            argv = [self.uv, "pip", "install", "--quiet", "--python", python, *self._uv_index_arguments()]
            argv += ["--constraint", str(constraints)] + (["--prerelease", "allow"] if pre else [])
            self._run(argv + (["--reinstall-package", reinstall] if reinstall else []) + targets, "install")
            return
        argv = [self.platform.python, "-m", "pip", "--python", python, "install", "--quiet"]
        argv += ["-c", str(constraints), *self.options.arguments()] + (["--pre"] if pre else [])
        self._run(argv + targets, "install")
        if reinstall:  # new code of an unchanged version replaces the old
            self._run([*argv, "--force-reinstall", "--no-deps", str(wheel)], "install")

    def prune(self, used: set[str]) -> list[str]:
        """Remove the environments no agent uses (left by an install the platform did not survive)."""
        if not self.root.is_dir():
            return []
        gone = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name not in used)
        for name in gone:
            self.remove(name)
        return gone

    def remove(self, name: str) -> None:
        """Delete the environment ``name`` (nothing when it is not there)."""
        if name and "/" not in name and name not in (".", ".."):
            shutil.rmtree(self.path(name), ignore_errors=True)

    # ----- helpers

    def _our_packages(self, name: str, wheel: Path) -> tuple[list[str], list[str]]:
        """The requirements that give the environment the platform's own client packages, and the pins
        of their dependencies at the platform's versions.

        A development (editable) install is given as it is in the platform: its ``.dist-info`` and
        ``.pth`` are copied (no build: a few milliseconds against about 3 s for ``-e``); any other
        as ``name==version`` of the platform's.
        """
        wanted = set(wheel_requirements(wheel)) & set(OUR_CLIENT_PACKAGES)
        if not wanted:
            return [], []
        if "volttron-client" in wanted:
            wanted.add("volttron-utils")  # the client's own requirement: the platform's copy too
        installed = self.platform.snapshot().installed
        targets: list[str] = []
        for package in sorted(wanted):
            dist = installed.get(package)
            if dist is None:
                continue
            if not (dist.editable and self._copy_editable(name, dist.display_name)):
                targets.append(f"{dist.display_name}=={dist.version}")
        closure = dependency_closure(wanted, installed) - wanted
        pins = [f"{installed[n].display_name}=={installed[n].version}" for n in sorted(closure)]
        return targets, pins

    def _copy_editable(self, name: str, display_name: str) -> bool:
        """Copy the platform's editable install of ``display_name`` into the environment ``name``."""
        import importlib.metadata

        if os.path.realpath(self.platform.python) != os.path.realpath(sys.executable):
            return False
        try:
            dist = importlib.metadata.distribution(display_name)
        except importlib.metadata.PackageNotFoundError:
            return False
        site = _site_packages(self.path(name))
        for file in dist.files or ():
            if str(file).startswith(".."):  # console scripts: the platform's, not the agent's
                continue
            target = site / str(file)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(str(dist.locate_file(file)), target)
        return True

    def _uv_index_arguments(self) -> list[str]:
        settings = _pip_index_settings(self.platform, self._env)
        index = self.options.index_url or settings.get("index-url")
        extra = [*self.options.extra_index_urls, *settings.get("extra-index-url", "").split()]
        links = [*self.options.find_links, *settings.get("find-links", "").split()]
        # pip's rule: the best version on any index, not only on the first that has the name
        args = ["--index-strategy", "unsafe-best-match"] + (["--index-url", index] if index else [])
        for url in extra:
            if _usable(url):
                args += ["--extra-index-url", url]
        for link in links:
            if _usable(link):
                args += ["--find-links", link]
        return args

    def _run(self, argv: Sequence[str], step: str) -> None:
        try:
            done = subprocess.run(
                list(argv), env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=self.options.timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise AgentInstallError(f"{Path(argv[0]).name} did not finish within {self.options.timeout:g} s",
                                    step) from None
        if done.returncode != 0:
            tail = "\n".join(done.stdout.decode("utf-8", "replace").splitlines()[-15:])
            raise AgentInstallError(f"could not {step} the agent's environment:\n{tail}", step)


def _readable_by_all(root: Path) -> None:
    """Code, not secrets: readable (and where executable, runnable) by every user, writable by none
    but the platform's, so that agents of secure mode run from it whatever the platform's umask."""
    for folder, _dirs, files in os.walk(root):
        for entry in [folder, *(os.path.join(folder, f) for f in files)]:
            if os.path.islink(entry):
                continue
            mode = os.stat(entry).st_mode
            extra = 0o044 | (0o011 if (mode & 0o100 or entry == folder) else 0)
            if mode & extra != extra:
                os.chmod(entry, (mode | extra) & ~0o022)
    os.chmod(root.parent, (os.stat(root.parent).st_mode | 0o755) & ~0o022)


def _installed_version(root: Path, distribution: str) -> str | None:
    """The version of ``distribution`` in the environment at ``root``, or None."""
    import importlib.metadata

    wanted = normalize_name(distribution)
    for dist in importlib.metadata.distributions(path=[str(_site_packages(root))]):
        if normalize_name(dist.metadata["Name"] or "") == wanted:
            return dist.version
    return None


def _usable(location: str) -> bool:
    """An index or link location uv can use: a URL, or a local folder that exists."""
    if location.startswith("file://"):
        return Path(location[len("file://"):]).exists()
    if "://" in location:
        return True
    return Path(location).exists()


def _pip_index_settings(platform: PythonEnvironment, env: Mapping[str, str]) -> dict[str, str]:
    """``index-url``, ``extra-index-url`` and ``find-links`` from pip's configuration and ``PIP_*``."""
    result = platform.run_pip(["config", "list"], 60.0, quiet_stderr=True)
    settings: dict[str, str] = {}
    for line in result.output.splitlines():
        key, _, value = line.partition("=")
        option = key.rpartition(".")[2]
        if option in ("index-url", "extra-index-url", "find-links"):
            settings[option] = value.strip().strip("'\"")
    for option in ("index-url", "extra-index-url", "find-links"):
        variable = "PIP_" + option.upper().replace("-", "_")
        if env.get(variable):
            settings[option] = env[variable]
    return settings
