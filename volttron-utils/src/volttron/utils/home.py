"""``VOLTTRON_HOME`` and the well-known paths inside it (docs/protocol.md §5.5).

Nothing here is evaluated at import time: every function reads the environment when called, so
tests and tools can point at another home without reloading modules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

DEFAULT_HOME = "~/.volttron"


def get_home(env: Mapping[str, str] | None = None) -> Path:
    """The platform home: ``$VOLTTRON_HOME`` or ``~/.volttron``, absolute, no trailing slash."""
    env = os.environ if env is None else env
    raw = env.get("VOLTTRON_HOME") or DEFAULT_HOME
    return Path(os.path.abspath(os.path.expanduser(raw.rstrip("/") or "/")))


def local_vip_address(home: str | os.PathLike[str] | None = None) -> str:
    """The platform's local IPC address, ``ipc://@<home>/run/vip.socket`` on Linux (abstract namespace)."""
    home = Path(home) if home is not None else get_home()
    at = "@" if sys.platform.startswith("linux") else ""
    return f"ipc://{at}{home}/run/vip.socket"


def platform_keystore_path(home: str | os.PathLike[str] | None = None) -> Path:
    """Where the platform's own CURVE key pair lives."""
    return (Path(home) if home is not None else get_home()) / "keystore"


def known_hosts_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The ``known_hosts`` file mapping addresses to server keys."""
    return (Path(home) if home is not None else get_home()) / "known_hosts"


def auth_file_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The ``auth.json`` file deciding who may connect and with which capabilities."""
    return (Path(home) if home is not None else get_home()) / "auth.json"


def pid_file_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The ``VOLTTRON_PID`` file written by a running platform."""
    return (Path(home) if home is not None else get_home()) / "VOLTTRON_PID"


def config_file_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The platform's INI configuration file ``$VOLTTRON_HOME/config``."""
    return (Path(home) if home is not None else get_home()) / "config"


def agents_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding one directory per installed agent identity."""
    return (Path(home) if home is not None else get_home()) / "agents"


def identity_keystore_path(identity: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Key store of a non-installed identity (services, ``control.connection``, scripts)."""
    return (Path(home) if home is not None else get_home()) / "keystores" / identity / "keystore.json"


def config_store_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """The folder of per-agent configuration stores."""
    return (Path(home) if home is not None else get_home()) / "configuration_store"


def certificates_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the platform's certificate authority and certificates."""
    return (Path(home) if home is not None else get_home()) / "certificates"
