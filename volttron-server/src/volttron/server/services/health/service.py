"""The platform health service, ``platform.health`` (docs/protocol.md §2.9, §3.5, §8.5 item 7).

An agent inside the platform process, connected to ``inproc://vip``. It learns every peer from the
router (the peer list at each welcome, then the peerlist ``add``/``drop`` notices) and subscribes to
the ``heartbeat/`` prefix, where every agent publishes ``heartbeat/<identity>`` with its health status
(docs/protocol.md §2.8). (Not ``heartbeat``: a prefix ending mid-word binds the RabbitMQ router's pub/sub
queue to every publish, see :mod:`volttron.server.router.rmq.pubsub_bindings`.)
The table and the rules (stale after missed heartbeats, disconnected peers) are in
:mod:`~volttron.server.services.health.tracker`.

RPC methods::

    get_platform_health() -> {identity: entry}      # every peer but control.connection
    get_agent_health(identity) -> entry             # RemoteError(UnknownPeerError) if never seen

    entry = {"peer", "service_agent", "connected", "disconnected", "last_heartbeat", "message",
             "heartbeat_period", "state": "connected"|"stale"|"disconnected",
             "status": "GOOD"|"BAD"|"UNKNOWN"|"STARTING", "context"}

A heartbeat's ``heartbeat_period`` header, when present, is the agent's own period (see the
tracker's stale rule). The heartbeat is credited to the publishing peer (the ``sender`` the router
stamps), not to the identity in the topic, so no agent can report health for another.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import gevent

from volttron.client.known_identities import CONTROL_CONNECTION, LEGACY_ALIASES, PROCESS_IDENTITIES
from volttron.client.vip.agent import RPC, Agent, PubSub, VIPError
from volttron.client.vip.agent.clock import SYSTEM_CLOCK, Clock
from volttron.client.vip.agent.subsystems.heartbeat import PERIOD_HEADER
from volttron.server.context import PlatformContext
from volttron.server.identities import PLATFORM_HEALTH
from volttron.server.services.base import InProcessService
from volttron.server.services.health.tracker import HealthTracker, StaleRule
from volttron.utils.errors import VolttronError
from volttron.utils.time import format_timestamp

_log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "heartbeat/"
EXCLUDED = (CONTROL_CONNECTION,)
"""Identities left out of :meth:`HealthAgent.get_platform_health` (vctl's short-lived connection)."""
SERVICE_IDENTITIES = PROCESS_IDENTITIES | frozenset(LEGACY_ALIASES)


class HealthServiceError(VolttronError):
    """The health service could not join the platform."""


class HealthAgent(Agent):
    """The ``platform.health`` agent; see the module docstring."""

    LIST_TIMEOUT = 10.0

    def __init__(self, tracker: HealthTracker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracker = tracker
        self.vip.peerlist.onadd.connect(self._peer_added, self)
        self.vip.peerlist.ondrop.connect(self._peer_dropped, self)
        self.core.onconnected.connect(self._connected, self)

    # -- what the router tells us ------------------------------------------------------------------
    def _connected(self, sender: Any, **kwargs: Any) -> None:
        self.core.spawn(self._list_peers)

    def _list_peers(self) -> None:
        try:
            peers = self.vip.peerlist.list().get(timeout=self.LIST_TIMEOUT)
        except (VIPError, gevent.Timeout) as exc:
            _log.warning("could not list the platform's peers: %s; tracking peers as they come", exc)
            return
        self.tracker.peers_listed(peers)

    def _peer_added(self, sender: Any, peer: str = "", **kwargs: Any) -> None:
        self.tracker.peer_connected(peer)

    def _peer_dropped(self, sender: Any, peer: str = "", **kwargs: Any) -> None:
        self.tracker.peer_dropped(peer)

    @PubSub.subscribe("pubsub", HEARTBEAT_PREFIX)
    def _on_heartbeat(self, peer: str, sender: str, bus: str, topic: str, headers: dict,
                      message: Any) -> None:
        period = headers.get(PERIOD_HEADER) if isinstance(headers, dict) else None
        self.tracker.heartbeat(sender, message, period)

    # -- RPC -----------------------------------------------------------------------------------
    @RPC.export
    def get_platform_health(self) -> dict[str, dict[str, Any]]:
        """``{identity: entry}`` for every peer the platform has (and recently had), bar vctl's."""
        return self.tracker.report(exclude=EXCLUDED)

    @RPC.export
    def get_agent_health(self, identity: str) -> dict[str, Any]:
        """The entry of one peer; raises :class:`UnknownPeerError` for an identity never seen."""
        if not isinstance(identity, str):
            raise TypeError(f"identity must be a string, not {type(identity).__name__}")
        return self.tracker.entry(identity)


class HealthService(InProcessService):
    """Runs :class:`HealthAgent` in the platform process (a :class:`PlatformService`)."""

    identity = PLATFORM_HEALTH
    title = "the health service"
    error = HealthServiceError

    def __init__(self, context: PlatformContext, rule: StaleRule | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(context)
        self.clock = clock
        """The one clock of the service: its agent's timers and the tracker's staleness follow it."""
        self.tracker = HealthTracker(SERVICE_IDENTITIES, rule, monotonic=clock.monotonic,
                                     timestamp=lambda: format_timestamp(
                                         datetime.fromtimestamp(clock.time(), timezone.utc)))

    def start(self) -> None:
        """Connect to the router and wait for the welcome; :class:`HealthServiceError` if it fails."""
        self.connect(HealthAgent, tracker=self.tracker, heartbeat_autostart=True, clock=self.clock)
        _log.debug("health service started as %s", PLATFORM_HEALTH)

    def statistics(self) -> dict[str, int]:
        """Counts of peers by state and heartbeats heard."""
        return self.tracker.statistics()


def health_service(context: PlatformContext) -> HealthService:
    """The service factory for :func:`volttron.server.main.default_services`."""
    return HealthService(context)
