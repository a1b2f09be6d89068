"""A test clock for an agent's timers: ``core.schedule``, ``core.periodic`` and ``core.spawn_later``.

The clock runs with real time plus an offset that :meth:`FakeClock.advance` increases, so a timer
set for "now" is due at once, and ``advance(60)`` makes one minute pass in an instant: every due
call runs, in deadline order, in the test's own greenlet (exceptions reach the test). Only the
agent's core timers follow this clock; ``time.time()`` in agent code keeps real time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

from volttron.client.vip.agent.scheduler import deadlines
from volttron.utils.errors import VolttronError

MAX_CALLS_PER_ADVANCE = 100_000


class ClockError(VolttronError):
    """A clock used wrongly: time going backwards, or a timer that would fire without end."""


class FakeTimer:
    """One timed call of an agent: the result of ``schedule``, ``periodic`` or ``spawn_later``.

    Has the methods agent code uses on the real objects: ``cancel()``, ``kill()`` and the
    ``finished``/``dead`` properties.
    """

    _order = itertools.count()

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        schedule: Any = None,
        period: float | None = None,
        wait: float | None = 0,
        delay: float | None = None,
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.period = period
        self.wait = wait
        self.delay = delay
        self._schedule = schedule
        self._deadlines: Iterator[float] | None = None
        self.next_deadline: float | None = None
        """Epoch seconds (on the test clock) of the next call; None before start or when finished."""
        self.calls = 0
        """How many times the function ran."""
        self.canceled = False
        self.started = False
        self.seq = next(self._order)

    def start(self, now: float) -> None:
        """Arm the timer at clock time ``now`` (what the agent's start is for the real core)."""
        if self.started or self.canceled:
            return
        self.started = True
        if self.period is not None:
            self.next_deadline = now + (self.period if self.wait is None else float(self.wait))
        elif self.delay is not None:
            self.next_deadline = now + self.delay
        else:
            self._deadlines = deadlines(self._schedule)
            self.next_deadline = next(self._deadlines, None)

    def fire(self) -> None:
        """Run the call once and move to the next deadline."""
        deadline = self.next_deadline
        if deadline is None or self.canceled:
            return
        if self.period is not None:
            self.next_deadline = deadline + self.period
        elif self._deadlines is not None:
            self.next_deadline = next(self._deadlines, None)
        else:
            self.next_deadline = None
        self.calls += 1
        self.func(*self.args, **self.kwargs)

    def cancel(self) -> None:
        """No further calls."""
        self.canceled = True
        self.next_deadline = None

    kill = cancel

    @property
    def finished(self) -> bool:
        """True when no further call will happen."""
        return self.canceled or (self.started and self.next_deadline is None)

    dead = finished

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"<FakeTimer {name} next={self.next_deadline} calls={self.calls}>"


class FakeClock:
    """Real time plus an offset, and the timers that follow it (see the module docstring)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.timers: list[FakeTimer] = []
        self.running = False

    def now(self) -> float:
        """The clock's time, in epoch seconds."""
        return time.time() + self.offset

    def add(self, timer: FakeTimer) -> FakeTimer:
        """Keep ``timer``; it is armed now if the clock runs, else when :meth:`start` is called."""
        self.timers = [t for t in self.timers if not t.finished]
        self.timers.append(timer)
        if self.running:
            timer.start(self.now())
        return timer

    def start(self) -> None:
        """Arm every timer (the agent has started)."""
        self.running = True
        now = self.now()
        for timer in self.timers:
            timer.start(now)

    def stop(self) -> None:
        """Cancel every timer (the agent stops)."""
        self.running = False
        for timer in self.timers:
            timer.cancel()

    def pending(self) -> list[FakeTimer]:
        """Armed timers that will still fire, soonest first."""
        armed = [t for t in self.timers if t.next_deadline is not None and not t.canceled]
        return sorted(armed, key=lambda t: (t.next_deadline, t.seq))

    def advance(self, seconds: float = 0.0) -> int:
        """Let ``seconds`` pass and run every call that falls due, in order; returns how many ran.

        ``advance(0)`` runs the calls already due. A call that stops the agent ends the advance.
        """
        if seconds < 0:
            raise ClockError(f"the clock cannot go back ({seconds} s)")
        self.offset += seconds
        target = self.now()
        ran = 0
        while self.running:
            due = [t for t in self.pending() if t.next_deadline is not None and t.next_deadline <= target]
            if not due:
                break
            if ran >= MAX_CALLS_PER_ADVANCE:
                raise ClockError(
                    f"more than {MAX_CALLS_PER_ADVANCE} timer calls in one advance of {seconds} s; "
                    "advance in smaller steps"
                )
            due[0].fire()
            ran += 1
        return ran
