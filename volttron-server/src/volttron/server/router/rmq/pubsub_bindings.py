"""What the RabbitMQ router's pub/sub queue is bound to (docs/protocol.md §6.3).

The router consumes ``<instance>.router.pubsub`` to hand RabbitMQ agents' publishes to the pub/sub
subscribers connected over ZeroMQ (the in-process services, vctl, ZeroMQ agents). The queue is bound
only to what those subscribers asked for, so a publish that no ZeroMQ peer wants never reaches the
platform process (no binding at all while no ZeroMQ peer subscribes):

* A prefix binds its *complete words* followed by ``#``: ``devices/campus/`` binds
  ``__pubsub__.<instance>.devices.campus.#``, ``devices/cam`` binds ``__pubsub__.<instance>.devices.#``
  (the pub/sub index matches string prefixes, so ``devices/cam`` must receive ``devices/campus/x``),
  and ``devices`` or the empty prefix binds ``__pubsub__.<instance>.#``. A dot is a word boundary on
  the broker, as a slash is. Bindings are whole words; the router keeps filtering what arrives with
  the pub/sub index, which does the exact string-prefix match.
* Both platform buckets and every bus count: the routing key carries neither the bus nor the
  bucket, and ``all_platforms`` subscribers get this platform's publishes too. Publishes of other
  platforms reach ZeroMQ subscribers over the platforms' ZeroMQ links (``services.external``),
  never through this queue, so nothing is bound for other instances.
* The binding set is recomputed from the pub/sub index after each change (coalesced: one pass
  covers every change made meanwhile) and is kept minimal: keys are deduplicated, and a key under
  another one (``devices.campus.#`` under ``devices.#``) is left out. A binding key holds at most
  255 bytes; a longer prefix binds fewer words.
* **Bound:** past :data:`MAX_BINDINGS` distinct keys the queue is bound to ``__pubsub__.<instance>.#``
  alone (every publish of this instance reaches the router, whose pub/sub index filters them), and a
  warning is logged the first time.
* A publish that no queue at all is bound for still reaches the router, through the ``undeliverable``
  exchange (fanout: it cannot tell topics apart), and is dropped there at once; only a publish some
  RabbitMQ agent subscribed to passes the platform by.

:class:`PubSubBinder` applies the bindings in a greenlet of its own, so broker round trips never
hold up routing. A ``subscribe`` or ``synchronize`` from a ZeroMQ peer that needs a binding the queue
does not have yet is held until the binding is made, or the attempt fails (a broker operation gives
up after ``OPERATION_TIMEOUT``), so a publish made once the subscription is confirmed reaches the
subscriber, as on ZeroMQ; the peer's later pub/sub requests wait behind it, in order. Nothing is
held while the link is down (its next set-up makes the bindings), nor past
:attr:`PubSubBinder.HOLD_TIMEOUT` seconds once a pass is over. After the router's link comes
back, :class:`~.link.RouterLink` binds the new queue to the same keys before it reports the link up.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import gevent
import gevent.event

from volttron.client.messagebus.base import BusError
from volttron.client.messagebus.rmq_wire import PUBSUB_KEY, topic_words
from volttron.utils.frames import TEXT_ENCODING

_log = logging.getLogger(__name__)

MAX_BINDINGS = 1000
"""Distinct binding keys past which the queue is bound to ``__pubsub__.<instance>.#`` alone."""
MAX_KEY_BYTES = 255
"""An AMQP routing key is a short string."""

Words = tuple[str, ...]
Frames = list[bytes]


def prefix_words(prefix: str) -> Words:
    """The complete words of a subscription prefix: every word followed by a separator (``/`` or ``.``)."""
    return tuple(topic_words(prefix).split(".")[:-1])


def binding_key(instance: str, words: Words) -> str:
    """``__pubsub__.<instance>.<words>.#``."""
    return ".".join((PUBSUB_KEY, instance, *words, "#"))


def fit(instance: str, words: Words) -> Words:
    """``words`` less as many of the last ones as the key needs to hold :data:`MAX_KEY_BYTES`."""
    size = len(binding_key(instance, ()).encode("utf-8"))
    for count, word in enumerate(words):
        size += len(word.encode("utf-8")) + 1
        if size > MAX_KEY_BYTES:
            return words[:count]
    return words


def covered(words: Words, bound: set[Words] | frozenset[Words]) -> bool:
    """Whether a binding of ``words`` or of a prefix of them is in ``bound``."""
    return any(words[:count] in bound for count in range(len(words) + 1))


def minimal(found: Iterable[Words]) -> set[Words]:
    """``found`` without the keys another one of them covers."""
    kept: set[Words] = set()
    for words in sorted(set(found), key=len):
        if not covered(words, kept):
            kept.add(words)
    return kept


def plan(instance: str, prefixes: Iterable[str], limit: int = MAX_BINDINGS) -> tuple[frozenset[Words], bool]:
    """The binding words for ``prefixes`` and whether they passed ``limit`` (then ``{()}``: every topic)."""
    wanted = minimal(fit(instance, prefix_words(prefix)) for prefix in prefixes)
    if len(wanted) > limit:
        return frozenset({()}), True
    return frozenset(wanted), False


def request_prefixes(frames: Frames) -> list[str]:
    """The prefixes a ``subscribe`` or ``synchronize`` request adds (none for anything else, or garbage:
    the pub/sub service answers that)."""
    op = frames[6] if len(frames) > 6 else b""
    try:
        if op == b"subscribe" and len(frames) > 7:
            value = json.loads(frames[7].decode(TEXT_ENCODING)).get("prefix")
            values = [value] if isinstance(value, str) else value
        elif op == b"synchronize" and len(frames) > 8 and frames[7] == b"connected":
            body = json.loads(frames[8].decode(TEXT_ENCODING))
            table = body.get("subscriptions", body)
            values = [p for buses in table.values() for prefixes in buses.values() for p in prefixes]
        else:
            return []
    except (ValueError, AttributeError, TypeError, RecursionError):
        return []
    if not isinstance(values, list):
        return []
    return [p for p in values if isinstance(p, str)]


class BindingLink(Protocol):
    """What :class:`PubSubBinder` needs of the router's link (:class:`~.link.RouterLink`)."""

    @property
    def linked(self) -> bool:
        """True while the link is up."""

    @property
    def pubsub_bound(self) -> frozenset[str]:
        """The keys the pub/sub queue is bound to on the current link."""

    def set_pubsub_bindings(self, keys: frozenset[str]) -> None:
        """Bind the pub/sub queue to exactly ``keys`` (now if linked, else at the next link)."""


class PubSubBinder:
    """Keeps the router's pub/sub queue bound to what ZeroMQ-side subscribers need; see the module docstring.

    ``prefixes()`` gives every prefix subscribed through the pub/sub service (any bucket, any bus);
    ``serve(frames)`` serves a ``pubsub`` request (the router's own handler).
    """

    HOLD_TIMEOUT = 5.0
    """Longest a request waits for its bindings between passes (a pass itself may take longer)."""
    MAX_HELD = 1000
    """Requests of one peer held in order behind a subscription; past it they are served at once."""

    def __init__(self, instance: str, link: BindingLink, prefixes: Callable[[], Iterable[str]],
                 serve: Callable[[Frames], None], limit: int = MAX_BINDINGS) -> None:
        self.instance = instance
        self._link = link
        self._prefixes = prefixes
        self._serve = serve
        self.limit = limit
        self._changed = gevent.event.Event()
        self._held: dict[bytes, deque[tuple[float, Frames]]] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._overflow_logged = False
        self.fallback = False
        self.passes = 0
        self.held_requests = 0

    def start(self) -> None:
        """Make the first pass (what was subscribed before) and follow changes."""
        self._changed.set()
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop following changes."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def changed(self) -> None:
        """The subscriptions changed (the pub/sub service's change listener): a pass will follow."""
        self._changed.set()

    def request(self, frames: Frames) -> None:
        """Serve a ``pubsub`` request now, or hold it until the bindings it needs are made."""
        sender = frames[0]
        held = self._held.get(sender)
        if held is not None:
            if len(held) < self.MAX_HELD:
                held.append((time.monotonic(), frames))
                return
            _log.debug("%r sent too many pub/sub requests while one waited for its bindings", sender)
        elif self._needs_bindings(frames):
            self._held[sender] = deque([(time.monotonic(), frames)])
            self.held_requests += 1
            self._changed.set()
            return
        self._serve(frames)

    def forget(self, peer: bytes) -> None:
        """Drop the requests held for a peer that went away."""
        self._held.pop(peer, None)

    def statistics(self) -> dict[str, Any]:
        """Counts for status output."""
        return {"bindings": len(self._link.pubsub_bound), "fallback": self.fallback, "passes": self.passes,
                "held_requests": self.held_requests, "holding": sum(map(len, self._held.values()))}

    # -- the passes ----------------------------------------------------------------------------
    def _needs_bindings(self, frames: Frames) -> bool:
        if not self._link.linked:
            return False  # bound when the link is back; nothing to wait for now
        prefixes = request_prefixes(frames)
        if not prefixes:
            return False
        bound = self._bound_words()
        return not all(covered(fit(self.instance, prefix_words(p)), bound) for p in prefixes)

    def _bound_words(self) -> frozenset[Words]:
        head = f"{PUBSUB_KEY}.{self.instance}."
        return frozenset(tuple(key[len(head):-1].split(".")[:-1]) for key in self._link.pubsub_bound
                         if key.startswith(head) and key.endswith("#"))

    def _run(self) -> None:
        while True:
            self._changed.wait(self.HOLD_TIMEOUT if self._held else None)
            self._changed.clear()
            try:
                self._pass()
            except Exception:  # the binder must outlive any surprise, or held requests would wait forever
                _log.exception("a pass over the pub/sub bindings failed")
                self._release(failed=True)
            gevent.sleep(0)  # a pass that made no broker call did not yield: let routing go on first

    def _pass(self) -> None:
        held_prefixes = [p for queue in self._held.values() for _, frames in queue
                         for p in request_prefixes(frames)]
        try:
            wanted, overflow = plan(self.instance, [*self._prefixes(), *held_prefixes], self.limit)
        except Exception:  # a pass must never stop the binder
            _log.exception("cannot work out the pub/sub bindings")
            wanted, overflow = frozenset({()}), True
        if overflow and not self._overflow_logged:
            self._overflow_logged = True
            _log.warning("ZeroMQ subscribers need more than %d pub/sub bindings: the router's queue is "
                         "bound to every publish of the instance", self.limit)
        self.fallback = overflow
        self.passes += 1
        failed = False
        try:
            self._link.set_pubsub_bindings(frozenset(binding_key(self.instance, w) for w in wanted))
        except BusError as exc:
            failed = True  # the link dropped: it binds the same keys when it is back
            _log.debug("pub/sub bindings wait for the next link: %s", exc)
        self._release(failed)

    def _release(self, failed: bool) -> None:
        """Serve the held requests whose bindings are made (all of them after a failure), in order."""
        now = time.monotonic()
        for sender in list(self._held):
            queue = self._held.get(sender)
            while queue:
                since, frames = queue[0]
                if not failed and now - since < self.HOLD_TIMEOUT and self._needs_bindings(frames):
                    break  # held after this pass was planned: the next one binds it
                queue.popleft()
                try:
                    self._serve(frames)
                except Exception:  # one bad request must not keep the others
                    _log.exception("serving a held pub/sub request of %r failed", sender)
            if not queue:
                self._held.pop(sender, None)
        if self._held:
            self._changed.set()
