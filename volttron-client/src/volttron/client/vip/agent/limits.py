"""How many RPC requests an agent serves at once, per caller and in total, and how many wait.

Every request an agent serves runs in a greenlet of its own (a method may wait on other calls).
Without a bound, one peer sending requests faster than they finish makes the agent hold a greenlet
per request: 300,000 ``peerlist`` calls to ``platform.control`` took the platform to 1.2 GB and
left vctl unanswered for minutes. :class:`RequestScheduler` admits requests so:

* at most ``per_caller`` requests of one caller run at once, and at most ``total`` of all callers;
* a request that cannot start yet waits in its caller's queue (a burst of calls is absorbed, not
  refused), up to ``queued_per_caller`` requests / ``queued_bytes_per_caller`` bytes per caller and
  ``queued_total`` / ``queued_bytes_total`` in all;
* beyond that it is refused at once: :meth:`RequestScheduler.submit` returns False and the RPC
  subsystem answers with a VIP ``EAGAIN`` error (the caller's result raises ``Again``);
* when a slot frees, waiting callers take turns (round robin), so a flooding caller delays others
  by at most one request of its own per turn.

The defaults suit any ordinary agent (a caller rarely has more than a few calls in flight to one
agent); an agent changes them with ``self.vip.rpc.set_request_limits(RequestLimits(...))``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestLimits:
    """The bounds of :class:`RequestScheduler`; see the module docstring."""

    per_caller: int = 16
    """Requests of one caller served at once."""
    total: int = 256
    """Requests of all callers served at once."""
    queued_per_caller: int = 512
    """Requests of one caller waiting for a slot."""
    queued_total: int = 8192
    """Requests of all callers waiting for a slot."""
    queued_bytes_per_caller: int = 8 * 1024 * 1024
    """Bytes of request text of one caller waiting for a slot."""
    queued_bytes_total: int = 64 * 1024 * 1024
    """Bytes of request text of all callers waiting for a slot."""

    def __post_init__(self) -> None:
        for name in ("per_caller", "total", "queued_per_caller", "queued_total", "queued_bytes_per_caller",
                     "queued_bytes_total"):
            value = getattr(self, name)
            least = 0 if name.startswith("queued") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"RequestLimits.{name} must be a whole number >= {least}, not {value!r}")


Job = Callable[[], None]


@dataclass
class _Queue:
    """The requests of one caller waiting for a slot; kept only while it holds some."""

    waiting: deque[tuple[Job, int]] = field(default_factory=deque)
    waiting_bytes: int = 0
    ready: bool = False
    """Listed in the scheduler's round-robin queue."""


class RequestScheduler:
    """Admit, queue or refuse requests per caller; ``spawn(fn)`` starts a greenlet running ``fn()``.

    A caller's running requests are a count, and its waiting ones a :class:`_Queue` that exists
    only while some wait, so a request admitted at once (the usual case) allocates nothing here.
    """

    def __init__(self, spawn: Callable[[Callable[[], None]], Any],
                 limits: RequestLimits | None = None) -> None:
        self.limits = limits or RequestLimits()
        self._spawn = spawn
        self._running_of: dict[str, int] = {}
        self._queues: dict[str, _Queue] = {}
        self._ready: deque[str] = deque()
        self._running = 0
        self._waiting = 0
        self._waiting_bytes = 0
        self.refused = 0
        """Requests refused since the start (for statistics)."""

    def submit(self, caller: str, job: Job, size: int = 0) -> bool:
        """Run ``job`` now or once a slot is free (True); False: refused, the caller is over its bound."""
        limits = self.limits
        running = self._running_of.get(caller, 0)
        queue = self._queues.get(caller)
        if queue is None and running < limits.per_caller and self._running < limits.total:
            self._start(caller, running, job)
            return True
        waiting, waiting_bytes = (0, 0) if queue is None else (len(queue.waiting), queue.waiting_bytes)
        if (waiting >= limits.queued_per_caller or self._waiting >= limits.queued_total
                or waiting_bytes + size > limits.queued_bytes_per_caller
                or self._waiting_bytes + size > limits.queued_bytes_total):
            self.refused += 1
            return False
        if queue is None:
            queue = self._queues[caller] = _Queue()
        queue.waiting.append((job, size))
        queue.waiting_bytes += size
        self._waiting += 1
        self._waiting_bytes += size
        if running < limits.per_caller:
            self._make_ready(caller, queue)
            self._dispatch()
        return True

    def statistics(self) -> dict[str, int]:
        """Requests running and waiting now, callers known, and refusals so far."""
        return {"running": self._running, "waiting": self._waiting, "waiting_bytes": self._waiting_bytes,
                "callers": len(self._running_of.keys() | self._queues.keys()), "refused": self.refused}

    def _start(self, caller: str, running: int, job: Job) -> None:
        self._running_of[caller] = running + 1
        self._running += 1
        self._spawn(lambda: self._run(caller, job))

    def _run(self, caller: str, job: Job) -> None:
        try:
            job()
        finally:
            running = self._running_of[caller] - 1
            if running:
                self._running_of[caller] = running
            else:
                del self._running_of[caller]
            self._running -= 1
            queue = self._queues.get(caller)
            if queue is not None:
                self._make_ready(caller, queue)
            if self._ready:
                self._dispatch()

    def _make_ready(self, caller: str, queue: _Queue) -> None:
        if not queue.ready:
            queue.ready = True
            self._ready.append(caller)

    def _dispatch(self) -> None:
        limits = self.limits
        while self._running < limits.total and self._ready:
            caller = self._ready.popleft()
            queue = self._queues.get(caller)
            if queue is None:
                continue
            queue.ready = False
            running = self._running_of.get(caller, 0)
            if running >= limits.per_caller:
                continue  # listed again when one of its requests finishes
            job, size = queue.waiting.popleft()
            queue.waiting_bytes -= size
            self._waiting -= 1
            self._waiting_bytes -= size
            if not queue.waiting:
                del self._queues[caller]
            self._start(caller, running, job)
            if queue.waiting and running + 1 < limits.per_caller:
                self._make_ready(caller, queue)
