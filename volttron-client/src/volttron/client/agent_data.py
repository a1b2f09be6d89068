"""Where an agent keeps its files: its data directory.

An installed agent owns ``$VOLTTRON_HOME/agents/<identity>/data``. It is the agent's only writable
place: in secure mode the agent may write nowhere else, and it is the one folder the platform
backs up and restores when the agent is reinstalled or upgraded (the modular framework paper,
§5.4). Put databases, caches and generated files there::

    from volttron.client.agent_data import get_agent_data_dir

    db_path = get_agent_data_dir() / "history.sqlite"

The platform passes the folder to the agent process as ``AGENT_DATA_DIR``. An agent started by
hand (outside the platform) can set ``AGENT_DATA_DIR`` itself, or set ``AGENT_VIP_IDENTITY`` (and
``VOLTTRON_HOME``) to use the folder the platform would give it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from volttron.utils.errors import VolttronError
from volttron.utils.home import agents_dir, get_home


class AgentDataDirError(VolttronError):
    """The agent's data directory cannot be determined (not launched by a platform, nothing set)."""


def get_agent_data_dir(env: Mapping[str, str] | None = None, *, create: bool = False) -> Path:
    """The agent's data directory, read from the environment at call time.

    ``AGENT_DATA_DIR`` when set; else ``$VOLTTRON_HOME/agents/<AGENT_VIP_IDENTITY>/data``. Raises
    :class:`AgentDataDirError` when neither variable is set. With ``create`` the folder (and its
    parents) is made if missing. ``env`` replaces ``os.environ`` (for tests and tools).
    """
    env = os.environ if env is None else env
    explicit = env.get("AGENT_DATA_DIR", "").strip()
    if explicit:
        path = Path(explicit).expanduser()
    else:
        identity = env.get("AGENT_VIP_IDENTITY", "").strip()
        if not identity:
            raise AgentDataDirError(
                "cannot tell where this agent's data directory is: AGENT_DATA_DIR is not set (the platform "
                "sets it when it starts an agent); set AGENT_DATA_DIR, or AGENT_VIP_IDENTITY + VOLTTRON_HOME"
            )
        if "/" in identity or identity in (".", ".."):
            raise AgentDataDirError(f"AGENT_VIP_IDENTITY {identity!r} cannot name an agent directory")
        path = agents_dir(get_home(env)) / identity / "data"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
