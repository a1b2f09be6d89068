"""Timed calls: ``core.schedule`` and ``core.periodic`` (docs/protocol.md §4.1).

A deadline is a ``datetime`` (naive means local time, as ``datetime.timestamp`` reads it), a Unix
timestamp in seconds, or an iterator of those, such as
:func:`volttron.utils.scheduling.periodic` or :func:`~volttron.utils.scheduling.cron`. Each event
runs in its own greenlet and calls its function once per deadline, in order; when the agent falls
behind (the process was suspended, the function ran long) missed deadlines are collapsed into one
call instead of a burst. Time is read, and waited for, through a
:class:`~volttron.client.vip.agent.clock.Clock` (the agent's ``core.clock``), so a test can
advance it by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import gevent

from volttron.client.vip.agent.clock import SYSTEM_CLOCK, Clock

_log = logging.getLogger(__name__)


def to_timestamp(deadline: Any) -> float:
    """Seconds since the epoch of a ``datetime`` or a number."""
    if isinstance(deadline, datetime):
        return deadline.timestamp()
    if isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
        return float(deadline)
    raise TypeError(f"a deadline is a datetime or epoch seconds, not {type(deadline).__name__}")


def deadlines(spec: Any) -> Iterator[float]:
    """Epoch seconds from one deadline or an iterable of them."""
    if isinstance(spec, (datetime, int, float)) and not isinstance(spec, bool):
        yield to_timestamp(spec)
        return
    if not isinstance(spec, Iterable):
        raise TypeError(f"a deadline is a datetime, epoch seconds or an iterator of them, not {spec!r}")
    for item in spec:
        yield to_timestamp(item)


class _TimedCall:
    """Common state of scheduled and periodic calls: a greenlet and cancellation."""

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        clock: Clock | None = None,
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.clock = clock or SYSTEM_CLOCK
        self.greenlet: gevent.Greenlet[..., Any] | None = None
        self.canceled = False

    def start(self) -> None:
        """Start the greenlet (once)."""
        if self.greenlet is None and not self.canceled:
            self.greenlet = gevent.spawn(self._run)

    def cancel(self) -> None:
        """Stop future calls; a call already running in another greenlet is killed."""
        self.canceled = True
        greenlet = self.greenlet
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)

    kill = cancel

    @property
    def finished(self) -> bool:
        """True when no further call will happen."""
        return self.canceled or (self.greenlet is not None and self.greenlet.dead)

    def _call(self) -> None:
        try:
            self.func(*self.args, **self.kwargs)
        except Exception:
            _log.exception("scheduled call %r failed", self.func)

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class ScheduledEvent(_TimedCall):
    """A call at each deadline of a schedule; ``cancel()`` stops it."""

    def __init__(
        self,
        schedule: Any,
        func: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(func, args, kwargs or {}, clock)
        self._deadlines = deadlines(schedule)

    def _run(self) -> None:
        clock = self.clock
        pending = next(self._deadlines, None)
        while pending is not None and not self.canceled:
            delay = pending - clock.time()
            if delay > 0:
                clock.sleep(delay)
            following = next(self._deadlines, None)
            while following is not None and following <= clock.time():
                following = next(self._deadlines, None)  # collapse missed deadlines
            if self.canceled:
                return
            self._call()
            pending = following


class PeriodicCall(_TimedCall):
    """A call every ``period`` seconds.

    The first call is immediate with ``wait=0``, after ``wait`` seconds otherwise, or after one
    period with ``wait=None``.
    """

    def __init__(
        self,
        period: float,
        func: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        wait: float | None = 0,
        clock: Clock | None = None,
    ) -> None:
        if period <= 0:
            raise ValueError(f"period must be positive, not {period!r}")
        super().__init__(func, args, kwargs or {}, clock)
        self.period = float(period)
        self.wait = wait

    def _run(self) -> None:
        clock = self.clock
        first = self.period if self.wait is None else float(self.wait)
        if first > 0:
            clock.sleep(first)
        start = clock.monotonic()
        n = 0
        while not self.canceled:
            self._call()
            n += 1
            now = clock.monotonic()
            next_at = start + n * self.period
            if next_at < now:  # fell behind: skip the missed periods
                n = int((now - start) // self.period) + 1
                next_at = start + n * self.period
            clock.sleep(next_at - now)
