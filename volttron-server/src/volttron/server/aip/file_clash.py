"""Which files an install would write over: wheels against the files installed distributions own.

pip's resolver only sees distribution *names*: a wheel of another name may still ship a file that
an installed distribution owns (``volttron/client/__init__.py``, a ``bin/vctl`` console script) and
pip overwrites it silently. Before the platform's own environment is changed, every file the wheels
would write is computed from the wheels themselves (their members, ``.data/`` schemes and console
scripts) and looked up in the environment (issue 12 item 4):

* files listed in the ``RECORD`` of every installed distribution (``importlib.metadata``), and
* for a distribution installed in development (editable) mode through a ``.pth`` file, the files
  under the folder that file puts on ``sys.path``: a wheel writing ``volttron/client/__init__.py``
  into site-packages would shadow the checkout's ``volttron/client`` without overwriting it;
* an ``__init__.py`` in a namespace package that others share (``volttron/__init__.py``) would make
  it a regular package and hide their parts of it.

The lookup runs in the environment's own interpreter, so it is right for any target environment.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from volttron.client.packaging import normalize_name
from volttron.server.aip.errors import DependencyConflictError

_SCHEMES = ("purelib", "platlib", "scripts", "data")
_SHOWN = 5

# Runs in the target interpreter: the files each installed distribution owns, and the folders
# that the .pth files of editable installs put on sys.path.
_OWNERS_PROGRAM = r"""
import importlib.metadata as m, json, os, sys, sysconfig
owners, roots = {}, {}
for d in m.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    for f in d.files or ():
        p = os.path.realpath(str(d.locate_file(f)))
        owners.setdefault(p, name)
        if str(f).endswith(".pth"):  # setuptools names its own __editable__.<dist>.pth
            try:
                with open(p, encoding="utf-8") as handle:
                    lines = [x.strip() for x in handle if x.strip()]
            except OSError:
                continue
            for line in lines:
                if line.startswith(("#", "import ")):
                    continue
                folder = os.path.realpath(os.path.join(os.path.dirname(p), line))
                if os.path.isdir(folder):
                    roots.setdefault(folder, name)
print(json.dumps({"paths": sysconfig.get_paths(), "owners": owners, "roots": roots}))
"""


@dataclass(frozen=True)
class Clash:
    """One file that a wheel would write and another distribution owns."""

    path: str
    new_owner: str
    old_owner: str

    def __str__(self) -> str:
        return f"{self.path} (of {self.new_owner}) belongs to {self.old_owner}"


@dataclass(frozen=True)
class InstalledFiles:
    """Who owns which file in one environment."""

    paths: Mapping[str, str]
    """``sysconfig.get_paths()`` of the environment: scheme -> folder."""
    owners: Mapping[str, str]
    """Real absolute path -> the distribution (display name) whose RECORD lists it."""
    roots: Mapping[str, str]
    """A folder an editable install's ``.pth`` puts on ``sys.path`` -> that distribution."""

    @classmethod
    def of(cls, python: str, env: Mapping[str, str] | None = None, timeout: float = 120.0) -> InstalledFiles:
        """Read the environment of the interpreter ``python``."""
        try:
            done = subprocess.run(
                [python, "-I", "-c", _OWNERS_PROGRAM], env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DependencyConflictError(
                f"cannot list the files of the environment of {python}: {exc}", []
            ) from None
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise DependencyConflictError(f"cannot list the files of the environment of {python}: {tail}", [])
        data = json.loads(done.stdout)
        return cls(paths=data["paths"], owners=data["owners"], roots=data["roots"])


def wheel_files(wheel: Path) -> tuple[str, list[tuple[str, str]]]:
    """The distribution name of ``wheel`` and the ``(scheme, relative path)`` of each file it installs.

    Members go to ``purelib`` or ``platlib`` (the WHEEL file's ``Root-Is-Purelib``), ``<name>.data/
    <scheme>/...`` to that scheme, console and GUI scripts to ``scripts``. Headers are left out (pip
    puts them in a folder of the distribution's own name).
    """
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        dist_info = next(
            (n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith(".dist-info/WHEEL")), None
        )
        if dist_info is None:
            raise DependencyConflictError(f"{wheel.name}: not a wheel (no .dist-info/WHEEL)", [])
        wheel_text = archive.read(f"{dist_info}/WHEEL").decode("utf-8", "replace").lower()
        metadata = archive.read(f"{dist_info}/METADATA").decode("utf-8", "replace")
        entry_name = f"{dist_info}/entry_points.txt"
        entry_text = archive.read(entry_name).decode("utf-8", "replace") if entry_name in names else ""
    name = next((line.split(":", 1)[1].strip() for line in metadata.splitlines()
                 if line.lower().startswith("name:")), dist_info.rsplit("-", 1)[0])
    root = "purelib" if "root-is-purelib: true" in wheel_text else "platlib"
    data_dir = dist_info[: -len(".dist-info")] + ".data/"
    files: list[tuple[str, str]] = []
    for member in names:
        if member.startswith(data_dir):
            parts = member[len(data_dir):].split("/", 1)
            if len(parts) == 2 and parts[0] in _SCHEMES:
                files.append((parts[0], parts[1]))
        else:
            files.append((root, member))
    files += [("scripts", script) for script in _scripts(entry_text)]
    return name, files


def _scripts(entry_text: str) -> Iterator[str]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(entry_text)
    except configparser.Error:
        return
    for section in ("console_scripts", "gui_scripts"):
        if parser.has_section(section):
            yield from parser.options(section)


def find_clashes(wheels: Iterable[Path], installed: InstalledFiles) -> list[Clash]:
    """Every file the ``wheels`` would write that another distribution (installed, or another of the
    wheels) owns. A wheel of an installed distribution's own name replaces that one: no clash."""
    planned: dict[str, str] = {}
    clashes: list[Clash] = []
    folders = _owned_folders(installed)
    for wheel in wheels:
        name, files = wheel_files(wheel)
        mine = normalize_name(name)
        for scheme, relative in files:
            folder = installed.paths.get(scheme)
            if not folder:
                continue
            target = os.path.realpath(os.path.join(folder, relative))
            owner = installed.owners.get(target) or planned.get(target)
            if owner is None and scheme in ("purelib", "platlib") and ".dist-info/" not in relative:
                owner = _editable_owner(relative, installed.roots)
                if owner is None and relative.endswith("/__init__.py"):
                    owner = _namespace_owner(os.path.dirname(target), relative[: -len("/__init__.py")],
                                             folders, installed.roots)
            if owner is not None and normalize_name(owner.split(" (", 1)[0]) != mine:
                clashes.append(Clash(target, name, owner))
            planned.setdefault(target, name)
    return clashes


def _owned_folders(installed: InstalledFiles) -> dict[str, str]:
    """Every folder that holds an installed file -> the first distribution seen owning one in it."""
    folders: dict[str, str] = {}
    for path, owner in installed.owners.items():
        folder = os.path.dirname(path)
        while folder not in folders and len(folder) > 1:
            folders[folder] = owner
            folder = os.path.dirname(folder)
    return folders


def _namespace_owner(
    folder: str, relative: str, folders: Mapping[str, str], roots: Mapping[str, str]
) -> str | None:
    """Who shares the namespace package ``relative`` that an ``__init__.py`` would make a regular one."""
    if folder in folders and not os.path.exists(os.path.join(folder, "__init__.py")):
        return f"{folders[folder]} (namespace package {relative.replace('/', '.')})"
    for root, owner in roots.items():
        if os.path.isdir(os.path.join(root, relative)) and not os.path.exists(
            os.path.join(root, relative, "__init__.py")
        ):
            return f"{owner} (namespace package {relative.replace('/', '.')}, development install)"
    return None


def _editable_owner(relative: str, roots: Mapping[str, str]) -> str | None:
    for folder, owner in roots.items():
        if os.path.isfile(os.path.join(folder, relative)):
            return f"{owner} (development install, {folder})"
    return None


def refuse_clashes(label: str, clashes: list[Clash]) -> None:
    """Raise :class:`DependencyConflictError` naming the first clashes and both owners of each."""
    if not clashes:
        return
    shown = "; ".join(str(c) for c in clashes[:_SHOWN])
    more = f"; and {len(clashes) - _SHOWN} more" if len(clashes) > _SHOWN else ""
    owners = sorted({normalize_name(c.old_owner.split(" ", 1)[0]) for c in clashes})
    raise DependencyConflictError(
        f"refusing to install {label}: it would overwrite files of installed packages: {shown}{more}", owners
    )
