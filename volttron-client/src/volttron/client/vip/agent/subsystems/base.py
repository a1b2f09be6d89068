"""What every subsystem is: an extension of one :class:`~volttron.client.vip.agent.core.Core`.

A subsystem registers its message handler with the core in ``__init__`` (no other side effect)
and follows the core's life cycle through these hooks, called in this order:

* ``on_setup(annotations)`` once, before ``onsetup`` receivers; ``annotations`` are the decorator
  notes of the agent class (:func:`~volttron.client.vip.agent.decorators.collect_annotations`);
* ``on_connected()`` after every welcome, before ``onconnected`` receivers;
* ``on_start()`` once, after the first welcome, before ``onstart`` receivers;
* ``on_disconnected()`` when the link drops;
* ``on_stop()`` once, after ``onstop`` receivers, while the connection is still open.

(The hooks are prefixed so that subsystem APIs keep the original names, e.g. ``heartbeat.start``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from volttron.client.messagebus.base import Message

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core


class SubsystemBase:
    """Base class of the subsystems; every hook is a no-op here."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def on_setup(self, annotations: dict[str, list[tuple[Any, Any]]]) -> None:
        """Act on the agent's decorator notes; called once before ``onsetup``."""

    def on_connected(self) -> None:
        """Called after every welcome (first connection and reconnections)."""

    def on_start(self) -> None:
        """Called once, after the first welcome."""

    def on_disconnected(self) -> None:
        """Called when the link to the platform drops."""

    def on_stop(self) -> None:
        """Called once while the agent stops, before the connection closes."""

    def reply(self, message: Message, args: list[bytes]) -> None:
        """Answer ``message`` from the receive loop (same id and subsystem, user ``''``, no waiting)."""
        self.core.send_reply(Message(message.peer, message.subsystem, args, message.id, ""))
