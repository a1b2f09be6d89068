"""Delivering configuration changes to agents, in order, without letting a slow agent hold up others.

Each agent has its own queue and, while the queue is not empty, its own greenlet that sends one
RPC at a time (``config.update`` or ``config.initial_update``) and waits for the answer up to
``timeout`` seconds. Pushes to one agent therefore arrive in the order the changes were made, and a
slow or stuck agent delays only its own queue. A push to an agent that is not connected (not in the
peer list) is skipped: it gets the whole store when it next starts. The answer is waited for on a
:class:`~volttron.client.vip.agent.clock.Clock` (the service agent's), so a test can advance it.

Every push returns a :class:`gevent.event.AsyncResult` that resolves to a :class:`PushOutcome`
(never to an exception), so a caller may wait for delivery, with its own bound, or not at all.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import AsyncResult

from volttron.client.vip.agent.clock import SYSTEM_CLOCK, Clock
from volttron.client.vip.agent.errors import Unreachable, VIPError
from volttron.utils.jsonrpc import Error, MethodNotFound, Unauthorized

_log = logging.getLogger(__name__)

RpcCall = Callable[..., Any]
"""``call(peer, method, *args, **kwargs)`` returning a gevent ``AsyncResult`` (as ``vip.rpc.call`` does)."""

Arguments = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class PushOutcome:
    """What happened to one push: ``delivered`` and, for a snapshot push, what was sent."""

    delivered: bool
    detail: str = ""
    sent: Any = None


@dataclass
class _Push:
    method: str
    build: Callable[[], Arguments]
    result: AsyncResult = field(default_factory=AsyncResult)
    only_if_connected: bool = True


class UpdatePusher:
    """Per-agent ordered delivery of RPC calls; see the module docstring."""

    def __init__(self, call: RpcCall, is_connected: Callable[[str], bool], timeout: float = 30.0,
                 max_queue: int = 1000, clock: Clock | None = None) -> None:
        self._call = call
        self.clock = clock or SYSTEM_CLOCK
        self._is_connected = is_connected
        self.timeout = timeout
        self.max_queue = max_queue
        self._queues: dict[str, deque[_Push]] = {}
        self._workers: dict[str, gevent.Greenlet] = {}
        self._stopped = False
        self._counts = {"delivered": 0, "skipped": 0, "failed": 0, "dropped": 0}

    def push(self, identity: str, method: str, *args: Any, **kwargs: Any) -> AsyncResult:
        """Queue ``method(*args, **kwargs)`` for ``identity``; skipped unless it is connected."""
        return self._enqueue(identity, _Push(method, lambda: (args, kwargs)))

    def push_built(self, identity: str, method: str, build: Callable[[], Arguments], *,
                   only_if_connected: bool = True) -> AsyncResult:
        """Queue ``method`` with arguments made by ``build()`` just before it is sent.

        A snapshot pushed this way reflects every change queued before it. ``build``'s positional
        arguments are also the outcome's ``sent``. With ``only_if_connected=False`` the push goes out
        even when the peer list does not show the agent (the agent itself asked for it).
        """
        return self._enqueue(identity, _Push(method, build, only_if_connected=only_if_connected))

    def _enqueue(self, identity: str, item: _Push) -> AsyncResult:
        if self._stopped:
            item.result.set(PushOutcome(False, "the configuration store is stopping"))
            return item.result
        queue = self._queues.setdefault(identity, deque())
        if len(queue) >= self.max_queue:
            dropped = queue.popleft()
            self._counts["dropped"] += 1
            dropped.result.set(PushOutcome(False, "dropped: too many updates waiting"))
            _log.error("agent %r is not taking configuration updates; dropped the oldest of %d waiting",
                       identity, len(queue) + 1)
        queue.append(item)
        if identity not in self._workers:
            self._workers[identity] = gevent.spawn(self._drain, identity)
        return item.result

    def _drain(self, identity: str) -> None:
        queue = self._queues[identity]
        current: _Push | None = None
        try:
            while queue and not self._stopped:
                current = queue.popleft()
                current.result.set(self._send(identity, current))
                current = None
        finally:
            # No switch from the emptiness check to the end: a push made after this worker ends
            # finds no worker and starts a new one.
            stopping = PushOutcome(False, "the configuration store is stopping")
            if current is not None and not current.result.ready():
                current.result.set(stopping)
            while self._stopped and queue:
                queue.popleft().result.set(stopping)
            self._workers.pop(identity, None)
            if not queue:
                self._queues.pop(identity, None)

    def _send(self, identity: str, item: _Push) -> PushOutcome:
        if item.only_if_connected and not self._is_connected(identity):
            self._counts["skipped"] += 1
            return PushOutcome(False, "not connected")
        try:
            args, kwargs = item.build()
        except Exception as exc:  # a snapshot that cannot be made must not stop the queue
            _log.exception("could not prepare %s for %r", item.method, identity)
            self._counts["failed"] += 1
            return PushOutcome(False, f"not prepared: {exc}")
        try:
            answer = self._call(identity, item.method, *args, **kwargs)
            if not self.clock.wait(answer, self.timeout):
                raise gevent.Timeout(self.timeout)
            answer.get(block=False)
        except gevent.Timeout:  # ResultTimeout included
            return self._failed(identity, item, f"no answer within {self.timeout:g} s", logging.WARNING)
        except Unreachable:
            return self._failed(identity, item, "the agent left the platform", logging.DEBUG)
        except MethodNotFound:
            # an agent started without the config subsystem (enable_store=False)
            return self._failed(identity, item, "the agent does not take configuration updates",
                                logging.DEBUG)
        except Unauthorized as exc:
            return self._failed(identity, item, f"refused by the agent ({exc}); the store needs the "
                                "sync_agent_config capability", logging.ERROR)
        except (Error, VIPError) as exc:
            return self._failed(identity, item, f"failed: {exc}", logging.ERROR)
        self._counts["delivered"] += 1
        return PushOutcome(True, "delivered", args)

    def _failed(self, identity: str, item: _Push, why: str, level: int) -> PushOutcome:
        self._counts["failed"] += 1
        _log.log(level, "%s to %r not delivered: %s", item.method, identity, why)
        return PushOutcome(False, why)

    def pending(self, identity: str) -> int:
        """How many pushes to ``identity`` wait (the one being sent not included)."""
        return len(self._queues.get(identity, ()))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending; pushes still queued resolve as not delivered."""
        self._stopped = True
        workers = list(self._workers.values())
        gevent.killall(workers, block=True, timeout=timeout)
        for identity, queue in list(self._queues.items()):
            while queue:
                queue.popleft().result.set(PushOutcome(False, "the configuration store is stopping"))
            self._queues.pop(identity, None)
        self._workers.clear()

    def statistics(self) -> dict[str, int]:
        """Counts of delivered, skipped, failed and dropped pushes, and of agents with a queue."""
        return {**self._counts, "queues": len(self._queues)}
