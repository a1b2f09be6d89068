"""Secure mode: one system user per installed agent, and what that user may touch (paper §5.4).

With ``volttron --secure-agent-users`` every installed agent gets its own system user and group,
``volttron_<n>`` (docs/protocol.md §4.4), created at install (``useradd --system``) and removed with the
agent; its name is kept in the agent directory's ``USER_ID`` file. The agent process runs as that
user, with no supplementary groups. The permission layout makes ``data/`` its only writable place:

::

    $VOLTTRON_HOME/                 0711 root   (others may pass through, not list)
        auth.json, keystore, ...    no access for group or others (0600 / 0700)
        agents/                     0711 root
            .locks/                 0700 root
            <identity>/             0750 root:<agent group>   (other agents cannot enter)
                USER_ID, UUID, ...  root, read-only for the agent
                config              0640 root:<agent group>
                keystore.json       0600 <agent user>
                data/               0700 <agent user>

Managing users needs root: :func:`check_requirements` says so in one line when the platform is
not root, and when agent users could not run the platform's Python or reach ``VOLTTRON_HOME``.
Each user's comment (GECOS) names its agent and platform home, so users left behind by a crash
are recognised and removed at the next start (:meth:`AgentUsers.remove_stale`).
"""

from __future__ import annotations

import grp
import hashlib
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.errors import AIPError

_log = logging.getLogger(__name__)

USER_PREFIX = "volttron_"
DOCS = "docs/secure-mode.md"
HOME_MODE = 0o711
AGENT_DIR_MODE = 0o750
DATA_MODE = 0o700
CONFIG_MODE = 0o640
KEYSTORE_MODE = 0o600
AGENT_UMASK = 0o077
"""The agent process's umask: what it creates in ``data/`` is its own."""

_COMMAND_TIMEOUT = 60.0
_LOCK_RETRIES = 50
_LOCK_RETRY_SECONDS = 0.2
_NAME_ATTEMPTS = 100
_USERADD_NAME_IN_USE = 9
_USERADD_LOCKED = 10
_KILL_WAIT_SECONDS = 5.0
_COMMENT_PREFIX = "VOLTTRON agent "
_USER_NAME = re.compile(rf"{USER_PREFIX}(\d+)")


class SecureModeError(AIPError):
    """Secure mode cannot work here, or a system user could not be created or removed."""


# ---------------------------------------------------------------------------- start-up checks


def check_requirements(
    home: Path,
    *,
    euid: int | None = None,
    python: str = sys.executable,
    import_paths: Sequence[str] | None = None,
) -> None:
    """Raise :class:`SecureModeError` (one line) unless secure mode can work for ``home``.

    It needs root (to create users and start processes as them), ``useradd``, ``userdel`` and
    ``groupdel``, a Python and import path (``import_paths``, default ``sys.path`` without the
    script's folder) that other users can read, and a ``VOLTTRON_HOME`` whose parent folders they
    may pass through.
    """
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise SecureModeError(
            f"--secure-agent-users needs root to create the agents' system users; "
            f"run volttron as root (this process runs as uid {euid}); see {DOCS}"
        )
    missing = [tool for tool in ("useradd", "userdel", "groupdel") if _which(tool) is None]
    if missing:
        raise SecureModeError(f"--secure-agent-users needs {', '.join(missing)} (package passwd); see {DOCS}")
    paths = list(sys.path[1:] if import_paths is None else import_paths)
    for what, path in [("the platform's Python", python), *(("the import path entry", p) for p in paths)]:
        if not path or not os.path.exists(path):
            continue
        problem = _unreachable(Path(os.path.abspath(path)))
        if problem:
            raise SecureModeError(
                f"--secure-agent-users: agent users cannot use {what} {path}: {problem}; "
                f"install the platform where other users can read it; see {DOCS}"
            )
    for parent in reversed(Path(os.path.abspath(home)).parents):
        if parent.exists() and not _mode(parent) & stat.S_IXOTH:
            raise SecureModeError(
                f"--secure-agent-users: agent users cannot reach VOLTTRON_HOME {home}: {parent} has mode "
                f"{_mode(parent):04o} (others need x); see {DOCS}"
            )


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _unreachable(path: Path) -> str | None:
    """Why others cannot read (and run or list) ``path``, or None; follows symbolic links."""
    for candidate in dict.fromkeys([path, Path(os.path.realpath(path))]):
        for parent in reversed(candidate.parents):
            if not _mode(parent) & stat.S_IXOTH:
                return f"{parent} has mode {_mode(parent):04o} (others need x)"
        mode = _mode(candidate)
        need = stat.S_IROTH | stat.S_IXOTH if candidate.is_dir() or mode & stat.S_IXUSR else stat.S_IROTH
        if mode & need != need:
            return f"{candidate} has mode {mode:04o} (others need r{'x' if need & stat.S_IXOTH else ''})"
    return None


# ---------------------------------------------------------------------------- permissions


def secure_home(home: Path) -> None:
    """Apply the home's part of the layout: ``home`` and ``agents/`` 0711, the rest private.

    Every other entry of the home (``auth.json``, ``keystore``, ``keystores/``,
    ``configuration_store/``, ...) loses its group and other permissions, but ``environments/``:
    the agents' own environments, code their users run (:mod:`.isolation`).
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, HOME_MODE)
    for entry in home.iterdir():
        if entry.name in ("agents", "environments") or entry.is_symlink():
            continue
        mode = stat.S_IMODE(entry.lstat().st_mode)
        if mode & 0o077:
            os.chmod(entry, mode & ~0o077)
    secure_agents_folder(home / "agents")


def secure_agents_folder(folder: Path) -> None:
    """``agents/`` 0711 (agents pass through to their own directory), ``agents/.locks`` 0700."""
    (folder / ".locks").mkdir(parents=True, exist_ok=True)
    os.chmod(folder, HOME_MODE)
    os.chmod(folder / ".locks", 0o700)


def secure_agent_directory(directory: AgentDirectory, user: str, recursive: bool = False) -> None:
    """Give ``user`` its part of the agent directory (see the module docstring).

    ``recursive`` also hands over everything already inside ``data/`` (after an install restored
    a reinstalled agent's data as root); otherwise only ``data/`` itself is checked.
    """
    account = _account(user)
    uid, gid = account.pw_uid, account.pw_gid
    owner = os.geteuid()
    os.chown(directory.path, owner, gid)
    os.chmod(directory.path, AGENT_DIR_MODE)
    data = directory.data_dir
    data.mkdir(exist_ok=True)
    os.chown(data, uid, gid)
    os.chmod(data, DATA_MODE)
    if recursive:
        for root, folders, files in os.walk(data):
            for name in (*folders, *files):
                os.lchown(os.path.join(root, name), uid, gid)
    if directory.keystore_path.exists():
        os.chown(directory.keystore_path, uid, gid)
        os.chmod(directory.keystore_path, KEYSTORE_MODE)
    if directory.config_path is not None:
        os.chown(directory.config_path, owner, gid)
        os.chmod(directory.config_path, CONFIG_MODE)


# ---------------------------------------------------------------------------- users


class AgentUsers:
    """Creates, finds and removes the system users of one platform home's agents."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)
        self.marker = _home_marker(self.home)

    def comment(self, identity: str) -> str:
        """The GECOS comment of ``identity``'s user: names the agent and this platform's home."""
        return f"{_COMMENT_PREFIX}{identity} of {self.marker}"

    def create(self, identity: str, home_dir: Path) -> str:
        """Create a new system user and group for ``identity``; returns the user name."""
        taken = {entry.pw_name for entry in pwd.getpwall()}
        numbers = [int(m.group(1)) for name in taken if (m := _USER_NAME.fullmatch(name))]
        number = max(numbers, default=0) + 1
        for _ in range(_NAME_ATTEMPTS):
            name = f"{USER_PREFIX}{number}"
            number += 1
            if name in taken or _group_exists(name):
                continue
            command = [
                _tool("useradd"), "--system", "--user-group", "--no-create-home",
                "--home-dir", str(home_dir), "--shell", _nologin_shell(),
                "--comment", self.comment(identity), name,
            ]
            result = _run_locked(command)
            if result.returncode == _USERADD_NAME_IN_USE:
                continue  # another platform took it between our look and our useradd
            if result.returncode != 0:
                raise SecureModeError(f"could not create a system user for {identity}: {_output(result)}")
            _log.info("created system user %s for agent %s", name, identity)
            return name
        raise SecureModeError(f"could not find a free user name for {identity} after {_NAME_ATTEMPTS} tries")

    def exists(self, name: str) -> bool:
        """Whether the system user ``name`` exists."""
        try:
            pwd.getpwnam(name)
        except KeyError:
            return False
        return True

    def remove(self, name: str) -> None:
        """Remove the user ``name`` and its group, ending any process still running as it."""
        if not _USER_NAME.fullmatch(name):
            raise SecureModeError(f"refusing to remove {name!r}: not an agent user name")
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            account = None
        if account is not None:
            if not account.pw_gecos.endswith(f" of {self.marker}"):
                raise SecureModeError(f"refusing to remove {name}: it belongs to another platform home")
            _kill_processes_of(account.pw_uid)
            result = _run_locked([_tool("userdel"), name])
            if result.returncode != 0:
                raise SecureModeError(f"could not remove the system user {name}: {_output(result)}")
        if _group_exists(name):
            result = _run_locked([_tool("groupdel"), name])
            if result.returncode != 0 and _group_exists(name):
                raise SecureModeError(f"could not remove the group {name}: {_output(result)}")
        _log.info("removed system user %s", name)

    def owned(self) -> list[str]:
        """The agent users of this platform home (recognised by their comment), sorted."""
        suffix = f" of {self.marker}"
        return sorted(
            entry.pw_name
            for entry in pwd.getpwall()
            if _USER_NAME.fullmatch(entry.pw_name)
            and entry.pw_gecos.startswith(_COMMENT_PREFIX)
            and entry.pw_gecos.endswith(suffix)
        )

    def remove_stale(self, in_use: Iterable[str]) -> list[str]:
        """Remove this home's agent users that no agent directory names (left by a crash)."""
        keep = set(in_use)
        removed = []
        for name in self.owned():
            if name in keep:
                continue
            try:
                self.remove(name)
            except SecureModeError as exc:
                _log.error("stale agent user %s: %s", name, exc)
                continue
            removed.append(name)
            _log.warning("removed the stale agent user %s (no installed agent uses it)", name)
        return removed


def _account(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise SecureModeError(
            f"the agent's system user {user} does not exist; reinstall the agent (vctl install --force)"
        ) from None


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _home_marker(home: Path) -> str:
    """The home's path for user comments, or a digest of it when it holds characters passwd forbids."""
    text = str(Path(os.path.abspath(home)))
    if re.fullmatch(r"[A-Za-z0-9_./ -]+", text) and len(text) <= 200:
        return text
    return "home-" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _tool(name: str) -> str:
    path = _which(name)
    if path is None:
        raise SecureModeError(f"{name} is not installed; secure mode needs it (see {DOCS})")
    return path


def _nologin_shell() -> str:
    for shell in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"):
        if os.path.exists(shell):
            return shell
    return "/bin/false"


def _run_locked(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a passwd tool, retrying (bounded) while another one holds the passwd file lock."""
    result = None
    for _ in range(_LOCK_RETRIES):
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SecureModeError(f"{command[0]} failed: {exc}") from exc
        locked = result.returncode == _USERADD_LOCKED or "lock" in result.stderr.lower()
        if result.returncode == 0 or not locked:
            return result
        time.sleep(_LOCK_RETRY_SECONDS)
    assert result is not None
    return result


def _output(result: subprocess.CompletedProcess[str]) -> str:
    text = " ".join((result.stderr or result.stdout or "").split())
    return f"exit code {result.returncode}" + (f": {text}" if text else "")


def _kill_processes_of(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (an agent's escaped children) and wait for them."""
    victims = []
    for process in psutil.process_iter(["uids"]):
        uids = process.info.get("uids")
        if uids is not None and uid in (uids.real, uids.effective):
            try:
                process.kill()
                victims.append(process)
            except psutil.Error:
                continue
    if victims:
        psutil.wait_procs(victims, timeout=_KILL_WAIT_SECONDS)
