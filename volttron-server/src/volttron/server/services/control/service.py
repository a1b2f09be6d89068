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
from dataclasses import dataclass, field
from typing import Any

import gevent

from volttron.client.known_identities import CONTROL
from volttron.server.aip.installer import InstallerSettings
from volttron.server.aip.platform_agents import AIPConfig, AIPPlatform
from volttron.server.aip.supervisor import SupervisorPolicy
from volttron.server.context import PlatformContext
from volttron.server.services.base import InProcessService
from volttron.server.services.control.agent import ControlAgent
from volttron.server.services.control.transfer import TransferLimits
from volttron.utils.errors import VolttronError

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


class ControlServiceError(VolttronError):
    """The control service cannot start."""


class ControlService(InProcessService):
    """``platform.control``; see the module docstring."""

    identity = CONTROL
    title = "the control service"
    error = ControlServiceError
    STOP_TIMEOUT = 2.0

    def __init__(self, context: PlatformContext, settings: ControlSettings | None = None) -> None:
        super().__init__(context)
        self.settings = settings or ControlSettings()
        self.aip: AIPPlatform | None = None
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
        source = self.capability_source() if ctx.auth_enabled else None
        if ctx.auth_enabled and source is None:  # never serve without knowing who may do what
            raise self.error("the control service cannot read the auth policy (auth.json)")
        agent = self.connect(
            ControlAgent,
            timeout=self.settings.connect_timeout,
            enable_channel=True,
            aip=self.aip,
            platform_serverkey=ctx.serverkey,
            request_stop=ctx.request_stop,
            transfer=self.settings.transfer,
            work_home=ctx.home,
        )
        if source is not None:
            agent.vip.rpc.set_capability_source(source)
            agent.capabilities = source  # what a caller without the control capability sees
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
        super().stop()

    def statistics(self) -> dict[str, Any]:
        """Agent counts and process states, for diagnostics."""
        return self.aip.statistics() if self.aip is not None else {}
