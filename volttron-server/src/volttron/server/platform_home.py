"""What the platform keeps in ``$VOLTTRON_HOME`` (docs/protocol.md §5.5, §8.3, §8.4).

The home and its ``run/`` folder (mode 0700), the single-instance lock and the ``VOLTTRON_PID``
file, the platform's key store, the ``known_hosts`` entries for its own addresses, the
``control.connection`` key store that vctl uses, and the ``auth.json`` entries of the platform's
own identities.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import psutil

from volttron.server import identities
from volttron.server.services.auth.authfile import PLATFORM_COMMENT, AuthEntry
from volttron.utils.errors import VolttronError
from volttron.utils.files import FileLock, atomic_write
from volttron.utils.home import identity_keystore_path, pid_file_path, platform_keystore_path
from volttron.utils.keystore import KeyStore

_log = logging.getLogger(__name__)

LOCK_FILE = "run/platform.lock"


class HomeError(VolttronError):
    """The platform home cannot be used (not writable, not a directory, ...)."""


class PlatformRunningError(VolttronError):
    """Another platform already runs in this home."""


def prepare_home(home: Path) -> None:
    """Create the home and ``run/`` (0700) if missing and check that they are writable."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (home / "run").mkdir(mode=0o700, exist_ok=True)
    except FileExistsError:
        raise HomeError(f"VOLTTRON_HOME {home} exists and is not a directory") from None
    except OSError as exc:
        raise HomeError(f"cannot create VOLTTRON_HOME {home}: {exc.strerror or exc}") from None
    for folder in (home, home / "run"):
        if not folder.is_dir():
            raise HomeError(f"{folder} is not a directory")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise HomeError(f"VOLTTRON_HOME {folder} is not writable")
    mode = home.stat().st_mode & 0o777
    if mode & 0o066:  # passing through (x, as secure mode's 0711) lets no one list or read anything
        _log.warning("VOLTTRON_HOME %s is accessible by other users (mode %o); 0700 is advised", home, mode)


def read_pid(home: Path) -> int | None:
    """The pid in ``VOLTTRON_PID``, or None when there is no readable one."""
    try:
        return int(pid_file_path(home).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class InstanceLock:
    """Makes sure one platform runs per home: an exclusive ``flock`` plus the ``VOLTTRON_PID`` check.

    The lock is held for the life of the process; the kernel releases it if the process dies.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock = FileLock(home / LOCK_FILE)
        self._wrote_pid = False

    def acquire(self) -> None:
        """Take the lock or raise :class:`PlatformRunningError` saying which process holds it."""
        path = self.home / LOCK_FILE
        try:
            taken = self._lock.acquire()
        except OSError as exc:
            raise HomeError(f"cannot lock {path}: {exc.strerror}") from None
        if not taken:
            pid = read_pid(self.home)
            who = f" (pid {pid})" if pid else ""
            raise PlatformRunningError(f"a platform is already running in {self.home}{who}")
        pid = read_pid(self.home)
        if pid is not None and _alive(pid) and _is_platform(pid):
            self.release()
            raise PlatformRunningError(f"a platform is already running in {self.home} (pid {pid}, "
                                       f"from {pid_file_path(self.home)})")
        if pid_file_path(self.home).exists():
            _log.info("removing stale %s (pid %s is not running)", pid_file_path(self.home), pid)
            with contextlib.suppress(FileNotFoundError):
                pid_file_path(self.home).unlink()

    def write_pid(self) -> None:
        """Write ``VOLTTRON_PID`` with this process's pid (the platform is ready)."""
        atomic_write(pid_file_path(self.home), f"{os.getpid()}\n", 0o644)
        self._wrote_pid = True

    def release(self) -> None:
        """Remove our ``VOLTTRON_PID`` and drop the lock."""
        if self._wrote_pid and read_pid(self.home) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                pid_file_path(self.home).unlink()
        self._wrote_pid = False
        self._lock.release()


def _is_platform(pid: int) -> bool:
    """Whether ``pid`` looks like a platform process (a reused pid of another program does not count)."""
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return False
    return "volttron" in cmdline


def platform_keystore(home: Path) -> KeyStore:
    """The platform's key store, created on first start."""
    return KeyStore(platform_keystore_path(home))


def control_connection_keystore(home: Path) -> KeyStore:
    """The key store vctl connects with (``keystores/control.connection/keystore.json``)."""
    return KeyStore(identity_keystore_path(identities.CONTROL_CONNECTION, home))


def platform_auth_entries(platform_public: str, control_public: str) -> list[AuthEntry]:
    """The allow entries the platform keeps for its own identities (docs/protocol.md §8.4, modular names)."""
    edit_all = {"edit_config_store": {"identity": "/.*/"}}
    admin = {**edit_all, "modify_rpc_method_allowance": None, "allow_auth_modifications": None}

    def entry(user_id: str, key: str, capabilities: dict) -> AuthEntry:
        return AuthEntry(credentials=key, user_id=user_id, identity=user_id, capabilities=capabilities,
                         comments=PLATFORM_COMMENT)

    return [
        entry(identities.PLATFORM, platform_public, edit_all),
        entry(identities.CONTROL_CONNECTION, control_public, admin),
        entry(identities.CONFIGURATION_STORE, platform_public, {"sync_agent_config": None}),
        entry(identities.AUTH, platform_public, {"modify_rpc_method_allowance": None}),
        entry(identities.CONTROL, platform_public, admin),
        entry(identities.PLATFORM_HEALTH, platform_public, {}),
        entry(identities.PLATFORM_WEB, platform_public, {"allow_auth_modifications": None}),
    ]
