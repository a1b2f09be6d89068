"""How many bytes the router may leave queued for peers that do not read (issue 11, item 3).

libzmq bounds each peer's outgoing queue in messages (the high-water mark), not in bytes: 6,000
messages of 1 MB is 6 GB. libzmq does not say how much of a queue is still waiting, so the router
keeps its own account: every message handed to a peer adds its size to that peer's account, and
the account starts again from zero whenever the router sees the peer's connection empty (the
kernel's send queue of its connection nearly empty, asked only when an account reaches its bound).
A message that would take a peer past ``per_peer`` bytes, or all peers past ``total``, is not sent
(the caller treats it as a full queue); such drops are counted per peer. A peer caught reading
(its kernel send queue changed lately) but not yet empty gets up to twice ``per_peer``: a reader
that takes its messages in bursts is not cut off, one that reads a trickle is bounded all the same.
A peer that has been over its bound for ``overflow_timeout`` seconds should be disconnected
(:meth:`overdue`).
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable


class Drain(enum.Enum):
    """What a look at a peer's connection shows."""

    EMPTY = "empty"
    """It has taken what it was sent (or the router trusts it to, e.g. an in-process service)."""
    MOVING = "moving"
    """It is reading, but has not caught up."""
    STUCK = "stuck"
    """Nothing shows it reads."""


class QueueBudget:
    """Per-peer and total byte accounts of messages handed to peers; see the module docstring.

    ``drained(peer)`` looks at the peer's connection (:class:`Drain`).
    """

    def __init__(self, per_peer: int, total: int, overflow_timeout: float,
                 drained: Callable[[bytes], Drain], clock: Callable[[], float] = time.monotonic) -> None:
        self.per_peer = per_peer
        self.total_limit = total
        self.overflow_timeout = overflow_timeout
        self._drained = drained
        self._clock = clock
        self.queued: dict[bytes, int] = {}
        self.total = 0
        self.dropped: Counter[bytes] = Counter()
        self._over_since: dict[bytes, float] = {}
        self._refreshed_all_at = float("-inf")

    def admit(self, peer: bytes, size: int) -> bool:
        """Account ``size`` bytes for ``peer`` and return True, or return False: do not send it."""
        queued = self.queued.get(peer, 0) + size
        if queued <= self.per_peer and self.total + size <= self.total_limit:
            self.queued[peer] = queued
            self.total += size
            return True
        return self._admit_checked(peer, size)

    def _admit_checked(self, peer: bytes, size: int) -> bool:
        state = self._drained(peer)
        if state is Drain.EMPTY:
            self._reset(peer)
        if self.total + size > self.total_limit:
            self._refresh_all()
        queued = self.queued.get(peer, 0) + size
        bound = self.per_peer * 2 if state is Drain.MOVING else self.per_peer
        if queued <= bound and self.total + size <= self.total_limit:
            self.queued[peer] = queued
            self.total += size
            self._over_since.pop(peer, None)
            return True
        self.dropped[peer] += 1
        self._over_since.setdefault(peer, self._clock())
        return False

    def _reset(self, peer: bytes) -> None:
        self.total -= self.queued.pop(peer, 0)
        self._over_since.pop(peer, None)

    def _refresh_all(self) -> None:
        # every peer's account, at most ten times a second: the accounts of peers that read have
        # gone stale and must not hold the total against the others
        now = self._clock()
        if now - self._refreshed_all_at < 0.1:
            return
        self._refreshed_all_at = now
        for peer in [p for p, n in self.queued.items() if n > 0]:
            if self._drained(peer) is Drain.EMPTY:
                self._reset(peer)

    def refund(self, peer: bytes, size: int) -> None:
        """``size`` bytes admitted for ``peer`` were not sent after all."""
        queued = self.queued.get(peer)
        if queued is not None:
            taken = min(queued, size)
            self.queued[peer] = queued - taken
            self.total -= taken

    def overdue(self, peer: bytes) -> bool:
        """True when ``peer`` has been over its bound for ``overflow_timeout`` seconds or more."""
        since = self._over_since.get(peer)
        return since is not None and self._clock() - since >= self.overflow_timeout

    def forget(self, peer: bytes) -> None:
        """The peer is gone: its queue went with its connection."""
        self._reset(peer)
        self.dropped.pop(peer, None)

    def statistics(self) -> dict[str, int]:
        """Counts for status output."""
        return {"queued_bytes": self.total, "peers_over_bound": len(self._over_since),
                "messages_dropped": sum(self.dropped.values())}
