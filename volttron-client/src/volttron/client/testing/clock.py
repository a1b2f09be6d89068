"""A clock a test advances by hand: :class:`ManualClock`.

Give it to an agent (``Agent(..., clock=clock)``, which :class:`~volttron.client.testing.AgentHarness`
does) or to a timer (``PeriodicCall(..., clock=clock)``), and every timed thing of the agent
(``core.schedule``, ``core.periodic``, ``core.spawn_later``, the heartbeat, the handshake's deadlines)
sleeps on it. Time reads as real time plus an offset, and a sleeper wakes only when
:meth:`ManualClock.advance` moves the offset past its deadline: ``advance(60)`` makes one minute pass
in an instant, waking each due sleeper in deadline order, with the clock reading that sleeper's
deadline while it runs, and letting the woken code run until it waits again
(:attr:`ManualClock.settle`) before waking the next one. Code that reads ``time.time()`` itself
keeps real time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent.event import Event

from volttron.client.vip.agent.clock import Clock, Waitable, is_done
from volttron.utils.errors import VolttronError

MAX_WAKES_PER_ADVANCE = 20_000
SETTLE_YIELDS = 5


class ClockError(VolttronError):
    """A clock used wrongly: time going backwards, or a timer that would fire without end."""


@dataclass(order=True)
class Sleeper:
    """One greenlet waiting on the clock until ``deadline`` (epoch seconds on the clock)."""

    deadline: float
    seq: int
    event: Event = field(compare=False)
    greenlet: object = field(compare=False, default=None)


def yield_a_little() -> None:
    """The default :attr:`ManualClock.settle`: a few turns of the gevent loop."""
    for _ in range(SETTLE_YIELDS):
        gevent.sleep(0)


class ManualClock(Clock):
    """See the module docstring. ``settle`` is called after each wake (the harness waits for its bus)."""

    def __init__(self, settle: Callable[[], None] | None = None) -> None:
        self.offset = 0.0
        self.settle: Callable[[], None] = settle or yield_a_little
        self._sleepers: list[Sleeper] = []
        self._order = itertools.count()

    # ----- what the agent reads

    def time(self) -> float:
        """Real time plus the offset."""
        return time.time() + self.offset

    def now(self) -> float:
        """The clock's time, in epoch seconds (same as :meth:`time`)."""
        return self.time()

    def monotonic(self) -> float:
        """A monotonic reading moved by the same offset."""
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        """Block until :meth:`advance` reaches ``seconds`` from now (0 or less: yield only)."""
        if seconds <= 0:
            gevent.sleep(0)
            return
        sleeper = self._add(seconds)
        try:
            sleeper.event.wait()
        finally:
            self._remove(sleeper)

    def wait(self, event: Waitable, timeout: float | None = None) -> bool:
        """Wait for ``event`` (an Event or AsyncResult), or until the clock has advanced ``timeout`` s."""
        if timeout is None or is_done(event):
            event.wait(timeout)
            return is_done(event)
        sleeper = self._add(max(timeout, 0.0))
        try:
            gevent.wait([event, sleeper.event], count=1)
        finally:
            self._remove(sleeper)
        return is_done(event)

    # ----- what the test does

    def sleeping(self) -> list[object]:
        """The greenlets waiting on this clock."""
        return [s.greenlet for s in self._sleepers if not s.event.is_set()]

    def pending(self) -> list[float]:
        """The deadlines of the sleepers, soonest first."""
        return [s.deadline for s in sorted(self._sleepers)]

    def advance(self, seconds: float = 0.0) -> int:
        """Let ``seconds`` pass, waking each sleeper that falls due, in order; returns how many woke."""
        if seconds < 0:
            raise ClockError(f"the clock cannot go back ({seconds} s)")
        target = self.offset + seconds
        woken = 0
        self.settle()
        while True:
            due = [s for s in self._sleepers if s.deadline <= time.time() + target and not s.event.is_set()]
            if not due:
                break
            if woken >= MAX_WAKES_PER_ADVANCE:
                raise ClockError(
                    f"more than {MAX_WAKES_PER_ADVANCE} timer calls in one advance of {seconds} s; "
                    "advance in smaller steps"
                )
            sleeper = min(due)
            self.offset = max(self.offset, sleeper.deadline - time.time())
            sleeper.event.set()
            woken += 1
            self.settle()
        self.offset = max(self.offset, target)
        return woken

    # ----- internals

    def _add(self, seconds: float) -> Sleeper:
        sleeper = Sleeper(self.time() + seconds, next(self._order), Event(), gevent.getcurrent())
        self._sleepers.append(sleeper)
        return sleeper

    def _remove(self, sleeper: Sleeper) -> None:
        try:
            self._sleepers.remove(sleeper)
        except ValueError:
            pass

