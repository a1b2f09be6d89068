"""The greenlets and timed calls an agent owns: ``spawn``, ``schedule``, ``periodic``, receivers.

:class:`AgentTasks` is the part of :class:`~volttron.client.vip.agent.core.Core` that runs the
agent's own code: the decorators that mark methods (``@Core.receiver``, ``@Core.schedule``,
``@Core.periodic``, which only annotate), their run-time forms, and the greenlets they start, all
of which the core starts at the first welcome and kills when the agent stops. Every timed call
reads and waits on :attr:`AgentTasks.clock` (see :mod:`~volttron.client.vip.agent.clock`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent.pool import Group

from volttron.client.vip.agent.clock import SYSTEM_CLOCK, Clock
from volttron.client.vip.agent.decorators import annotate, dualmethod
from volttron.client.vip.agent.scheduler import PeriodicCall, ScheduledEvent
from volttron.client.vip.agent.workers import Workers

_log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

SIGNALS = (
    "onsetup",
    "onstart",
    "onstop",
    "onfinish",
    "onconnected",
    "ondisconnected",
    "onviperror",
    "onsockevent",
    "configuration",
)


class AgentTasks:
    """Greenlets and timed calls of one agent (a base of ``Core``)."""

    _started = False
    _stopping = False
    _hub: Any = None
    clock: Clock = SYSTEM_CLOCK
    """The clock every timer of this agent reads and sleeps on."""

    def _init_tasks(self, clock: Clock | None = None) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self._group = Group()
        self._workers = Workers(self._group)
        self._timed: list[ScheduledEvent | PeriodicCall] = []

    @classmethod
    def receiver(cls, signal: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: call the method ``(self, sender, **kwargs)`` when ``signal`` fires."""
        if signal not in SIGNALS:
            raise ValueError(f"unknown core signal {signal!r} (known: {', '.join(SIGNALS)})")

        def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
            return annotate(method, "core.signals", signal)

        return decorate

    def _schedule_decorator(cls, deadline: Any, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """Decorator: call the method at ``deadline`` (or each deadline of an iterator) from onstart."""

        def decorate(method: F) -> F:
            return annotate(method, "core.schedule", (deadline, args, kwargs))

        return decorate

    @dualmethod.with_class_form(_schedule_decorator)
    def schedule(self, deadline: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> ScheduledEvent:
        """Call ``func(*args, **kwargs)`` at ``deadline`` (a datetime, epoch seconds, or an iterator).

        Returns the event; ``event.cancel()`` stops it. Events scheduled before the agent started
        begin when it starts. On the class, ``@Core.schedule(deadline)`` decorates a method.
        """
        event = ScheduledEvent(deadline, func, args, kwargs, clock=self.clock)
        self._add_timed(event)
        return event

    def _periodic_decorator(
        cls,
        period: float,
        args: Any = None,
        kwargs: Any = None,
        wait: float | None = 0,
    ) -> Callable[[F], F]:
        """Decorator: call the method every ``period`` seconds from onstart (``wait`` as above)."""
        if period <= 0:
            raise ValueError(f"period must be positive, not {period!r}")

        def decorate(method: F) -> F:
            return annotate(method, "core.periodic", (period, args, kwargs, wait))

        return decorate

    @dualmethod.with_class_form(_periodic_decorator)
    def periodic(
        self,
        period: float,
        func: Callable[..., Any],
        args: Any = None,
        kwargs: Any = None,
        wait: float | None = 0,
    ) -> PeriodicCall:
        """Call ``func`` every ``period`` seconds (first call per ``wait``); ``.cancel()`` stops it.

        On the class, ``@Core.periodic(period, wait=0)`` decorates a method.
        """
        call = PeriodicCall(period, func, tuple(args or ()), dict(kwargs or {}), wait, clock=self.clock)
        self._add_timed(call)
        return call

    def _add_timed(self, timed: ScheduledEvent | PeriodicCall) -> None:
        self._timed = [t for t in self._timed if not t.finished]
        self._timed.append(timed)
        if self._started and not self._stopping:
            timed.start()

    # ------------------------------------------------------------------ greenlets

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet[..., Any]:
        """Run ``func`` in a new greenlet owned by the agent (killed when the agent finishes)."""
        return self._group.spawn(func, *args, **kwargs)

    def run_job(self, job: Callable[[], None]) -> None:
        """Run ``job()`` in a greenlet owned by the agent, reusing one that finished an earlier job.

        For short, frequent work such as serving a request (see
        :mod:`~volttron.client.vip.agent.workers`); an exception ``job`` raises is logged.
        """
        self._workers.submit(job)

    def spawn_later(
        self, seconds: float, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> gevent.Greenlet[..., Any]:
        """Run ``func`` after ``seconds`` (on :attr:`clock`) in a greenlet owned by the agent."""
        greenlet = self._group.spawn(self.clock.call_after, seconds, func, *args, **kwargs)
        greenlet.link_exception(functools.partial(_log_receiver_failure, func))
        return greenlet

    @property
    def greenlets(self) -> list[gevent.Greenlet[..., Any]]:
        """The greenlets the agent owns that are still running (``spawn``, ``spawn_later``, receivers...)."""
        waiting = self._workers.waiting()
        return [g for g in self._group if not g.dead and g not in waiting]

    def spawn_in_thread(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking ``func`` in gevent's thread pool; returns an AsyncResult-like object."""
        return gevent.get_hub().threadpool.spawn(func, *args, **kwargs)

    def send_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """From another thread: run ``func`` in a greenlet of the agent's hub. Thread-safe."""
        hub = self._hub or gevent.get_hub()
        hub.loop.run_callback_threadsafe(self.spawn, functools.partial(func, *args, **kwargs))

    def _spawn_receiver(
        self, receiver: Callable[..., Any], sender: Any, **kwargs: Any
    ) -> gevent.Greenlet[..., Any]:
        greenlet = self.spawn(receiver, sender, **kwargs)
        greenlet.link_exception(functools.partial(_log_receiver_failure, receiver))
        return greenlet

    def _start_timers(self) -> None:
        for timed in self._timed:
            timed.start()

    def _cancel_timers(self) -> None:
        for timed in self._timed:
            timed.cancel()

    def _kill_greenlets(self) -> None:
        self._workers.stop()
        current = gevent.getcurrent()
        for greenlet in list(self._group):
            if greenlet is not current:
                greenlet.kill(block=False)

    def _owns_greenlet(self, greenlet: Any) -> bool:
        return greenlet in self._group or any(timed.greenlet is greenlet for timed in self._timed)

    def _task_statistics(self) -> dict[str, int]:
        return {"greenlets": len(self._group) - self._workers.idle(),
                "timers": sum(1 for t in self._timed if not t.finished)}


def _log_receiver_failure(receiver: Callable[..., Any], greenlet: gevent.Greenlet[..., Any]) -> None:
    _log.error("%r failed", receiver, exc_info=greenlet.exc_info)
