"""What the platform hands its in-process services, in a module that imports no service.

Services (auth, config store, control, health, web) are built by a :data:`ServiceFactory` from a
:class:`PlatformContext`; the platform (:mod:`volttron.server.platform`) makes the context and
runs the services. Keeping these types here lets services depend on them without importing the
platform, which imports the services' parts it wires into the router.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class PlatformContext:
    """What an in-process service gets from the platform."""

    home: Path
    instance_name: str
    router_address: str
    """``inproc://vip``: services connect here, without authentication."""
    zmq_context: Any
    """The ``zmq.green.Context`` in which ``router_address`` lives (inproc needs the same context)."""
    serverkey: str | None
    """The platform's public key (None with authentication disabled)."""
    local_address: str
    addresses: tuple[str, ...]
    auth_enabled: bool
    message_bus: str
    request_stop: Callable[[], None]
    """Ask the platform to shut down (as a ``quit`` from the control service does)."""
    secure_agent_users: bool = False
    """Secure mode: each agent runs as its own system user (:mod:`.aip.agent_users`)."""
    isolate_agents: bool = False
    """Agents are installed into environments of their own by default (:mod:`.aip.isolation`)."""


class PlatformService(Protocol):
    """What a service factory returns."""

    def start(self) -> None:
        """Connect and begin serving; return promptly."""

    def stop(self) -> None:
        """Stop serving and close connections."""


ServiceFactory = Callable[[PlatformContext], PlatformService]
