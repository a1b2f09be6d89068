"""The ``health`` subsystem: the agent's status and alerts (docs/protocol.md §2.9).

``vip.health.set_status(STATUS_BAD, "lost the device")`` changes the status reported in every
heartbeat; ``send_alert(key, status)`` publishes on ``alerts/<AgentClass>/<instance>_<identity>``
(every ``.`` of the fully-qualified identity replaced by ``_``) with header ``alert_key``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from volttron.client.messaging.health import ALERT_KEY, STATUS_GOOD, Status
from volttron.client.messaging.topics import ALERTS
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import SubsystemBase

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core
    from volttron.client.vip.agent.subsystems.pubsub import PubSub
    from volttron.client.vip.agent.subsystems.rpc import RPC


class Health(SubsystemBase):
    """The agent's health status, exported as ``health.*`` RPC methods."""

    def __init__(self, core: Core, owner: Any, rpc: RPC, pubsub: PubSub) -> None:
        super().__init__(core)
        self.owner = owner
        self._pubsub = pubsub
        self._status = Status.build(STATUS_GOOD)
        rpc.export(self.set_status, "health.set_status")
        rpc.export(self.get_status, "health.get_status")
        rpc.export(self.get_status_json, "health.get_status_json")
        rpc.export(self.send_alert, "health.send_alert")

    @property
    def status(self) -> Status:
        """The status object (listeners may be added to it)."""
        return self._status

    def set_status(self, status: str, context: Any = None) -> None:
        """Set the status (GOOD, BAD, UNKNOWN, STARTING) with an optional JSON-serialisable context."""
        self._status.update_status(status, context)

    def get_status(self) -> dict[str, Any]:
        """``{"status", "context", "last_updated"}``."""
        return self._status.as_dict()

    def get_status_json(self) -> str:
        """:meth:`get_status` as JSON text."""
        return self._status.as_json()

    def get_status_value(self) -> str:
        """The status value alone (what heartbeats carry)."""
        return self._status.status

    def alert_topic(self) -> str:
        """``alerts/<AgentClass>/<instance>_<identity>`` for this agent."""
        instance = self.core.instance_name
        identity = self.core.identity
        qualified = f"{instance}.{identity}" if instance else identity
        return str(ALERTS(agent_class=type(self.owner).__name__, agent_uuid=qualified.replace(".", "_")))

    def send_alert(self, alert_key: str, statusobj: Status | dict[str, Any] | str) -> AsyncResult:
        """Publish ``statusobj`` (a :class:`Status`, its dict or JSON) as an alert keyed ``alert_key``."""
        if not isinstance(statusobj, Status):
            statusobj = Status.from_json(statusobj)
        return self._pubsub.publish(
            "pubsub", self.alert_topic(), headers={ALERT_KEY: alert_key}, message=statusobj.as_json()
        )
