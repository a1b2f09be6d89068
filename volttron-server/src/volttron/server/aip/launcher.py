"""How an installed agent is started: its command line, working directory and environment.

See docs/protocol.md §4.4.

The launcher is the distribution's entry point (first of ``console_scripts``, then
``setuptools.installation``/``eggsecutable``, then ``volttron.agent``/``launch``), found with
:mod:`importlib.metadata` in the server's own environment, where the agent was installed. It runs as
``python -c "import sys; from <module> import <fn>; sys.exit(<fn>())"`` with the agent directory as
working directory and the platform's environment plus the variables of :func:`agent_environment`.
In secure mode the spec names the agent's system user: the process runs as it, with ``HOME``,
``USER`` and ``LOGNAME`` set to match (``HOME`` is the agent's ``data/``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.errors import AgentProcessError
from volttron.server.aip.isolation import (
    ENVIRONMENTS_DIR,
    agent_launcher,
    environment_entry_point,
    environment_of,
)
from volttron.server.aip.leftovers import MARK_VARIABLE
from volttron.server.aip.published_contract import agent_credentials, ensure_platform_credentials

AGENT_ENV_KEYS: tuple[str, ...] = (
    "AGENT_VIP_IDENTITY",
    "AGENT_UUID",
    "AGENT_CONFIG",
    "VOLTTRON_HOME",
    "VOLTTRON_SERVERKEY",
    "AGENT_PUBLICKEY",
    "AGENT_SECRETKEY",
    "AGENT_DATA_DIR",
    "AGENT_TAG",
    "_LAUNCHED_BY_PLATFORM",
    "MESSAGEBUS",
    "VOLTTRON_VIP_ADDR",
    "AGENT_CREDENTIALS",
    MARK_VARIABLE,
)
"""The variables the platform sets for an agent; inherited values of these are never passed on."""

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class LaunchSettings:
    """What every agent of one platform is started with."""

    volttron_home: Path
    message_bus: str = "zmq"
    vip_address: str | None = None
    """Passed as ``VOLTTRON_VIP_ADDR`` when set."""
    serverkey: str | None = None
    """The platform's public key, passed as ``VOLTTRON_SERVERKEY`` when set."""
    base_env: Mapping[str, str] = field(default_factory=dict)
    """The platform's environment, which agents inherit (a snapshot: the launcher never reads os.environ)."""
    python: str = sys.executable


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one agent process."""

    identity: str
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    user: str | None = None
    """The system user to run as (secure mode); None runs as the platform's user."""
    home: Path | None = None
    """The platform home the agent belongs to: the supervisor marks its processes with it, so that
    none outlives the platform (:mod:`.leftovers`). None: not marked."""


def find_entry_point(distribution: str) -> tuple[str, str, str]:
    """``(group, name, "module:function")`` of the launcher of an installed distribution."""
    importlib.invalidate_caches()  # the agent may have been installed after this process started
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise AgentProcessError(
            f"the agent's code ({distribution}) is not installed in the platform's environment; reinstall it"
        ) from None
    return agent_launcher(dist, distribution)


def launcher_code(value: str) -> str:
    """The ``python -c`` program that runs the entry point ``value`` (``module:attr`` or ``module``)."""
    target = value.split("[", 1)[0].strip()
    module, _, attr = target.partition(":")
    module, attr = module.strip(), attr.strip()
    if not _DOTTED.fullmatch(module) or (attr and not _DOTTED.fullmatch(attr)):
        raise AgentProcessError(f"unusable entry point {value!r}: expected 'module:function'")
    if not attr:
        return f"import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    head = attr.split(".", 1)[0]
    return f"import sys; from {module} import {head}; sys.exit({attr}())"


def agent_environment(directory: AgentDirectory, settings: LaunchSettings) -> dict[str, str]:
    """The environment of the agent process: a new dict, the platform's environment plus the agent's.

    It also holds what agents of the published VOLTTRON read (``AGENT_CREDENTIALS``), and makes sure
    the home has their ``credentials_store/platform.json`` (the public key only): see
    :mod:`.published_contract`.
    """
    env = {k: v for k, v in settings.base_env.items() if k not in AGENT_ENV_KEYS}
    keys = directory.keys()
    env.update(
        {
            "VOLTTRON_HOME": str(settings.volttron_home),
            "AGENT_VIP_IDENTITY": directory.identity,
            "AGENT_UUID": directory.uuid,
            "AGENT_DATA_DIR": str(directory.data_dir),
            "AGENT_PUBLICKEY": keys.public,
            "AGENT_SECRETKEY": keys.secret,
            "AGENT_CREDENTIALS": agent_credentials(directory.identity, keys.public, keys.secret),
            "MESSAGEBUS": settings.message_bus,
            "_LAUNCHED_BY_PLATFORM": "1",
        }
    )
    optional = {
        "AGENT_CONFIG": str(directory.config_path) if directory.config_path else None,
        "AGENT_TAG": directory.tag,
        "VOLTTRON_SERVERKEY": settings.serverkey,
        "VOLTTRON_VIP_ADDR": settings.vip_address,
    }
    env.update({k: v for k, v in optional.items() if v})
    if settings.serverkey:
        ensure_platform_credentials(settings.volttron_home, settings.serverkey)
    env.setdefault("PYTHONUNBUFFERED", "1")  # so the platform log gets each line when it is written
    return env


def build_launch_spec(
    directory: AgentDirectory, settings: LaunchSettings, user: str | None = None
) -> LaunchSpec:
    """The command line, working directory and environment that start the agent in ``directory``.

    ``user`` (secure mode) is the system user the process is to run as. An agent installed in an
    environment of its own (:mod:`.isolation`) runs with that environment's interpreter.
    """
    directory.data_dir.mkdir(exist_ok=True)
    python = settings.python
    own = environment_of(directory)
    if own is None:
        _, _, value = find_entry_point(directory.name)
    else:
        root = settings.volttron_home / ENVIRONMENTS_DIR / own
        _, _, value = environment_entry_point(root, directory.name)
        python = str(root / "bin" / "python")
    env = agent_environment(directory, settings)
    if own is not None:
        env["VIRTUAL_ENV"] = str(root)
        env["PATH"] = os.pathsep.join(p for p in (str(root / "bin"), env.get("PATH", "")) if p)
    if user is not None:
        env.update({"HOME": str(directory.data_dir), "USER": user, "LOGNAME": user})
    return LaunchSpec(
        identity=directory.identity,
        argv=(python, "-c", launcher_code(value)),
        cwd=directory.path,
        env=env,
        user=user,
        home=settings.volttron_home,
    )
