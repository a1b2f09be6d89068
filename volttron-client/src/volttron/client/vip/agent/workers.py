"""Greenlets that run one job after another: what an agent serves RPC requests in.

Every request an agent serves runs in a greenlet of its own, so a method that waits (on another
call, on a timer) holds up nobody else. Spawning a greenlet per request costs about 15 µs (the
greenlet, the group's link, the start and the clean-up callbacks), on the critical path of every
RPC round trip; handing a job to a greenlet that finished its last one and waits costs about
1.5 µs. :class:`Workers` keeps up to ``idle`` finished greenlets waiting and spawns a new one
only when none waits, so jobs still run concurrently, each in a greenlet of its own while it runs.

A worker belongs to the agent's group from its start to its end (it is killed with the agent as
any greenlet the agent spawned). The group's membership is not changed per job: joining and leaving
a ``gevent.pool.Group`` links and unlinks the greenlet, about 3 µs on every request's critical path.
Instead :meth:`Workers.waiting` names the workers that wait for a job, which the agent leaves out
where it lists its running greenlets, so an idle worker is not mistaken for agent code still
running; :meth:`Workers.stop` ends the idle ones. A reused greenlet keeps its greenlet-local values
(``gevent.local``) from earlier jobs; the RPC subsystem sets the one it offers (``rpc.context``) for
every request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import gevent
from gevent.hub import Waiter
from gevent.pool import Group

_log = logging.getLogger(__name__)

Job = Callable[[], None]


class Workers:
    """Run jobs in greenlets of ``group``, reusing up to ``idle`` finished ones."""

    def __init__(self, group: Group, idle: int = 8) -> None:
        self._group = group
        self._max_idle = idle
        self._idle: list[tuple[gevent.Greenlet[..., Any], Waiter[Any]]] = []
        self.spawned = 0
        """Greenlets started so far (for tests and statistics)."""

    def submit(self, job: Job) -> None:
        """Start ``job`` in a waiting greenlet (at the hub's next turn) or in a new one."""
        if self._idle:
            _greenlet, waiter = self._idle.pop()
            gevent.get_hub().loop.run_callback(waiter.switch, job)
        else:
            self.spawned += 1
            self._group.spawn(self._work, job)

    def idle(self) -> int:
        """Greenlets waiting for a job."""
        return len(self._idle)

    def waiting(self) -> set[gevent.Greenlet[..., Any]]:
        """The greenlets waiting for a job: members of the group, but running no agent code."""
        return {greenlet for greenlet, _waiter in self._idle}

    def stop(self) -> None:
        """End the greenlets waiting for a job (those running one belong to the group)."""
        idle, self._idle = self._idle, []
        for greenlet, _waiter in idle:
            greenlet.kill(block=False)

    def _work(self, job: Job) -> None:
        hub = gevent.get_hub()
        current = cast("gevent.Greenlet[..., Any]", gevent.getcurrent())  # _work runs in a Greenlet
        while True:
            try:
                job()
            except Exception:
                _log.exception("job %r failed", job)
            if len(self._idle) >= self._max_idle:
                return
            waiter: Waiter[Any] = Waiter(hub)
            entry = (current, waiter)
            self._idle.append(entry)
            try:
                job = waiter.get()
            finally:
                if entry in self._idle:  # killed while waiting
                    self._idle.remove(entry)
