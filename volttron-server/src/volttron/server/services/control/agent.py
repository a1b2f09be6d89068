"""``platform.control``: the RPC face of agent installation and supervision (docs/protocol.md §3.3).

The methods and signatures of the modular platform (C10) are kept, so stock tools can drive us;
every ``uuid`` argument also accepts an identity or a unique UUID prefix. Beyond them, vctl uses
``install`` (one call that installs, tags, enables and starts, with progress), ``agent_status_rows``
(state, exit code and last error of every agent) and ``enable_agent``/``disable_agent``.

Methods that change anything require the capability :data:`CONTROL_CAPABILITY`, which the
platform grants ``control.connection`` (vctl) in ``auth.json`` and an installed agent does not
hold. Methods that only read are open to every peer, but a peer without that capability sees its
own agent only: the listings (``list_agents``, ``status_agents``, ``agent_status_rows``,
``agent_versions``, ``get_all_agent_publickeys``) hold its own row or nothing, and the methods
about one agent answer about its own and refuse any other reference (installed or not, so they
tell nothing). Which peers are connected is ``peerlist``'s, open to all as on the router.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent

from volttron.client.known_identities import CONTROL_CONNECTION
from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.capabilities import CapabilitySource, unauthorized
from volttron.client.vip.agent.subsystems.channel import VipChannel
from volttron.server.aip.platform_agents import AIPPlatform
from volttron.server.aip.supervisor import AgentState
from volttron.server.aip.work_folder import work_folder
from volttron.server.services.control.transfer import TransferLimits, check_wheel_filename, receive_file
from volttron.utils.errors import VolttronError

_log = logging.getLogger(__name__)

CONTROL_CAPABILITY = "allow_auth_modifications"
"""Required by every method that changes agents or stops the platform.

Installing an agent adds an ``auth.json`` entry for it (and removing one takes it away), so the
capability that guards changes to authentication guards agent management too. The platform gives
it to ``control.connection`` and to its own services, never to an installed agent.
"""

PROGRESS = "progress"
ALIVE = "alive"
KEEPALIVE_SECONDS = 5.0
STOP_DELAY_SECONDS = 0.2
_PATH_LIKE = re.compile(r"[/\\]|^[.~]")


class ControlError(VolttronError):
    """A request to the control service that cannot be carried out as given."""


class ControlAgent(Agent):
    """The control service's agent; one per platform, owning the platform's :class:`AIPPlatform`."""

    def __init__(
        self,
        aip: AIPPlatform,
        *,
        platform_serverkey: str | None,
        request_stop: Callable[[], None],
        transfer: TransferLimits | None = None,
        work_home: Path | None = None,
        **kwargs: Any,
    ) -> None:
        """``work_home``: the platform home, in whose work folder uploads land (:mod:`.aip.work_folder`,
        cleared at the next start if the platform dies meanwhile); None: the system's temporary folder."""
        super().__init__(**kwargs)
        self.aip = aip
        self._work_home = work_home
        self._serverkey = platform_serverkey
        self._request_stop = request_stop
        self._transfer = transfer or TransferLimits()
        self.capabilities: CapabilitySource | None = None
        """Where callers' capabilities are read (set when authentication is on; None: all see all)."""

    # ------------------------------------------------------------------ platform

    @RPC.export
    def peerlist(self) -> list[str]:
        """The identities connected to the platform, sorted."""
        return sorted(self.vip.peerlist().get(timeout=10))

    @RPC.export
    def serverkey(self) -> str | None:
        """The platform's public key (None with authentication disabled)."""
        return self._serverkey

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def shutdown(self) -> list[str]:
        """Stop every agent (the platform keeps running); returns those that would not stop."""
        return self.aip.shutdown()

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def stop_platform(self) -> None:
        """Stop the platform: every agent, then the services and the router."""
        _log.info("platform stop requested by %s", self._caller())
        # Give this answer a moment to leave before the services (this one too) go down.
        gevent.spawn_later(STOP_DELAY_SECONDS, self._request_stop)

    # ------------------------------------------------------------------ describing agents

    @RPC.export
    def list_agents(self) -> list[dict[str, Any]]:
        """``[{"name", "uuid", "tag", "priority", "identity"}]`` of every installed agent (see the module
        docstring for what a caller without :data:`CONTROL_CAPABILITY` sees)."""
        own = self._only_own()
        return [r for r in self.aip.list_agents() if own is None or r["identity"] == own]

    @RPC.export
    def status_agents(self, get_agent_user: bool = False) -> list[list[Any]]:
        """``[[uuid, name, [pid, returncode], identity]]``; in secure mode with ``get_agent_user`` the
        agent's system user follows the name."""
        own = self._only_own()
        return [r for r in self.aip.status_agents(get_agent_user) if own is None or r[-1] == own]

    @RPC.export
    def agent_status_rows(self) -> list[dict[str, Any]]:
        """Every agent's ``{"uuid", "name", "version", "identity", "tag", "priority", "pid", "state",
        "returncode", "last_error", "crashes"}``, plus ``"user"`` (its system user) in secure mode;
        ``state`` is running, stopped, stopping, restarting or FAILED."""
        own = self._only_own()
        return [r for r in self.aip.status() if own is None or r["identity"] == own]

    @RPC.export
    def agent_status(self, uuid: str) -> list[int | None]:
        """``[pid, returncode]`` of one agent."""
        return self.aip.agent_status(self._ref(uuid))

    @RPC.export
    def agent_name(self, uuid: str) -> str:
        """The distribution name of the agent's code."""
        return self.aip.folder.resolve(self._ref(uuid)).name

    @RPC.export
    def agent_version(self, uuid: str) -> str | None:
        """The version of the agent's code."""
        return self.aip.folder.resolve(self._ref(uuid)).version

    @RPC.export
    def agent_versions(self) -> dict[str, list[str | None]]:
        """``{uuid: [name, version]}``."""
        versions = self.aip.agent_versions()
        if self._only_own() is None:
            return versions
        own = self._own_uuid()
        return {uuid: row for uuid, row in versions.items() if uuid == own}

    @RPC.export
    def agent_priority(self, uuid: str) -> str | None:
        """The agent's start priority ``"NN"``, or None when it is not enabled."""
        return self.aip.folder.resolve(self._ref(uuid)).priority

    @RPC.export
    def agent_vip_identity(self, uuid: str) -> str:
        """The agent's VIP identity."""
        return self.aip.agent_identity(self._ref(uuid))

    @RPC.export
    def agent_uuid(self, uuid: str) -> str:
        """The full UUID of the agent a reference names."""
        return self.aip.agent_uuid(self._ref(uuid))

    @RPC.export
    def get_all_agent_publickeys(self) -> dict[str, str]:
        """``{identity: publickey}`` of every installed agent."""
        own = self._only_own()
        return {i: key for i, key in self.aip.get_all_agent_publickeys().items() if own is None or i == own}

    @RPC.export
    def identity_exists(self, identity: str) -> str | None:
        """The UUID of the agent installed under ``identity``, or None."""
        own = self._only_own()
        if own is not None and identity != own:
            raise self._refusal("identity_exists", identity)
        return self.aip.identity_exists(identity)

    # ------------------------------------------------------------------ running agents

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def start_agent(self, uuid: str) -> dict[str, Any]:
        """Start the agent unless it runs; returns its status row."""
        return self.aip.start(uuid)

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def stop_agent(self, uuid: str) -> dict[str, Any]:
        """Stop the agent and make the router forget its identity; returns its status row."""
        row = self.aip.stop(uuid)
        self._drop_peer(row["identity"])
        return row

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def restart_agent(self, uuid: str) -> dict[str, Any]:
        """Stop the agent if it runs, then start it; returns its status row."""
        return self.aip.restart(uuid)

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def clear_status(self, clear_all: bool = False) -> list[str]:
        """Forget the exit status of removed agents (``clear_all``: of every agent not running).

        A ``FAILED`` agent becomes ``stopped``. Returns the identities whose status was cleared.
        """
        supervisor = self.aip.supervisor
        cleared = []
        for identity, status in supervisor.statistics().items():
            if status["state"] in (AgentState.RUNNING.value, AgentState.STOPPING.value):
                continue
            if clear_all or self.aip.folder.get(identity) is None:
                supervisor.forget(identity)
                cleared.append(identity)
        return cleared

    # ------------------------------------------------------------------ changing agents

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def tag_agent(self, uuid: str, tag: str | None) -> dict[str, Any]:
        """Set the agent's tag (None or "" removes it); returns its list entry."""
        return self.aip.tag(uuid, tag)

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def prioritize_agent(self, uuid: str, priority: str | None = "50") -> dict[str, Any]:
        """Enable the agent at ``priority`` ("0".."99"), or disable it with None."""
        return self.aip.prioritize(uuid, priority)

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def enable_agent(self, uuid: str, priority: str | int = "50") -> dict[str, Any]:
        """Start the agent with the platform, at ``priority`` (lower first); returns its list entry."""
        return self.aip.enable(uuid, priority)

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def disable_agent(self, uuid: str) -> dict[str, Any]:
        """Do not start the agent with the platform; returns its list entry."""
        return self.aip.disable(uuid)

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def remove_agent(self, uuid: str, remove_auth: bool = True) -> dict[str, Any]:
        """Stop and remove the agent (its code too when no other instance uses it)."""
        identity = self.aip.agent_identity(uuid)
        result = self.aip.remove(uuid, remove_auth=remove_auth)
        self._drop_peer(identity)
        return result

    # ------------------------------------------------------------------ installing

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def install_agent(
        self,
        agent: str,
        channel_name: str | None,
        vip_identity: str | None = None,
        publickey: str | None = None,
        secretkey: str | None = None,
        force: bool = False,
        pre_release: bool = False,
        agent_config: str | dict[str, Any] | None = None,
    ) -> str:
        """Install ``agent`` (C10 form) and return its UUID.

        ``agent`` is a wheel file name whose content the caller sends over the channel
        ``channel_name``, or (``channel_name`` null) a package name pip resolves on this host.
        The platform makes the agent's keys: given ``publickey``/``secretkey`` are ignored.
        """
        if publickey or secretkey:
            _log.warning("install_agent: keys given by %s are ignored; the platform makes the agent's keys",
                         self._caller())
        result = self.install(agent, channel_name, vip_identity=vip_identity, agent_config=agent_config,
                              force=force, pre_release=pre_release)
        return result["agent_uuid"]

    @RPC.export
    @RPC.allow(CONTROL_CAPABILITY)
    def install(
        self,
        agent: str,
        channel_name: str | None = None,
        vip_identity: str | None = None,
        tag: str | None = None,
        agent_config: str | dict[str, Any] | None = None,
        priority: str | int | None = None,
        enable: bool = False,
        start: bool = False,
        force: bool = False,
        pre_release: bool = False,
        progress_channel: str | None = None,
        isolated: bool | None = None,
    ) -> dict[str, Any]:
        """Install, and optionally tag, enable and start, an agent; returns the AIP's install report.

        ``agent`` and ``channel_name`` as for :meth:`install_agent`. With ``progress_channel``
        (which may be ``channel_name``) each step is sent to the caller on that channel as JSON
        ``["progress", step, message]`` while the install runs. ``isolated``: True installs into an
        environment of the agent's own, False into the platform's only, None lets the platform choose.
        """
        caller = self._caller()
        opened: dict[str, VipChannel] = {}
        keepalive = None
        try:
            progress = None
            if progress_channel:
                channel = self._open_channel(opened, caller, progress_channel)
                progress = _ProgressSender(channel)
                keepalive = self.core.spawn(progress.keep_alive, KEEPALIVE_SECONDS)
            uploads = work_folder(self._work_home) if self._work_home is not None else None
            with tempfile.TemporaryDirectory(prefix="volttron-upload-", dir=uploads) as tmp:
                if channel_name:
                    wheel = Path(tmp) / check_wheel_filename(agent)
                    source: Path | str = wheel
                    channel = self._open_channel(opened, caller, channel_name)
                    size = receive_file(channel, wheel, self._transfer)
                    if progress is not None:
                        progress("transfer", f"received {agent} ({size} bytes)")
                else:
                    source = _package_name(agent)
                _log.info("%s installs %s", caller, agent)
                return self.aip.install(
                    str(source), vip_identity=vip_identity, tag=tag, config=agent_config, priority=priority,
                    enable=enable, force=force, pre=pre_release, start=start, progress=progress,
                    isolated=isolated,
                )
        finally:
            if keepalive is not None:
                keepalive.kill(block=False)
            for channel in opened.values():
                channel.close()

    # ------------------------------------------------------------------ helpers

    def _only_own(self) -> str | None:
        """None when the caller may see every agent (it holds :data:`CONTROL_CAPABILITY`, or the call
        is not a peer's, or authentication is off); else its identity, the one agent it may see."""
        message = self.vip.rpc.context.vip_message
        if message is None or self.capabilities is None:
            return None
        try:
            held = self.capabilities(message.user)
        except Exception:  # noqa: BLE001 - capabilities it cannot learn: it holds none
            held = {}
        return None if CONTROL_CAPABILITY in held else message.peer

    def _own_uuid(self) -> str | None:
        own = self._only_own()
        directory = self.aip.folder.get(own) if own is not None else None
        return directory.uuid if directory is not None else None

    def _ref(self, ref: str) -> str:
        """``ref`` when the caller may ask about any agent; else its own agent's uuid if ``ref`` names
        it (its identity, uuid or a prefix of it), and a refusal for anything else, installed or not."""
        own = self._only_own()
        if own is None:
            return ref
        uuid = self._own_uuid()
        if uuid is not None and isinstance(ref, str) and ref and (ref == own or uuid.startswith(ref)):
            return uuid
        raise self._refusal("a method about an agent", ref)

    def _refusal(self, what: str, ref: Any) -> Exception:
        message = self.vip.rpc.context.vip_message
        user = message.user if message is not None else ""
        return unauthorized(f"{user!r} may ask {what} about its own agent only, not {ref!r} (others need "
                            f"{CONTROL_CAPABILITY})")

    def _caller(self) -> str:
        message = self.vip.rpc.context.vip_message
        return message.peer if message is not None else CONTROL_CONNECTION

    def _open_channel(self, opened: dict[str, VipChannel], peer: str, name: str) -> VipChannel:
        if name not in opened:
            channels = self.vip.channel
            assert channels is not None  # the control agent is built with enable_channel=True
            opened[name] = channels(peer, name)
        return opened[name]

    def _drop_peer(self, identity: str) -> None:
        """Tell the router to forget ``identity`` (an agent killed before it could say goodbye)."""
        try:
            self.core.send_vip("", "agentstop", [identity.encode("utf-8")])
        except VolttronError as exc:
            _log.debug("agentstop for %s not sent: %s", identity, exc)


class _ProgressSender:
    """The install's progress callback: each step to the caller, never failing the install."""

    def __init__(self, channel: VipChannel) -> None:
        self.channel = channel
        self.broken = False

    def __call__(self, step: str, message: str) -> None:
        self._send([PROGRESS, step, message])

    def keep_alive(self, period: float) -> None:
        """Send ``["alive"]`` every ``period`` seconds, so the caller can tell slow from stuck."""
        while not self.broken:
            gevent.sleep(period)
            self._send([ALIVE])

    def _send(self, message: list[str]) -> None:
        if self.broken:
            return
        try:
            self.channel.send(json.dumps(message).encode("utf-8"), timeout=5)
        except VolttronError as exc:
            self.broken = True  # the caller left; the install goes on
            _log.debug("progress to %s stopped: %s", self.channel.peer, exc)


def _package_name(agent: str) -> str:
    if not isinstance(agent, str) or not agent.strip():
        raise ControlError("name the agent to install: a wheel sent over a channel, or a package name")
    if agent.strip().startswith("-"):
        raise ControlError(f"{agent!r} is not a package name (pip options are not accepted here)")
    if _PATH_LIKE.search(agent.strip()) or agent.strip().endswith(".whl"):
        raise ControlError(
            f"{agent!r} looks like a file path; send the wheel over a channel (vctl install does) "
            "or give a package name"
        )
    return agent.strip()
