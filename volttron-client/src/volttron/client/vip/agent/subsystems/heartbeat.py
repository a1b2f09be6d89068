"""The ``heartbeat`` subsystem (docs/protocol.md §2.8).

Every ``period`` seconds the agent publishes on ``heartbeat/<identity>`` with header
``TimeStamp`` (and ``heartbeat_period``: the period in seconds, so that the health service need
not guess it from intervals) and its health status string (``"GOOD"``...) as the message; the
platform's health service listens. Started at ``onstart`` when ``heartbeat_autostart`` (default),
restarted when the health status changes (so the change is announced at once). An autostarted
heartbeat begins once the initial configuration callbacks have run (at most
:data:`CONFIGURATION_WAIT` seconds later), so its first message already carries the period and
status the agent configured for itself. Its schedule and
its ``TimeStamp`` follow the agent's clock (``core.clock``). ``heartbeat.start``,
``start_with_period``, ``stop``, ``restart`` and ``set_period`` are exported over RPC.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from volttron.client.messaging.headers import TIMESTAMP
from volttron.client.messaging.health import Status, utc_timestamp
from volttron.client.messaging.topics import HEARTBEAT
from volttron.client.vip.agent.errors import VIPError
from volttron.client.vip.agent.scheduler import ScheduledEvent
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.utils.scheduling import periodic

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core
    from volttron.client.vip.agent.subsystems.health import Health
    from volttron.client.vip.agent.subsystems.pubsub import PubSub
    from volttron.client.vip.agent.subsystems.rpc import RPC

_log = logging.getLogger(__name__)

PERIOD_HEADER = "heartbeat_period"
"""The header that states the publishing agent's heartbeat period (seconds); extra to the reference."""
CONFIGURATION_WAIT = 30.0
"""Seconds an autostarted heartbeat waits for the initial configuration callbacks."""


class Heartbeat(SubsystemBase):
    """Periodic ``heartbeat/<identity>`` publications."""

    def __init__(
        self,
        core: Core,
        owner: Any,
        rpc: RPC,
        pubsub: PubSub,
        health: Health,
        heartbeat_autostart: bool = True,
        heartbeat_period: float = 60,
    ) -> None:
        super().__init__(core)
        self.owner = owner
        self._pubsub = pubsub
        self._health = health
        self.autostart = heartbeat_autostart
        self.period = self._check_period(heartbeat_period)
        self._event: ScheduledEvent | None = None
        self._told = False  # start or stop was asked for: autostart leaves it alone
        health.status.add_listener(self._status_changed)
        rpc.export(self.start, "heartbeat.start")
        rpc.export(self.start_with_period, "heartbeat.start_with_period")
        rpc.export(self.stop, "heartbeat.stop")
        rpc.export(self.restart, "heartbeat.restart")
        rpc.export(self.set_period, "heartbeat.set_period")

    @staticmethod
    def _check_period(period: Any) -> float:
        if isinstance(period, bool) or not isinstance(period, (int, float)) or period <= 0:
            raise ValueError(f"heartbeat period must be a positive number of seconds, not {period!r}")
        return float(period)

    @property
    def running(self) -> bool:
        """True while heartbeats are being published."""
        return self._event is not None and not self._event.finished

    def topic(self) -> str:
        """``heartbeat/<identity>``."""
        return str(HEARTBEAT(identity=self.core.identity))

    def on_start(self) -> None:
        if self.autostart:
            self.core.spawn(self._autostart)

    def _autostart(self) -> None:
        config = getattr(getattr(self.owner, "vip", None), "config", None)
        configured = getattr(config, "_initial_done", None)
        if configured is not None:
            self.core.clock.wait(configured, CONFIGURATION_WAIT)
        if not self._told:
            self.start()

    def on_connected(self) -> None:
        # back from an outage or a platform restart: say so now, not one period later, so the
        # health service does not show the agent as unknown meanwhile
        if self.running:
            self.restart()

    def on_stop(self) -> None:
        self.stop()

    def start(self) -> None:
        """Start publishing (the first heartbeat goes now); no-op when already running."""
        self._told = True
        if not self.running:
            self._event = self.core.schedule(periodic(self.period, start=self._now()), self.publish)

    def start_with_period(self, period: float) -> None:
        """Set the period and start."""
        self.set_period(period)
        self.start()

    def stop(self) -> None:
        """Stop publishing."""
        self._told = True
        if self._event is not None:
            self._event.cancel()
            self._event = None

    def restart(self) -> None:
        """Stop and start again (publishing at once)."""
        self.stop()
        self.start()

    def set_period(self, period: float) -> None:
        """Change the period; a running heartbeat restarts with it."""
        self.period = self._check_period(period)
        if self.running:
            self.restart()

    def publish(self) -> None:
        """Publish one heartbeat now."""
        try:
            self._pubsub.publish(
                "pubsub",
                self.topic(),
                headers={TIMESTAMP: utc_timestamp(self._now()), PERIOD_HEADER: self.period},
                message=self._health.get_status_value(),
            )
        except VIPError as exc:
            _log.debug("heartbeat not published: %s", exc)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.core.clock.time(), timezone.utc)

    def _status_changed(self, status: Status) -> None:
        if self.running:
            self.restart()
