"""The AIP's one entry point for the control service: install, remove, run and describe agents.

Every method takes an agent reference ``ref``: a full UUID, an identity, or a unique UUID prefix.
Results are plain JSON-ready values, ready to return over RPC (docs/protocol.md §3.3 shapes where the
control service has one). Methods run in the gevent hub's thread; ``install`` and ``remove`` run pip,
which is cooperative when the server has monkey-patched ``subprocess`` (its entry point does).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from volttron.server.aip.agent_dir import DEFAULT_PRIORITY, AgentDirectory, check_priority, check_tag
from volttron.server.aip.agent_users import AgentUsers, secure_agent_directory, secure_agents_folder
from volttron.server.aip.agents_folder import AgentsFolder
from volttron.server.aip.auth_entries import AgentHooks, AuthFileHooks
from volttron.server.aip.environment import PythonEnvironment
from volttron.server.aip.errors import AIPError
from volttron.server.aip.installer import AgentInstaller, InstallerSettings, ProgressCallback
from volttron.server.aip.isolation import environment_of
from volttron.server.aip.launcher import LaunchSettings, LaunchSpec, build_launch_spec
from volttron.server.aip.supervisor import AgentState, AgentSupervisor, SpecFactory, SupervisorPolicy
from volttron.utils.home import platform_keystore_path
from volttron.utils.keystore import KeyStore

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AIPConfig:
    """How the platform installs and runs its agents."""

    volttron_home: Path
    message_bus: str = "zmq"
    vip_address: str | None = None
    """Given to agents as ``VOLTTRON_VIP_ADDR``."""
    serverkey: str | None = None
    """The platform's public key for ``VOLTTRON_SERVERKEY``; read from ``$VOLTTRON_HOME/keystore`` if None."""
    base_env: Mapping[str, str] | None = None
    """The environment agents inherit; a snapshot of ``os.environ`` taken at construction if None."""
    installer: InstallerSettings = field(default_factory=InstallerSettings)
    supervisor: SupervisorPolicy = field(default_factory=SupervisorPolicy)
    secure_agent_users: bool = False
    """Secure mode: each agent gets its own system user and runs as it (needs root)."""


class AIPPlatform:
    """Agent installation and processes of one platform home."""

    def __init__(
        self, config: AIPConfig, hooks: AgentHooks | None = None, environment: PythonEnvironment | None = None
    ) -> None:
        home = Path(config.volttron_home)
        self.config = config
        self.folder = AgentsFolder(home)
        self.folder.ensure()
        self.folder.recover()
        self.users: AgentUsers | None = None
        if config.secure_agent_users:
            self.users = AgentUsers(home)
            secure_agents_folder(self.folder.path)
            self.users.remove_stale(d.user for d in self.folder.directories() if d.user)
        self.hooks: AgentHooks = hooks if hooks is not None else AuthFileHooks(home)
        base_env = dict(os.environ if config.base_env is None else config.base_env)
        self.launch_settings = LaunchSettings(
            volttron_home=home,
            message_bus=config.message_bus,
            vip_address=config.vip_address,
            serverkey=config.serverkey or _platform_serverkey(home),
            base_env=base_env,
        )
        self.supervisor = AgentSupervisor(config.supervisor)
        self.installer = AgentInstaller(
            self.folder,
            environment or PythonEnvironment(env=base_env),
            self.hooks,
            config.installer,
            users=self.users,
        )
        used = {name for d in self.folder.directories() if (name := environment_of(d))}
        for name in self.installer.environments.prune(used):
            _log.warning("removed the environment %s, which no agent uses (an install was interrupted)", name)

    # ----- installing

    def install(
        self,
        source: str | os.PathLike[str],
        *,
        vip_identity: str | None = None,
        tag: str | None = None,
        config: str | Mapping[str, Any] | None = None,
        priority: str | int | None = None,
        enable: bool = False,
        force: bool = False,
        pre: bool = False,
        start: bool = False,
        progress: ProgressCallback | None = None,
        isolated: bool | None = None,
    ) -> dict[str, Any]:
        """Install an agent from a wheel file, a source directory or a package name (see ``installer``).

        ``isolated``: True, its own environment; False, the platform's only; None, the platform's
        default (see :mod:`.installer`).

        ``enable`` without ``priority`` enables at priority 50. A forced reinstall of a running agent
        stops it first and starts it again afterwards (also when the reinstall fails). Returns
        ``{"agent_uuid", "identity", "name", "version", "tag", "priority", "reinstalled", "changes",
        "notes", "environment", "started", "pid"}`` (``environment``: the agent's own, or None).
        """
        if enable and priority is None:
            priority = DEFAULT_PRIORITY
        was_running = False
        if force and vip_identity is not None and self.folder.get(vip_identity) is not None:
            was_running = self.supervisor.status(vip_identity).state is AgentState.RUNNING
            if was_running:
                self.supervisor.stop(vip_identity)
        try:
            result = self.installer.install(
                source,
                vip_identity=vip_identity,
                tag=tag,
                config=config,
                priority=priority,
                force=force,
                pre=pre,
                progress=progress,
                isolated=isolated,
            )
        except BaseException:
            if was_running and vip_identity is not None:
                self._start_quietly(vip_identity)
            raise
        record = result.record
        pid = None
        if start or was_running:
            pid = self.supervisor.start(record.identity, self._factory(record.identity)).pid
        return {
            "agent_uuid": record.uuid,
            "identity": record.identity,
            "name": record.name,
            "version": record.version,
            "tag": record.tag,
            "priority": record.priority,
            "reinstalled": result.reinstalled,
            "changes": [f"{c.name} {c.version}" for c in result.changes],
            "notes": list(result.notes),
            "environment": result.environment,
            "started": pid is not None,
            "pid": pid,
        }

    def remove(
        self, ref: str, remove_auth: bool = True, progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Stop and remove an agent; uninstall its code when it was the last instance.

        Returns ``{"agent_uuid", "identity", "name", "uninstalled": [...], "notes": [...]}``.
        """
        directory = self.folder.resolve(ref)
        self.supervisor.stop(directory.identity)
        result = self.installer.remove(directory, remove_auth=remove_auth, progress=progress)
        self.supervisor.forget(directory.identity)
        return {
            "agent_uuid": result.record.uuid,
            "identity": result.record.identity,
            "name": result.record.name,
            "uninstalled": list(result.uninstalled),
            "notes": list(result.notes),
        }

    # ----- running

    def start(self, ref: str) -> dict[str, Any]:
        """Start the agent (no-op when it runs); resets its crash count. Returns its status row."""
        directory = self.folder.resolve(ref)
        self.supervisor.start(directory.identity, self._factory(directory.identity))
        return self._status_row(directory)

    def stop(self, ref: str) -> dict[str, Any]:
        """Stop the agent (SIGINT, SIGTERM, SIGKILL). Returns its status row."""
        directory = self.folder.resolve(ref)
        self.supervisor.stop(directory.identity)
        return self._status_row(directory)

    def restart(self, ref: str) -> dict[str, Any]:
        """Stop the agent if it runs, then start it. Returns its status row."""
        directory = self.folder.resolve(ref)
        self.supervisor.restart(directory.identity, self._factory(directory.identity))
        return self._status_row(directory)

    def autostart(self) -> list[str]:
        """Start every enabled agent, lowest priority number first; returns the identities started."""
        enabled = [d for d in self.folder.directories() if d.priority is not None]
        enabled.sort(key=lambda d: (int(d.priority or DEFAULT_PRIORITY), d.identity))
        started = []
        for directory in enabled:
            try:
                self.supervisor.start(directory.identity, self._factory(directory.identity))
                started.append(directory.identity)
            except AIPError as exc:
                _log.error("autostart of %s failed: %s", directory.identity, exc)
        return started

    def shutdown(self) -> list[str]:
        """Stop every agent; returns the identities that would not stop (normally none)."""
        return self.supervisor.shutdown()

    # ----- changing

    def tag(self, ref: str, tag: str | None) -> dict[str, Any]:
        """Set (or with None remove) the agent's tag. Returns its list entry."""
        directory = self.folder.resolve(ref)
        directory.set_tag(check_tag(tag))
        return directory.record().as_list_entry()

    def enable(self, ref: str, priority: str | int = DEFAULT_PRIORITY) -> dict[str, Any]:
        """Start the agent with the platform, at ``priority`` 0..99 (lower first). Returns its list entry."""
        directory = self.folder.resolve(ref)
        directory.set_priority(check_priority(priority))
        return directory.record().as_list_entry()

    def disable(self, ref: str) -> dict[str, Any]:
        """Do not start the agent with the platform. Returns its list entry."""
        directory = self.folder.resolve(ref)
        directory.set_priority(None)
        return directory.record().as_list_entry()

    def prioritize(self, ref: str, priority: str | int | None = DEFAULT_PRIORITY) -> dict[str, Any]:
        """``prioritize_agent`` (docs/protocol.md §3.3): a priority enables, None disables."""
        return self.disable(ref) if priority is None else self.enable(ref, priority)

    # ----- describing

    def list_agents(self) -> list[dict[str, Any]]:
        """``[{"name", "uuid", "tag", "priority", "identity"}]`` of every installed agent."""
        return [d.record().as_list_entry() for d in self.folder.directories()]

    def status(self) -> list[dict[str, Any]]:
        """One row per installed agent; see :meth:`agent_status_row`."""
        return [self._status_row(d) for d in self.folder.directories()]

    def agent_status_row(self, ref: str) -> dict[str, Any]:
        """One agent's row: ``{"uuid", "name", "version", "identity", "tag", "priority", "pid", "state",
        "returncode", "last_error", "crashes"}``, plus ``"user"`` in secure mode; ``state`` is running,
        stopped, stopping, restarting or FAILED."""
        return self._status_row(self.folder.resolve(ref))

    def status_agents(self, get_agent_user: bool = False) -> list[list[Any]]:
        """The control service's ``status_agents`` rows: ``[uuid, name, [pid, returncode], identity]``.

        With ``get_agent_user`` in secure mode, the agent's system user follows the name
        (docs/protocol.md §3.3).
        """
        rows = []
        for directory in self.folder.directories():
            status = self.supervisor.status(directory.identity)
            row: list[Any] = [
                directory.uuid, directory.name, [status.pid, status.returncode], directory.identity
            ]
            if get_agent_user and self.users is not None:
                row.insert(2, directory.user)
            rows.append(row)
        return rows

    def agent_status(self, ref: str) -> list[int | None]:
        """``[pid, returncode]`` of one agent (pid None when not running)."""
        status = self.supervisor.status(self.folder.resolve(ref).identity)
        return [status.pid, status.returncode]

    def identity_exists(self, identity: str) -> str | None:
        """The uuid of the agent installed under ``identity``, or None."""
        return self.folder.identity_exists(identity)

    def agent_uuid(self, ref: str) -> str:
        """The uuid of the agent ``ref`` names."""
        return self.folder.resolve(ref).uuid

    def agent_identity(self, ref: str) -> str:
        """The identity of the agent ``ref`` names (``agent_vip_identity``)."""
        return self.folder.resolve(ref).identity

    def agent_versions(self) -> dict[str, list[str | None]]:
        """``{uuid: [name, version]}`` of every installed agent."""
        return {d.uuid: [d.name, d.version] for d in self.folder.directories()}

    def agent_publickey(self, ref: str) -> str:
        """The public key of the agent ``ref`` names."""
        return self.folder.resolve(ref).keys().public

    def get_all_agent_publickeys(self) -> dict[str, str]:
        """``{identity: publickey}`` of every installed agent."""
        return {d.identity: d.keys().public for d in self.folder.directories()}

    def statistics(self) -> dict[str, Any]:
        """Counts and per-agent process states, for diagnostics."""
        rows = self.status()
        states: dict[str, int] = {}
        for row in rows:
            states[row["state"]] = states.get(row["state"], 0) + 1
        return {"installed": len(rows), "states": states, "processes": self.supervisor.statistics()}

    # ----- helpers

    def _factory(self, identity: str) -> SpecFactory:
        def make() -> LaunchSpec:
            directory = self.folder.get(identity)
            if directory is None:
                raise AIPError(f"{identity} is no longer installed")
            settings = self.launch_settings
            if settings.serverkey is None:  # the platform may have made its keys after we started
                settings = replace(settings, serverkey=_platform_serverkey(settings.volttron_home))
            return build_launch_spec(directory, settings, user=self._agent_user(directory))

        return make

    def _agent_user(self, directory: AgentDirectory) -> str | None:
        """Secure mode: the agent's user, its part of the directory re-applied; made for an agent
        installed before secure mode was on. None outside secure mode."""
        if self.users is None:
            return None
        user = directory.user
        if user is None:
            user = self.users.create(directory.identity, directory.data_dir)
            directory.set_user(user)
            secure_agent_directory(directory, user, recursive=True)
            return user
        secure_agent_directory(directory, user)
        return user

    def _start_quietly(self, identity: str) -> None:
        try:
            self.supervisor.start(identity, self._factory(identity))
        except AIPError as exc:
            _log.error("could not restart %s after a failed reinstall: %s", identity, exc)

    def _status_row(self, directory: AgentDirectory) -> dict[str, Any]:
        record = directory.record()
        status = self.supervisor.status(directory.identity)
        row = {
            "uuid": record.uuid,
            "name": record.name,
            "version": record.version,
            "identity": record.identity,
            "tag": record.tag,
            "priority": record.priority,
            "pid": status.pid,
            "state": status.state.value,
            "returncode": status.returncode,
            "last_error": status.last_error,
            "crashes": status.crashes,
        }
        if self.users is not None:
            row["user"] = directory.user
        return row


def _platform_serverkey(home: Path) -> str | None:
    store = KeyStore(platform_keystore_path(home))
    if not store.exists():
        return None
    return store.public
