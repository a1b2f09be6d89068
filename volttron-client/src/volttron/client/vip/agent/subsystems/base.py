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
from volttron.client.vip.agent.errors import VIPError
from volttron.client.vip.agent.results import AsyncResult, ResultsDictionary

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


class RequestingSubsystem(SubsystemBase):
    """A subsystem that sends requests and resolves their results from the answers.

    The answer (or an error frame) carries the request's message id; :meth:`_resolve` and
    :meth:`_handle_error` find the pending result by it.
    """

    #: the subsystem's name on the wire
    name: str = ""

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self._results = ResultsDictionary()
        core.register(self.name, self._handle, self._handle_error)

    def _request(self, peer: str, args: list[bytes], description: str) -> AsyncResult:
        """Send ``args`` to ``peer`` under a fresh message id; a send failure fails the result."""
        result = self._results.next(peer, description)
        try:
            self.core.send_vip(peer, self.name, args, result.ident)
        except VIPError as exc:
            self._results.pop(result.ident)
            result.set_exception(exc)
        return result

    def _resolve(self, message: Message) -> AsyncResult | None:
        """The pending result that ``message`` answers, if any."""
        return self._results.pop(message.id)

    def _handle(self, message: Message) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _handle_error(self, error: VIPError, message: Message) -> None:
        result = self._results.pop(message.id)
        if result is not None:
            result.set_exception(error)
