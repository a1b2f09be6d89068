"""The one clock an agent's timers read and wait on: :class:`Clock`.

Everything in the agent that is timed — ``core.schedule`` and ``core.periodic``
(:mod:`~volttron.client.vip.agent.scheduler`), ``core.spawn_later``, the heartbeat, the welcome and
reconnect deadlines of the handshake — asks ``core.clock`` for the time and sleeps through it. An
agent built with ``Agent(..., clock=...)`` therefore runs on whatever time that object tells: the
testing kit passes a :class:`~volttron.client.testing.clock.ManualClock` that a test advances by
hand, so timed behaviour is tested without waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeAlias

import gevent
from gevent.event import AsyncResult, Event

Waitable: TypeAlias = "Event | AsyncResult[Any]"
"""What :meth:`Clock.wait` waits for: a gevent ``Event`` or ``AsyncResult`` (ours included)."""


def is_done(event: Waitable) -> bool:
    """True when ``event`` is set (an Event) or ready (an AsyncResult)."""
    return bool(event.ready()) if isinstance(event, AsyncResult) else bool(event.is_set())


class Clock:
    """Wall-clock time and gevent sleeps (the default of every agent)."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block the calling greenlet for ``seconds`` (0 or less: just yield)."""
        gevent.sleep(max(0.0, seconds))

    def wait(self, event: Waitable, timeout: float | None = None) -> bool:
        """Wait for ``event`` (an Event or AsyncResult) at most ``timeout`` seconds; True when it is done."""
        event.wait(timeout)
        return is_done(event)

    def spawn_later(
        self, seconds: float, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> gevent.Greenlet[..., Any]:
        """A started greenlet that calls ``func(*args, **kwargs)`` after ``seconds`` on this clock."""
        return gevent.spawn(self.call_after, seconds, func, *args, **kwargs)

    def call_after(self, seconds: float, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Sleep ``seconds`` on this clock, then call ``func`` (run this in a greenlet of its own)."""
        self.sleep(seconds)
        return func(*args, **kwargs)


SYSTEM_CLOCK = Clock()
"""The clock of every agent not given one."""
