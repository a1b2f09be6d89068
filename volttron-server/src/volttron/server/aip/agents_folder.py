"""The folder of installed agents, ``$VOLTTRON_HOME/agents``: lookup, naming, locks and work folders.

Directories whose name starts with ``.`` are the AIP's own: ``.locks/`` (one lock file per
identity), ``.new-<identity>-<hex>`` (an agent directory being built), ``.old-<identity>-<hex>`` (the
previous directory during a reinstall's swap) and ``.removing-<identity>-<hex>``. An interrupted
swap is undone by :meth:`AgentsFolder.recover`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from volttron.client.packaging import normalize_name
from volttron.server.aip.agent_dir import AgentDirectory, check_agent_identity
from volttron.server.aip.errors import (
    AgentBusyError,
    AgentNotFoundError,
    AmbiguousAgentError,
    InvalidIdentityError,
)
from volttron.utils.files import FileLock, fsync_directory
from volttron.utils.home import agents_dir
from volttron.utils.identities import normalize_identity

_log = logging.getLogger(__name__)
_MAX_INSTANCES = 10_000
_WORK_PREFIXES = (".new-", ".old-", ".removing-")


class AgentsFolder:
    """All agent directories of one platform home."""

    def __init__(self, volttron_home: Path | str) -> None:
        self.path = agents_dir(volttron_home)

    def ensure(self) -> None:
        """Create the folder (and its lock folder) if missing."""
        (self.path / ".locks").mkdir(parents=True, exist_ok=True)

    # ----- lookup

    def directories(self) -> list[AgentDirectory]:
        """Every installed agent, sorted by identity. Work folders and broken directories are skipped."""
        if not self.path.is_dir():
            return []
        found = []
        for entry in sorted(self.path.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            directory = AgentDirectory(entry)
            if directory.is_agent():
                found.append(directory)
            else:
                _log.warning("%s is not an installed agent (no UUID file); ignored", entry)
        return found

    def get(self, identity: str) -> AgentDirectory | None:
        """The agent installed under ``identity``, or None."""
        if not identity or identity.startswith(".") or "/" in identity or identity in (".", ".."):
            return None
        directory = AgentDirectory(self.path / identity)
        return directory if directory.is_agent() else None

    def identity_exists(self, identity: str) -> str | None:
        """The uuid of the agent installed under ``identity``, or None."""
        directory = self.get(identity)
        return directory.uuid if directory else None

    def resolve(self, ref: str) -> AgentDirectory:
        """The agent named by ``ref``: a full uuid, an identity, or a unique uuid prefix (in that order).

        Raises :class:`AgentNotFoundError`, or :class:`AmbiguousAgentError` listing the matches.
        """
        if not isinstance(ref, str) or not ref.strip():
            raise AgentNotFoundError("no agent given: name one by UUID, UUID prefix or identity")
        ref = ref.strip()
        directories = self.directories()
        for directory in directories:
            if directory.uuid == ref:
                return directory
        by_identity = self.get(ref)
        if by_identity is not None:
            return by_identity
        matches = [d for d in directories if d.uuid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise AgentNotFoundError(f"no installed agent has the UUID, UUID prefix or identity {ref!r}")
        pairs = [(d.uuid, d.identity) for d in matches]
        listed = ", ".join(f"{u} ({i})" for u, i in pairs)
        raise AmbiguousAgentError(
            f"{ref!r} matches {len(matches)} agents: {listed}; give more of the UUID", pairs
        )

    def instances_of(self, distribution: str) -> list[AgentDirectory]:
        """The installed agents whose code comes from ``distribution``."""
        wanted = normalize_name(distribution)
        return [d for d in self.directories() if normalize_name(d.name) == wanted]

    # ----- naming

    def default_identity(self, name: str, version: str, taken: frozenset[str] = frozenset()) -> str:
        """``<name>-<version>_<n>`` with the first n >= 1 neither installed nor in ``taken``."""
        base = normalize_identity(f"{name}-{version}")
        for n in range(1, _MAX_INSTANCES):
            candidate = f"{base}_{n}"
            if candidate in taken or (self.path / candidate).exists():
                continue
            return check_agent_identity(candidate)
        raise InvalidIdentityError(f"no free identity left for {base}")

    # ----- locks and work folders

    def lock(self, identity: str) -> FileLock:
        """Take the exclusive install/remove lock of ``identity`` now, or raise :class:`AgentBusyError`."""
        self.ensure()
        lock = FileLock(self.path / ".locks" / f"{identity}.lock")
        if not lock.acquire(0):
            raise AgentBusyError(f"another install or removal of {identity!r} is in progress; try later")
        return lock

    def environment_lock(self, timeout: float) -> FileLock:
        """Take the lock that serializes changes to the Python environment, waiting up to ``timeout`` s."""
        self.ensure()
        lock = FileLock(self.path / ".locks" / "python-environment.lock")
        if not lock.acquire(timeout):
            raise AgentBusyError(f"another install held the Python environment for more than {timeout:g} s")
        return lock

    def work_path(self, kind: str, identity: str) -> Path:
        """A fresh, unused path ``.<kind>-<identity>-<hex>`` inside the folder (not created)."""
        self.ensure()
        return self.path / f".{kind}-{identity}-{secrets.token_hex(4)}"

    def activate(self, work: Path, identity: str) -> Path | None:
        """Move the built directory ``work`` to ``agents/<identity>``.

        An existing directory is first renamed to an ``.old-`` folder, whose path is returned so the
        caller can delete it once done; None when there was none. Each rename is atomic.
        """
        target = self.path / identity
        old: Path | None = None
        if target.exists():
            old = self.work_path("old", identity)
            os.rename(target, old)
        try:
            os.rename(work, target)
        except OSError:
            if old is not None:
                os.rename(old, target)
            raise
        fsync_directory(self.path)
        return old

    def discard(self, path: Path | None) -> None:
        """Delete a work folder (ignores one that is already gone)."""
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def removing(self, directory: AgentDirectory) -> Iterator[Path]:
        """Rename ``directory`` out of sight for removal; it is deleted when the block succeeds."""
        away = self.work_path("removing", directory.identity)
        os.rename(directory.path, away)
        try:
            yield away
        except BaseException:
            if not directory.path.exists():
                os.rename(away, directory.path)
            raise
        shutil.rmtree(away, ignore_errors=True)

    def recover(self) -> list[str]:
        """Undo what an interrupted install, reinstall or removal left behind; returns what was done.

        ``.new-`` and ``.removing-`` folders are deleted (a removal is completed); an ``.old-`` folder
        whose identity has no directory is put back (a crash between the two renames of a swap),
        else deleted. Folders of
        an identity whose lock is held (an install in progress) are left alone.
        """
        done: list[str] = []
        if not self.path.is_dir():
            return done
        for entry in sorted(self.path.iterdir()):
            if not entry.name.startswith(_WORK_PREFIXES) or not entry.is_dir():
                continue
            kind, _, rest = entry.name[1:].partition("-")
            identity = rest.rsplit("-", 1)[0]
            try:
                lock = self.lock(identity)
            except AgentBusyError:
                continue
            try:
                target = self.path / identity
                if kind == "old" and identity and not target.exists():
                    os.rename(entry, target)
                    done.append(f"restored {identity} from {entry.name}")
                else:
                    shutil.rmtree(entry, ignore_errors=True)
                    done.append(f"deleted {entry.name}")
            finally:
                lock.release()
        for line in done:
            _log.warning("agents folder recovery: %s", line)
        return done
