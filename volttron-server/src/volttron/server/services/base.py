"""What every in-process service repeats: connect its agent to the router, stop it, its capabilities.

The platform's own services (``platform.auth``, ``platform.config_store``, ``platform.control``,
``platform.health``, ``platform.web``) are agents that run in the platform process and reach the
router over ``inproc://vip``. :class:`InProcessService` holds what they share:

* :meth:`InProcessService.connect` starts the agent with the platform's settings (address, ZeroMQ
  context, home, instance name, authentication) and maps a failure to the service's own error class
  with one line naming the service;
* :meth:`InProcessService.capability_source` reads callers' capabilities from ``auth.json`` (re-read
  when it changes), or gives None when the file cannot be read (then capability-protected methods
  are refused, never allowed);
* :meth:`InProcessService.stop` stops the agent, and ``statistics``/``repr`` have defaults.

A subclass sets :attr:`identity`, :attr:`title` and :attr:`error` and implements ``start``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from volttron.client.runner import build_agent
from volttron.client.vip.agent import Agent
from volttron.server.context import PlatformContext
from volttron.server.services.auth.policy import AuthPolicy
from volttron.utils.errors import VolttronError
from volttron.utils.home import auth_file_path

_log = logging.getLogger(__name__)

CapabilitySource = Callable[[str], Mapping[str, Any]]
"""``user -> {capability: parameters}``, as ``@RPC.allow`` checks need it."""


class InProcessService:
    """Base of the services that run an agent inside the platform process (a ``PlatformService``)."""

    identity: ClassVar[str] = ""
    """The service's VIP identity."""
    title: ClassVar[str] = "service"
    """How log lines and errors name it ("the configuration store")."""
    error: ClassVar[type[VolttronError]] = VolttronError
    """The error :meth:`connect` raises."""
    START_TIMEOUT: ClassVar[float] = 10.0
    STOP_TIMEOUT: ClassVar[float] = 5.0

    def __init__(self, context: PlatformContext) -> None:
        self.context = context
        self.agent: Any = None

    def start(self) -> None:  # pragma: no cover - every service implements it
        """Connect and begin serving; return promptly."""
        raise NotImplementedError

    def connect(self, agent_class: Callable[..., Agent], **kwargs: Any) -> Any:
        """Start ``agent_class`` on the router as :attr:`identity` and wait for its welcome.

        ``kwargs`` go to the agent (and override the defaults: no config store, no heartbeat,
        authentication as the platform has it). Raises :attr:`error` naming the service on failure.
        """
        ctx = self.context
        options: dict[str, Any] = {
            "identity": self.identity,
            "address": ctx.router_address,
            "context": ctx.zmq_context,
            "volttron_home": str(ctx.home),
            "instance_name": ctx.instance_name,
            "message_bus": "zmq",
            "enable_store": False,
            "heartbeat_autostart": False,
            "enable_auth": ctx.auth_enabled,
            "timeout": self.START_TIMEOUT,
        }
        options.update(kwargs)
        try:
            self.agent = build_agent(agent_class=agent_class, **options)
        except VolttronError as exc:
            raise self.error(f"{self.title} could not connect as {self.identity}: {exc}") from None
        return self.agent

    def capability_source(self) -> CapabilitySource | None:
        """Callers' capabilities from ``auth.json``; None (and an error logged) when it cannot be read."""
        try:
            policy = AuthPolicy(auth_file_path(self.context.home))
        except VolttronError as exc:
            _log.error("%s: cannot read the auth policy (%s); capability-protected methods are refused",
                       self.title, exc)
            return None
        return FileCapabilities(policy)

    def stop(self) -> None:
        """Stop the agent (waiting at most :attr:`STOP_TIMEOUT` seconds)."""
        agent, self.agent = self.agent, None
        if agent is not None:
            agent.core.stop(timeout=self.STOP_TIMEOUT)

    def statistics(self) -> dict[str, Any]:
        """Counts for diagnostics (the agent's, when it has them)."""
        stats = getattr(self.agent, "statistics", None)
        return stats() if callable(stats) else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"


class FileCapabilities:
    """``user -> capabilities`` from the current ``auth.json`` (re-read when it changes)."""

    def __init__(self, policy: AuthPolicy) -> None:
        self.policy = policy

    def __call__(self, user: str) -> Mapping[str, Any]:
        return self.policy.capabilities().get(user, {})
