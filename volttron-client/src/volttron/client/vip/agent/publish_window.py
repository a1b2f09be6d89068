"""How many publishes an agent may have sent and not yet seen acknowledged.

The router answers every publish (``request_response`` with the number of subscribers reached).
Its queue to an agent is bounded (6,000 messages) and it never blocks on a full one: an
acknowledgement that does not fit is dropped. A publisher that sends back to back without ever
yielding reads no answer meanwhile, so before this window a burst of 20,000 publishes lost 2,778
acknowledgements and ``get()`` on those results timed out. With the window, a publisher that has
:attr:`PublishWindow.limit` publishes unacknowledged waits (other greenlets, the receive loop among
them, run meanwhile) until half of them are answered: it is slowed, never told "sent" for something
whose answer cannot come.

The window never waits in the receive loop or the hub (nothing could answer), and gives up after
:attr:`PublishWindow.stall_timeout` seconds, forgetting what it waited for, so a platform that stopped
answering costs a warning, not a hung agent. A lost link forgets every pending publish too.
"""

from __future__ import annotations

import logging

import gevent
import gevent.event

_log = logging.getLogger(__name__)

DEFAULT_LIMIT = 1000
"""Well below the router's 6,000-message queue per peer, which also carries the agent's other mail."""


class PublishWindow:
    """Counts unacknowledged publishes by message id and makes the publisher wait when too many."""

    def __init__(self, limit: int = DEFAULT_LIMIT, stall_timeout: float = 30.0) -> None:
        if limit < 2:
            raise ValueError("a publish window needs a limit of at least 2")
        self.limit = limit
        self.resume_at = limit // 2
        self.stall_timeout = stall_timeout
        self.waits = 0
        """How often a publisher had to wait (statistics)."""
        self._in_flight: set[str] = set()
        self._room = gevent.event.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._in_flight)

    def sent(self, ident: str) -> None:
        """A publish with message id ``ident`` went out and its answer is due."""
        self._in_flight.add(ident)

    def answered(self, ident: str) -> None:
        """An answer (acknowledgement or error) for ``ident`` arrived."""
        self._in_flight.discard(ident)
        if len(self._in_flight) <= self.resume_at:
            self._room.set()

    def reset(self) -> None:
        """Forget every pending publish (the link went down: their answers will not come)."""
        self._in_flight.clear()
        self._room.set()

    def wait_for_room(self, may_wait: bool = True) -> None:
        """Return once another publish may go out; waits only when full and ``may_wait``."""
        if len(self._in_flight) < self.limit or not may_wait:
            return
        if gevent.getcurrent() is gevent.get_hub():
            return
        self.waits += 1
        self._room.clear()
        if not self._room.wait(self.stall_timeout):
            _log.warning("%d publishes unacknowledged for %g s: the platform is not answering; "
                         "going on without their acknowledgements", len(self._in_flight), self.stall_timeout)
            self.reset()
