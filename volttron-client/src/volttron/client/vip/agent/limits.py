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
class _Caller:
    running: int = 0
    waiting: deque[tuple[Job, int]] = field(default_factory=deque)
    waiting_bytes: int = 0
    ready: bool = False
    """Listed in the scheduler's round-robin queue."""


class RequestScheduler:
    """Admit, queue or refuse requests per caller; ``spawn(fn)`` starts a greenlet running ``fn()``."""

    def __init__(self, spawn: Callable[[Callable[[], None]], Any],
                 limits: RequestLimits | None = None) -> None:
        self.limits = limits or RequestLimits()
        self._spawn = spawn
        self._callers: dict[str, _Caller] = {}
        self._ready: deque[str] = deque()
        self._running = 0
        self._waiting = 0
        self._waiting_bytes = 0
        self.refused = 0
        """Requests refused since the start (for statistics)."""

    def submit(self, caller: str, job: Job, size: int = 0) -> bool:
        """Run ``job`` now or once a slot is free (True); False: refused, the caller is over its bound."""
        limits = self.limits
        state = self._callers.get(caller)
        if state is None:
            state = self._callers[caller] = _Caller()
        if not state.waiting and state.running < limits.per_caller and self._running < limits.total:
            self._start(caller, state, job)
            return True
        if (len(state.waiting) >= limits.queued_per_caller or self._waiting >= limits.queued_total
                or state.waiting_bytes + size > limits.queued_bytes_per_caller
                or self._waiting_bytes + size > limits.queued_bytes_total):
            self.refused += 1
            self._forget_if_idle(caller, state)
            return False
        state.waiting.append((job, size))
        state.waiting_bytes += size
        self._waiting += 1
        self._waiting_bytes += size
        if state.running < limits.per_caller:
            self._make_ready(caller, state)
            self._dispatch()
        return True

    def statistics(self) -> dict[str, int]:
        """Requests running and waiting now, callers known, and refusals so far."""
        return {"running": self._running, "waiting": self._waiting, "waiting_bytes": self._waiting_bytes,
                "callers": len(self._callers), "refused": self.refused}

    def _start(self, caller: str, state: _Caller, job: Job) -> None:
        state.running += 1
        self._running += 1
        self._spawn(lambda: self._run(caller, state, job))

    def _run(self, caller: str, state: _Caller, job: Job) -> None:
        try:
            job()
        finally:
            state.running -= 1
            self._running -= 1
            if state.waiting:
                self._make_ready(caller, state)
            self._forget_if_idle(caller, state)
            self._dispatch()

    def _make_ready(self, caller: str, state: _Caller) -> None:
        if not state.ready:
            state.ready = True
            self._ready.append(caller)

    def _dispatch(self) -> None:
        limits = self.limits
        while self._running < limits.total and self._ready:
            caller = self._ready.popleft()
            state = self._callers.get(caller)
            if state is None:
                continue
            state.ready = False
            if not state.waiting or state.running >= limits.per_caller:
                continue  # listed again when one of its requests finishes
            job, size = state.waiting.popleft()
            state.waiting_bytes -= size
            self._waiting -= 1
            self._waiting_bytes -= size
            self._start(caller, state, job)
            if state.waiting and state.running < limits.per_caller:
                self._make_ready(caller, state)

    def _forget_if_idle(self, caller: str, state: _Caller) -> None:
        if not state.running and not state.waiting and not state.ready:
            self._callers.pop(caller, None)
