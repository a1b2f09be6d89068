"""The control service in the platform process: its agent, its AIP, autostart and shutdown.

:class:`ControlService` is a service factory (``ControlService(context)``) for
:func:`volttron.server.main.default_services`. ``start()`` connects the ``platform.control`` agent
to ``inproc://vip`` and starts the enabled agents, lowest priority number first, in a greenlet of
their own. ``stop()`` stops every agent process (SIGINT, SIGTERM, SIGKILL to its process group,
all within the platform's stop budget for a service), then the control agent.

Capability checks (``@RPC.allow``) read ``auth.json`` directly through
:class:`~volttron.server.services.auth.policy.AuthPolicy`: the control service lives beside the
file, and must not depend on the auth service being up to refuse an installed agent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gevent

from volttron.client.known_identities import CONTROL
from volttron.client.runner import build_agent
from volttron.server.aip.installer import InstallerSettings
from volttron.server.aip.platform_agents import AIPConfig, AIPPlatform
from volttron.server.aip.supervisor import SupervisorPolicy
from volttron.server.context import PlatformContext
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.control.agent import ControlAgent
from volttron.server.services.control.transfer import TransferLimits
from volttron.utils.home import auth_file_path

_log = logging.getLogger(__name__)


def _stop_budget_policy() -> SupervisorPolicy:
    # SIGINT, SIGTERM and SIGKILL graces add up to less than Platform.SERVICE_STOP_TIMEOUT (10 s),
    # so a platform stop never leaves an agent process behind.
    return SupervisorPolicy(sigint_grace=5.0, sigterm_grace=2.0, sigkill_grace=1.5)


@dataclass(frozen=True)
class ControlSettings:
    """Limits of the control service."""

    supervisor: SupervisorPolicy = field(default_factory=_stop_budget_policy)
    transfer: TransferLimits = field(default_factory=TransferLimits)
    connect_timeout: float = 10.0
    autostart: bool = True


class ControlService:
    """``platform.control``; see the module docstring."""

    def __init__(self, context: PlatformContext, settings: ControlSettings | None = None) -> None:
        self.context = context
        self.settings = settings or ControlSettings()
        self.aip: AIPPlatform | None = None
        self.agent: ControlAgent | None = None
        self._autostart: gevent.Greenlet | None = None

    def start(self) -> None:
        """Make the AIP, connect the control agent and begin autostarting agents."""
        ctx = self.context
        self.aip = AIPPlatform(
            AIPConfig(
                volttron_home=ctx.home,
                message_bus=ctx.message_bus,
                vip_address=ctx.local_address,
                serverkey=ctx.serverkey,
                supervisor=self.settings.supervisor,
                secure_agent_users=ctx.secure_agent_users,
                installer=InstallerSettings(isolate_by_default=ctx.isolate_agents),
            )
        )
        self.agent = build_agent(
            address=ctx.router_address,
            identity=CONTROL,
            agent_class=ControlAgent,
            timeout=self.settings.connect_timeout,
            context=ctx.zmq_context,
            volttron_home=str(ctx.home),
            enable_channel=True,
            enable_auth=ctx.auth_enabled,
            aip=self.aip,
            platform_serverkey=ctx.serverkey,
            request_stop=ctx.request_stop,
            transfer=self.settings.transfer,
            work_home=ctx.home,
        )
        if ctx.auth_enabled:
            source = _FileCapabilities(AuthPolicy(auth_file_path(ctx.home)))
            self.agent.vip.rpc.set_capability_source(source)
            self.agent.capabilities = source  # what a caller without the control capability sees
        if self.settings.autostart:
            self._autostart = gevent.spawn(self._start_enabled_agents)

    def _start_enabled_agents(self) -> None:
        assert self.aip is not None
        started = self.aip.autostart()
        if started:
            _log.info("autostarted %d agent(s): %s", len(started), ", ".join(started))

    def stop(self) -> None:
        """Stop every agent, then the control agent."""
        if self._autostart is not None:
            self._autostart.kill(block=True, timeout=1.0)
            self._autostart = None
        if self.aip is not None:
            left = self.aip.shutdown()
            if left:
                _log.error("agents still running after the platform stop: %s", ", ".join(left))
        if self.agent is not None:
            self.agent.core.stop(timeout=2.0)
            self.agent = None

    def statistics(self) -> dict[str, Any]:
        """Agent counts and process states, for diagnostics."""
        return self.aip.statistics() if self.aip is not None else {}

    def __repr__(self) -> str:
        return f"ControlService({CONTROL})"


class _FileCapabilities:
    """``user -> capabilities`` from the current ``auth.json`` (re-read when it changes)."""

    def __init__(self, policy: AuthPolicy) -> None:
        self.policy = policy

    def __call__(self, user: str) -> Mapping[str, Any]:
        return self.policy.capabilities().get(user, {})
