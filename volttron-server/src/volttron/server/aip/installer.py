"""Installing and removing agents: one transaction per call, all or nothing.

An install goes through named steps; a failure raises :class:`AgentInstallError` whose ``step`` says
which, after undoing the earlier ones:

``input``     check identity, tag, priority and configuration (nothing touched yet)
``resolve``   get a wheel: the given file, a build of a source directory, or pip's wheel of a name
``check``     list the environment and ask pip what it would change (``--dry-run``, platform pinned),
              then check every file the planned wheels would write against the files installed
              distributions own (:mod:`.file_clash`)
``install``   ``pip install`` the wheel and its dependencies; or, isolated, make the agent's own
              environment and install there (:mod:`.isolation`)
``directory`` build the agent directory in a work folder (keys, uuid, config, data of a reinstall)
``user``      secure mode only: create the agent's system user (a reinstall keeps it) and hand it
              its part of the directory (:mod:`~volttron.server.aip.agent_users`)
``auth``      tell the hooks (default: add the agent's entry to ``auth.json``)
``activate``  rename the work folder into ``agents/<identity>`` (a reinstall swaps, keeping nothing old)

Only one install or removal of an identity runs at a time (a lock file per identity; a second one
gets :class:`AgentBusyError` at once) and changes to the Python environment are serialized. A
reinstall (``force``) keeps the agent's uuid, keys, ``data/``, and unless new ones are given its
config, tag and priority; the old directory is untouched until the final swap, so a failed reinstall
leaves the agent exactly as it was.

``isolated``: True installs into the agent's own environment, False only into the platform's
(refusing what would change it), None (the default unless :attr:`InstallerSettings.isolate_by_default`)
into the platform's when that changes none of its packages or files, else isolated, saying why.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volttron.client.packaging import (
    PackagingError,
    WheelInfo,
    build_wheel,
    check_wheel_compiles,
    inspect_wheel,
    normalize_name,
)
from volttron.server.aip.agent_dir import (
    AgentDirectory,
    AgentRecord,
    check_agent_identity,
    check_config_text,
    check_priority,
    check_tag,
)
from volttron.server.aip.agent_users import AgentUsers, secure_agent_directory
from volttron.server.aip.agents_folder import AgentsFolder
from volttron.server.aip.auth_entries import AgentHooks
from volttron.server.aip.environment import PipOptions, PlannedChange, PythonEnvironment
from volttron.server.aip.errors import (
    AgentBusyError,
    AgentInstallError,
    AIPError,
    DependencyConflictError,
    IdentityInUseError,
)
from volttron.server.aip.isolation import AgentEnvironments, environment_of, mark_environment
from volttron.server.aip.shared_check import check_shared_install
from volttron.server.aip.work_folder import work_folder
from volttron.utils.files import FileLock

ProgressCallback = Callable[[str, str], None]
"""``progress(step, message)``: called as each step starts or has something to say."""

_log = logging.getLogger(__name__)
_IDENTITY_ATTEMPTS = 100
_BARE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class InstallerSettings:
    """Limits and index settings of the installer."""

    pip: PipOptions = PipOptions()
    build_timeout: float = 600.0
    environment_lock_timeout: float = 900.0
    isolate_by_default: bool = False
    """Every agent in its own environment unless the install says otherwise (``--isolate-agents``)."""


@dataclass(frozen=True)
class InstallResult:
    """What an install did."""

    record: AgentRecord
    reinstalled: bool
    changes: tuple[PlannedChange, ...]
    """The distributions pip installed or replaced (empty when the code was already there)."""
    notes: tuple[str, ...] = ()
    environment: str | None = None
    """The folder of the agent's own environment; None when it runs in the platform's."""


@dataclass(frozen=True)
class RemoveResult:
    """What a removal did."""

    record: AgentRecord
    uninstalled: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Wanted:
    """The checked options of one install."""

    tag: str | None
    priority: str | None
    config_text: str | None
    force: bool
    pre: bool
    isolated: bool | None = None


class _Steps:
    """The current step name, and the progress callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.current = "input"
        self._callback = callback

    def enter(self, step: str, message: str) -> None:
        self.current = step
        self.say(message)

    def say(self, message: str) -> None:
        _log.info("install %s: %s", self.current, message)
        if self._callback is not None:
            self._callback(self.current, message)


class AgentInstaller:
    """Installs agents into the server's environment and ``$VOLTTRON_HOME/agents``."""

    def __init__(
        self,
        folder: AgentsFolder,
        environment: PythonEnvironment,
        hooks: AgentHooks,
        settings: InstallerSettings | None = None,
        users: AgentUsers | None = None,
        environments: AgentEnvironments | None = None,
    ) -> None:
        self.folder = folder
        self.environment = environment
        self.hooks = hooks
        self.settings = settings or InstallerSettings()
        self.users = users
        """Secure mode: each agent gets a system user. None: agents run as the platform's user."""
        self.environments = environments or AgentEnvironments(
            folder.path.parent, environment, self.settings.pip
        )

    # ----- install

    def install(
        self,
        source: str | os.PathLike[str],
        *,
        vip_identity: str | None = None,
        tag: str | None = None,
        config: str | Mapping[str, Any] | None = None,
        priority: str | int | None = None,
        force: bool = False,
        pre: bool = False,
        progress: ProgressCallback | None = None,
        isolated: bool | None = None,
    ) -> InstallResult:
        """Install the agent from ``source``: a wheel file, a source directory, or a requirement for pip.

        ``isolated``: see the module's documentation.

        Raises :class:`AgentInstallError` (``step`` names the failed step; nothing is left behind),
        :class:`IdentityInUseError`, :class:`AgentBusyError` or another :class:`AIPError`.
        """
        steps = _Steps(progress)
        wanted = _Wanted(
            tag=check_tag(tag),
            priority=check_priority(priority),
            config_text=_config_text(config),
            force=force,
            pre=pre,
            isolated=True if isolated is None and self.settings.isolate_by_default else isolated,
        )
        if vip_identity is not None:
            check_agent_identity(vip_identity)
        # In the home, not the system's temporary folder: a platform killed now leaves it where its
        # next start clears it (``folder.path`` is ``$VOLTTRON_HOME/agents``).
        work = work_folder(self.folder.path.parent)
        with tempfile.TemporaryDirectory(prefix="volttron-install-", dir=work) as tmp:
            info = self._resolve(str(source), Path(tmp), pre, steps)
            lock, identity = self._claim_identity(vip_identity, info)
            try:
                existing = self.folder.get(identity)
                if existing is not None and not force:
                    raise IdentityInUseError(
                        f"an agent with identity {identity!r} is already installed (UUID {existing.uuid}); "
                        "pass --force to reinstall it"
                    )
                env_lock = self.folder.environment_lock(self.settings.environment_lock_timeout)
                try:
                    return self._install_claimed(info, identity, existing, Path(tmp), steps, wanted)
                finally:
                    env_lock.release()
            finally:
                lock.release()

    def _resolve(self, source: str, tmp: Path, pre: bool, steps: _Steps) -> WheelInfo:
        steps.enter("resolve", f"finding the agent in {source}")
        path = Path(source).expanduser()
        try:
            if path.is_dir():
                steps.say(f"building a wheel from the source directory {path}")
                wheel = build_wheel(path, tmp / "built", self.settings.build_timeout, progress=steps.say)
            elif path.exists():
                wheel = path
            elif _looks_like_path(source):
                raise AgentInstallError(f"{source}: no such file or directory", "resolve")
            elif (editable := self._editable_info(source)) is not None:
                steps.say(f"{editable.name} is installed in development (editable) mode; using that code")
                return editable
            else:
                steps.say(f"getting {source} from the package index")
                (tmp / "fetched").mkdir()
                wheel = self.environment.fetch_wheel(source, tmp / "fetched", self.settings.pip, pre)
            info = inspect_wheel(wheel)
            # an agent that cannot compile could only crash-loop: refuse it with file:line now
            check_wheel_compiles(wheel)
        except PackagingError as exc:
            raise AgentInstallError(str(exc), "resolve") from exc
        steps.say(f"agent {info.name} {info.version}, launched by {info.agent_entry_point[2]}")  # type: ignore[index]
        return info

    def _editable_info(self, source: str) -> WheelInfo | None:
        """What a bare distribution name installed in editable mode declares (its code is used as is)."""
        if not _BARE_NAME.fullmatch(source):
            return None
        dist = self.environment.snapshot().installed.get(normalize_name(source))
        if dist is None or not dist.editable:
            return None
        groups: dict[str, dict[str, str]] = {}
        for entry in importlib.metadata.distribution(dist.display_name).entry_points:
            groups.setdefault(entry.group, {}).setdefault(entry.name, entry.value)
        info = WheelInfo(
            path=Path(dist.location or "."), name=dist.display_name, version=dist.version, entry_points=groups
        )
        if info.agent_entry_point is None:
            raise AgentInstallError(f"{dist.display_name} declares no agent entry point", "resolve")
        return info

    def _claim_identity(self, vip_identity: str | None, info: WheelInfo) -> tuple[FileLock, str]:
        if vip_identity is not None:
            return self.folder.lock(vip_identity), vip_identity
        taken: set[str] = set()
        for _ in range(_IDENTITY_ATTEMPTS):
            candidate = self.folder.default_identity(info.name, info.version, frozenset(taken))
            try:
                lock = self.folder.lock(candidate)
            except AgentBusyError:
                taken.add(candidate)
                continue
            if self.folder.get(candidate) is None:
                return lock, candidate
            lock.release()  # installed by someone else between our look and our lock
            taken.add(candidate)
        raise AgentBusyError(f"could not claim a free identity for {info.name}; too many concurrent installs")

    def _install_claimed(
        self,
        info: WheelInfo,
        identity: str,
        existing: AgentDirectory | None,
        tmp: Path,
        steps: _Steps,
        wanted: _Wanted,
    ) -> InstallResult:
        dist = normalize_name(info.name)
        steps.enter("check", f"checking what installing {info.name} {info.version} would change")
        snapshot = self.environment.snapshot()
        if dist in snapshot.core:
            raise AgentInstallError(f"{info.name} is part of the platform itself, not an agent", "check")
        installed = snapshot.installed.get(dist)
        changes: tuple[PlannedChange, ...] = ()
        notes: list[str] = []
        new_names: list[str] = []
        hooked = False
        created_user: str | None = None
        created_env: str | None = None
        env_name: str | None = None
        old_env = environment_of(existing) if existing is not None else None
        work: Path | None = None
        try:
            editable = installed is not None and installed.editable
            if editable and wanted.isolated is not True:
                notes.append(f"{info.name} is installed in development (editable) mode; its code is used")
                steps.say(notes[-1])
            else:
                # a reinstall keeps the agent's own environment unless told otherwise
                isolate = wanted.isolated is True or (wanted.isolated is None and old_env is not None)
                constraints = tmp / "constraints.txt"
                if not isolate:
                    try:
                        changes = check_shared_install(
                            self.environment, info, snapshot, constraints, tmp, self.settings.pip, wanted.pre
                        )
                    except DependencyConflictError as exc:
                        if wanted.isolated is False:
                            raise
                        isolate = True
                        reason = str(exc).splitlines()[0]
                        notes.append(f"installing {info.name} in its own environment: {reason}")
                        steps.say(notes[-1])
                if isolate:
                    changes = ()
                    env_name = self.environments.name_for(info.name)
                    if not self.environments.exists(env_name):
                        created_env = env_name
                    steps.enter("install", f"installing {info.name} {info.version} into its own environment "
                                f"{self.environments.path(env_name)}")
                    self._install_isolated(info, env_name, created_env is not None, wanted)
                else:
                    same = installed is not None and installed.version == info.version
                    reinstall_code = wanted.force and same
                    steps.enter("install", _describe(changes, reinstall_code, info))
                    new_names = [c.name for c in changes if c.installed_version is None]
                    self.environment.install(
                        str(info.path), constraints, self.settings.pip, wanted.pre, reinstall_code
                    )
            steps.enter("directory", f"creating the agent directory for {identity}")
            work = self.folder.work_path("new", identity)
            new_dir = self._populate(work, info, existing, wanted)
            mark_environment(new_dir, env_name)
            if self.users is not None:
                steps.enter("user", f"giving {identity} its own system user")
                user = existing.user if existing is not None else None
                if user is None or not self.users.exists(user):
                    user = created_user = self.users.create(identity, self.folder.path / identity / "data")
                new_dir.set_user(user)
                secure_agent_directory(new_dir, user, recursive=True)
                steps.say(f"{identity} runs as the system user {user}")
            steps.enter("auth", f"allowing {identity} to connect")
            self.hooks.on_agent_installed(identity, new_dir.keys().public)
            hooked = True
            steps.enter("activate", f"activating {identity}")
            old = self.folder.activate(work, identity)
            work = None
            self.folder.discard(old)
        except BaseException as exc:
            self._roll_back(work, identity, existing, hooked, new_names, created_user)
            if created_env is not None:
                self.environments.remove(created_env)
            if isinstance(exc, AgentInstallError):
                raise
            if isinstance(exc, (AIPError, OSError, ValueError)):
                raise AgentInstallError(
                    f"installing {identity} failed at step {steps.current}: {exc}", steps.current
                ) from exc
            raise
        record = AgentDirectory(self.folder.path / identity).record()
        if existing is not None:
            if old_env is None and (normalize_name(existing.name) != dist or env_name is not None):
                notes += self._uninstall_if_unused(existing.name)
            elif old_env is not None and old_env != env_name:
                notes += self._remove_environment_if_unused(old_env)
        steps.enter("done", f"installed {identity} (UUID {record.uuid})")
        return InstallResult(
            record=record, reinstalled=existing is not None, changes=changes, notes=tuple(notes),
            environment=str(self.environments.path(env_name)) if env_name else None,
        )

    def _install_isolated(self, info: WheelInfo, env_name: str, create: bool, wanted: _Wanted) -> None:
        if not info.path.is_file():
            raise AgentInstallError(
                f"{info.name} is installed in development (editable) mode; it runs in the platform's "
                "environment (give its folder or a wheel to install it isolated)", "install"
            )
        if create:
            self.environments.create(env_name)
        self.environments.install(env_name, info.path, wanted.pre, reinstall=None if create else info.name)

    def _remove_environment_if_unused(self, env_name: str) -> list[str]:
        users = [d.identity for d in self.folder.directories() if environment_of(d) == env_name]
        if users:
            return [f"the environment {env_name} is still used by {', '.join(users)}; kept"]
        self.environments.remove(env_name)
        return [f"removed the environment {self.environments.path(env_name)}"]

    def _populate(
        self, work: Path, info: WheelInfo, existing: AgentDirectory | None, wanted: _Wanted
    ) -> AgentDirectory:
        tag, priority, config_text = wanted.tag, wanted.priority, wanted.config_text
        keys = agent_uuid = None
        if existing is not None:
            keys, agent_uuid = existing.keys(), existing.uuid
            tag = tag if tag is not None else existing.tag
            priority = priority if priority is not None else existing.priority
            if config_text is None and existing.config_path is not None:
                config_text = existing.config_path.read_text(encoding="utf-8")
        new_dir = AgentDirectory.populate(
            work,
            name=info.name,
            version=info.version,
            keys=keys,
            tag=tag,
            agent_uuid=agent_uuid,
            config=config_text,
            priority=priority,
        )
        if existing is not None and existing.data_dir.is_dir():
            shutil.copytree(existing.data_dir, new_dir.data_dir, symlinks=True, dirs_exist_ok=True)
        return new_dir

    def _roll_back(
        self,
        work: Path | None,
        identity: str,
        existing: AgentDirectory | None,
        hooked: bool,
        new_names: list[str],
        created_user: str | None = None,
    ) -> None:
        self.folder.discard(work)
        if created_user is not None and self.users is not None:
            try:
                self.users.remove(created_user)
            except AIPError as exc:
                _log.error("rolling back %s: could not remove its system user: %s", identity, exc)
        if hooked and existing is None:
            try:
                self.hooks.on_agent_removed(identity)
            except AIPError as exc:
                _log.error("rolling back %s: could not remove its auth entry: %s", identity, exc)
        if new_names:
            result = self.environment.uninstall(new_names)
            if result is not None and result.returncode != 0:
                _log.error("rolling back %s: could not uninstall %s:\n%s", identity, new_names, result.tail())

    # ----- remove

    def remove(
        self,
        directory: AgentDirectory,
        uninstall: bool = True,
        remove_auth: bool = True,
        progress: ProgressCallback | None = None,
    ) -> RemoveResult:
        """Remove an installed agent (already stopped); uninstall its code if no other instance uses it.

        Platform packages and editable installs are never uninstalled. ``remove_auth`` False keeps
        the agent's auth entry (the hooks are not told).
        """
        steps = _Steps(progress)
        record = directory.record()
        lock = self.folder.lock(record.identity)
        try:
            steps.enter("remove", f"removing {record.identity} ({record.uuid})")
            user = directory.user
            env_name = environment_of(directory)
            with self.folder.removing(directory):
                if remove_auth:
                    self.hooks.on_agent_removed(record.identity)
            notes: list[str] = []
            if user is not None and self.users is not None:
                try:
                    self.users.remove(user)
                    notes.append(f"removed the system user {user}")
                except AIPError as exc:
                    _log.error("removing %s: %s", record.identity, exc)
                    notes.append(f"the system user {user} is left behind: {exc}")
            uninstalled: list[str] = []
            if uninstall and env_name is not None:
                env_lock = self.folder.environment_lock(self.settings.environment_lock_timeout)
                try:
                    notes += self._remove_environment_if_unused(env_name)
                finally:
                    env_lock.release()
            elif uninstall and record.name:
                env_lock = self.folder.environment_lock(self.settings.environment_lock_timeout)
                try:
                    notes += self._uninstall_if_unused(record.name, uninstalled)
                finally:
                    env_lock.release()
            for note in notes:
                steps.say(note)
        finally:
            lock.release()
        return RemoveResult(record=record, uninstalled=tuple(uninstalled), notes=tuple(notes))

    def _uninstall_if_unused(self, name: str, uninstalled: list[str] | None = None) -> list[str]:
        users = [d for d in self.folder.instances_of(name) if environment_of(d) is None]
        if users:
            return [f"{name} is still used by {', '.join(d.identity for d in users)}; kept installed"]
        snapshot = self.environment.snapshot()
        dist = snapshot.installed.get(normalize_name(name))
        if dist is None:
            return [f"{name} was not installed"]
        if dist.name in snapshot.core:
            return [f"{name} is a platform package; kept installed"]
        if dist.editable:
            return [f"{name} is installed in development (editable) mode; kept installed"]
        result = self.environment.uninstall([dist.display_name])
        if result is None or result.returncode != 0:
            tail = result.tail() if result else ""
            _log.error("could not uninstall %s:\n%s", name, tail)
            return [f"could not uninstall {name}: {tail}"]
        if uninstalled is not None:
            uninstalled.append(dist.display_name)
        return [f"uninstalled {dist.display_name} {dist.version}"]


def _config_text(config: str | Mapping[str, Any] | None) -> str | None:
    if config is None:
        return None
    if isinstance(config, Mapping):
        return json.dumps(dict(config), indent=2) + "\n"
    if isinstance(config, str):
        return check_config_text(config)
    raise AIPError(f"an agent configuration is text or a mapping, not {type(config).__name__}")


def _looks_like_path(source: str) -> bool:
    if "://" in source:
        return False
    return "/" in source or os.sep in source or source.startswith((".", "~")) or source.endswith(".whl")


def _describe(changes: tuple[PlannedChange, ...], reinstall_code: bool, info: WheelInfo) -> str:
    parts = [f"{c.name} {c.version}" for c in changes]
    if reinstall_code:
        parts.append(f"{info.name} {info.version} (reinstalled)")
    return "installing " + (", ".join(parts) if parts else "nothing new (already installed)")
