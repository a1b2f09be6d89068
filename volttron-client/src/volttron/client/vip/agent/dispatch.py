"""Signals and the in-order executor that runs pub/sub callbacks off the receive loop.

:class:`Signal` is the original agent API's signal (``connect``, ``disconnect``, ``send``,
``sendby``); receivers are called as ``receiver(sender, **kwargs)``.

:class:`SerialExecutor` runs submitted calls one after the other in its own greenlet. The receive
loop hands pub/sub deliveries to it instead of calling callbacks itself, so a callback that waits
(for example on an RPC answer, which the receive loop must read) cannot dead-lock the agent, while
callbacks still run in arrival order and the common path costs no greenlet spawn per message.
When callbacks fall behind, :meth:`SerialExecutor.wait_capacity` makes the receive loop pause, so
the ZeroMQ high-water mark pushes back on the publisher instead of memory growing; if the current
callback itself is stuck waiting, the loop does not pause (it must keep reading answers) and
deliveries beyond ``limit`` are dropped with a warning, as a full ZeroMQ queue would.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

_log = logging.getLogger(__name__)


class Signal:
    """A list of receivers called with ``(sender, **kwargs)``."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._receivers: list[tuple[Callable[..., Any], Any]] = []

    def connect(self, receiver: Callable[..., Any], owner: Any = None) -> None:
        """Add ``receiver`` (once); ``owner`` is kept for :meth:`disconnect_owner`."""
        if all(r != receiver for r, _ in self._receivers):
            self._receivers.append((receiver, owner))

    def disconnect(self, receiver: Callable[..., Any]) -> None:
        """Remove ``receiver`` if present."""
        self._receivers = [(r, o) for r, o in self._receivers if r != receiver]

    def disconnect_owner(self, owner: Any) -> None:
        """Remove every receiver connected with ``owner``."""
        self._receivers = [(r, o) for r, o in self._receivers if o is not owner]

    @property
    def receivers(self) -> list[Callable[..., Any]]:
        """The connected receivers, in connection order."""
        return [r for r, _ in self._receivers]

    def send(self, sender: Any, **kwargs: Any) -> list[Any]:
        """Call every receiver now; an exception propagates to the caller."""
        return [receiver(sender, **kwargs) for receiver, _ in list(self._receivers)]

    def sendby(self, executor: Callable[..., Any], sender: Any, **kwargs: Any) -> list[Any]:
        """Call ``executor(receiver, sender, **kwargs)`` for each receiver (e.g. to spawn them)."""
        return [executor(receiver, sender, **kwargs) for receiver, _ in list(self._receivers)]

    def __len__(self) -> int:
        return len(self._receivers)


class SerialExecutor:
    """Runs submitted calls in order in one greenlet; see the module docstring."""

    def __init__(
        self,
        name: str,
        high_water: int = 1000,
        low_water: int = 100,
        limit: int = 20000,
        stall_seconds: float = 0.2,
    ) -> None:
        self.name = name
        self.high_water = high_water
        self.low_water = low_water
        self.limit = limit
        self.stall_seconds = stall_seconds
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake = Event()
        self._drained = Event()
        self._busy_since = 0.0
        self._greenlet: gevent.Greenlet[..., Any] | None = None
        self._dropped = 0
        self._done = 0

    def submit(self, func: Callable[..., Any], *args: Any) -> bool:
        """Queue ``func(*args)``; False when it was dropped because the queue is at ``limit``."""
        queue = self._queue
        if len(queue) >= self.limit:
            self._dropped += 1
            if self._dropped in (1, 10, 100) or self._dropped % 10000 == 0:
                _log.warning("%s: callbacks are stuck; dropped %d deliveries", self.name, self._dropped)
            return False
        queue.append((func, args))
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        self._wake.set()
        return True

    def wait_capacity(self) -> None:
        """Pause the caller while the queue is above the high-water mark and callbacks progress."""
        if len(self._queue) <= self.high_water:
            return
        while len(self._queue) > self.low_water:
            if self._busy_since and time.monotonic() - self._busy_since > self.stall_seconds:
                return  # a callback is blocked; keep the receive loop going
            self._drained.clear()
            self._drained.wait(self.stall_seconds)

    def _run(self) -> None:
        queue = self._queue
        while True:
            count = 0
            while queue:
                func, args = queue.popleft()
                self._busy_since = time.monotonic()
                try:
                    func(*args)
                except Exception:
                    _log.exception("%s: callback %r failed", self.name, func)
                self._done += 1
                count += 1
                if len(queue) <= self.low_water:
                    self._drained.set()
                if count % 64 == 0:
                    gevent.sleep(0)  # let the receive loop read answers between long runs
            self._busy_since = 0.0
            self._drained.set()
            self._wake.clear()
            self._wake.wait()

    def stop(self) -> None:
        """Kill the worker greenlet and forget queued calls."""
        self._queue.clear()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def statistics(self) -> dict[str, int]:
        """Queued, completed and dropped counts."""
        return {"queued": len(self._queue), "done": self._done, "dropped": self._dropped}
