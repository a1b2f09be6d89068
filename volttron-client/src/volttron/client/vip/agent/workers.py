"""Greenlets that run one job after another: what an agent serves RPC requests in.

Every request an agent serves runs in a greenlet of its own, so a method that waits (on another
call, on a timer) holds up nobody else. Spawning a greenlet per request costs about 15 µs (the
greenlet, the group's link, the start and the clean-up callbacks), on the critical path of every
RPC round trip; handing a job to a greenlet that finished its last one and waits costs about
1.5 µs. :class:`Workers` keeps up to ``idle`` finished greenlets waiting and spawns a new one
only when none waits, so requests still run concurrently, each in a greenlet of its own while it
runs. A reused greenlet keeps its greenlet-local values (``gevent.local``) from earlier jobs;
the RPC subsystem sets the one it offers (``rpc.context``) for every request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.hub import Waiter

_log = logging.getLogger(__name__)

Job = Callable[[], None]


class Workers:
    """Run jobs in greenlets made by ``spawn(fn, job)``, reusing up to ``idle`` finished ones."""

    def __init__(self, spawn: Callable[..., Any], idle: int = 8) -> None:
        self._spawn = spawn
        self._max_idle = idle
        self._idle: list[Waiter[Any]] = []
        self.spawned = 0
        """Greenlets started so far (for tests and statistics)."""

    def submit(self, job: Job) -> None:
        """Start ``job`` in a waiting greenlet (at the hub's next turn) or in a new one."""
        if self._idle:
            waiter = self._idle.pop()
            gevent.get_hub().loop.run_callback(waiter.switch, job)
        else:
            self.spawned += 1
            self._spawn(self._work, job)

    def idle(self) -> int:
        """Greenlets waiting for a job."""
        return len(self._idle)

    def _work(self, job: Job | None) -> None:
        hub = gevent.get_hub()
        while job is not None:
            try:
                job()
            except Exception:
                _log.exception("job %r failed", job)
            if len(self._idle) >= self._max_idle:
                return
            waiter: Waiter[Any] = Waiter(hub)
            self._idle.append(waiter)
            try:
                job = waiter.get()
            finally:
                if waiter in self._idle:  # killed while waiting (the agent stops)
                    self._idle.remove(waiter)
