"""May an agent go into the platform's own environment? The checks before anything is installed there.

Each raises :class:`DependencyConflictError` (the installer then refuses, or with isolation allowed
installs the agent into an environment of its own, :mod:`.isolation`):

1. the agent requires a platform package of the published VOLTTRON (``volttron-core``,
   ``volttron-lib-*``), read from its wheel: no resolution needed;
2. pip cannot resolve it with every protected distribution pinned, or would change one of them;
3. the resolution brings such a foreign platform package indirectly;
4. a file one of the planned wheels would write belongs to another distribution (:mod:`.file_clash`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from volttron.client.packaging import WheelInfo, normalize_name
from volttron.server.aip.environment import EnvironmentSnapshot, PipOptions, PlannedChange, PythonEnvironment
from volttron.server.aip.errors import DependencyConflictError
from volttron.server.aip.file_clash import InstalledFiles, find_clashes, refuse_clashes
from volttron.server.aip.isolation import wheel_requirements


def foreign_platform(name: str) -> bool:
    """A platform package of the published VOLTTRON (``volttron-core``, ``volttron-lib-*``)."""
    return name == "volttron-core" or name.startswith("volttron-lib-")


def check_shared_install(
    environment: PythonEnvironment,
    info: WheelInfo,
    snapshot: EnvironmentSnapshot,
    constraints: Path,
    work: Path,
    options: PipOptions,
    pre: bool,
) -> tuple[PlannedChange, ...]:
    """What installing ``info`` into ``environment`` would change, after checks 1-4 above.

    ``constraints`` is written with the pins; pip's report and the planned wheels go under ``work``.
    """
    dist = normalize_name(info.name)
    label = f"{info.name} {info.version}"
    direct = [n for n in wheel_requirements(info.path) if foreign_platform(n)]
    if direct:
        raise DependencyConflictError(
            f"refusing to install {label} beside the platform: it requires another VOLTTRON's platform "
            f"packages ({', '.join(direct)})", direct
        )
    constraints.write_text(environment.constraints_text(snapshot, exclude=[dist]))
    changes = tuple(
        environment.plan(str(info.path), constraints, options, pre, snapshot, label=label, work_dir=work)
    )
    refuse_platform_changes(changes, snapshot.protected, dist, info)
    foreign = [c for c in changes if foreign_platform(c.name) and c.name not in snapshot.installed]
    if foreign:
        listed = ", ".join(f"{c.name} {c.version}" for c in foreign)
        raise DependencyConflictError(
            f"refusing to install {label} beside the platform: it brings another VOLTTRON's platform "
            f"packages ({listed})", [c.name for c in foreign]
        )
    others = [c for c in changes if c.name != dist]
    wheels = [info.path, *environment.fetch_planned(others, work / "planned", options)]
    refuse_clashes(label, find_clashes(wheels, InstalledFiles.of(environment.python)))
    return changes


def refuse_platform_changes(
    changes: tuple[PlannedChange, ...], protected: Mapping[str, Any], dist: str, info: WheelInfo
) -> None:
    """Raise :class:`DependencyConflictError` when ``changes`` touch a protected distribution."""
    touched = [c for c in changes if c.name in protected and c.name != dist]
    if touched:
        listed = ", ".join(f"{c.name} {c.installed_version} -> {c.version}" for c in touched)
        raise DependencyConflictError(
            f"refusing to install {info.name} {info.version}: it would change the platform's own packages "
            f"({listed})",
            [c.name for c in touched],
        )
