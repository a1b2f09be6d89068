"""The platform's table of peers and their heartbeats, and the rule that turns it into health.

Pure bookkeeping: no sockets, no greenlets. The service feeds it what the router announces
(``peer_connected``, ``peer_dropped``) and the ``heartbeat/<identity>`` publications it hears, and
asks it for :meth:`HealthTracker.report`. Times come from two injected clocks: a monotonic one for
ages and periods, a wall clock for the timestamps shown.

Each peer is in one of three states:

``connected``
    Its ``status`` is the one its last heartbeat carried (``GOOD``, ``BAD``...), or ``UNKNOWN``
    with context ``"no heartbeat received"`` if it never sent one (tools, ``build_agent`` scripts).
``stale``
    It sent heartbeats but stopped: nothing arrived for longer than its allowance (the stale rule
    below). ``status`` is ``UNKNOWN``, context ``"no heartbeat for N s (expected every P s)"``: the
    platform no longer knows how the agent is, and says so rather than repeat an old ``GOOD``.
``disconnected``
    The router dropped it (it stopped, crashed, or its connection broke). ``status`` is
    ``UNKNOWN``, context ``"disconnected"``; ``disconnected`` holds when. The last
    :attr:`StaleRule.keep_disconnected` such entries are kept, oldest forgotten first; a peer that
    connects again starts afresh.

The stale rule (:class:`StaleRule`): a peer's *period* is the one it declares in its heartbeat's
``heartbeat_period`` header (our agents do; see
:data:`volttron.client.vip.agent.subsystems.heartbeat.PERIOD_HEADER`). Without one it is the
longest of its last :attr:`~StaleRule.samples` intervals between heartbeats, leaving out an
interval that ends with a changed status (an agent publishes at once when its status changes, so
that interval says nothing about its period) and one shorter than :attr:`~StaleRule.burst`
(a heartbeat restarted at start or on reconnection publishes at once, microseconds after the last
one). Before a usable interval has been seen the period is assumed to be
:attr:`~StaleRule.assumed_period` (60 s, the agents' default). The peer is stale when the time since
its last heartbeat exceeds ``max(factor * period, period + min_slack)``: with the defaults, three
missed periods, but never less than one period plus a second, so scheduling jitter on a busy host
does not flag agents with very short periods.

A heartbeat from a peer in state ``disconnected`` is ignored: it was published before the drop
(pub/sub callbacks run after the drop notice that followed it on the wire). A peer that really
comes back is announced by the router first, and its heartbeats count again from then on.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from volttron.client.messaging.health import ACCEPTABLE_STATUS, STATUS_UNKNOWN
from volttron.utils.errors import VolttronError
from volttron.utils.time import format_timestamp, get_aware_utc_now

CONNECTED = "connected"
STALE = "stale"
DISCONNECTED = "disconnected"


class UnknownPeerError(VolttronError, KeyError):
    """No peer with that identity has been seen (or it was forgotten)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown peer"


@dataclass(frozen=True)
class StaleRule:
    """When a peer that sends heartbeats counts as stale; see the module docstring."""

    factor: float = 3.0
    min_slack: float = 1.0
    """Seconds beyond one period always allowed."""
    assumed_period: float = 60.0
    """Period assumed before two heartbeats have been seen (the agents' default)."""
    samples: int = 4
    """Intervals remembered per peer to estimate its period."""
    burst: float = 0.05
    """Intervals shorter than this (seconds) are restarts of the heartbeat, not its period."""
    keep_disconnected: int = 256
    """Disconnected peers remembered (the oldest are forgotten first)."""

    def __post_init__(self) -> None:
        if self.factor < 1 or self.min_slack < 0 or self.assumed_period <= 0 or self.samples < 1:
            raise ValueError(f"invalid stale rule {self!r}")
        if self.burst < 0:
            raise ValueError("burst must not be negative")
        if self.keep_disconnected < 0:
            raise ValueError("keep_disconnected must not be negative")

    def allowance(self, period: float) -> float:
        """Seconds without a heartbeat after which a peer with ``period`` is stale."""
        return max(self.factor * period, period + self.min_slack)


def status_of(message: Any) -> str | None:
    """The status a heartbeat message carries: the string itself, or a status dict's ``status``."""
    if isinstance(message, dict):
        message = message.get("status")
    return message if isinstance(message, str) and message in ACCEPTABLE_STATUS else None


def usable_period(value: Any) -> float | None:
    """A declared heartbeat period as seconds, or None when it is not a positive finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


@dataclass
class PeerRecord:
    """What the tracker knows of one peer."""

    identity: str
    service_agent: bool
    connected: str
    disconnected: str | None = None
    last_heartbeat: str | None = None
    last_heartbeat_at: float | None = None
    message: Any = None
    declared_period: float | None = None
    intervals: deque[float] = field(default_factory=deque)

    @property
    def is_connected(self) -> bool:
        """False once the router dropped it."""
        return self.disconnected is None


class HealthTracker:
    """The table of peers; see the module docstring.

    ``service_identities`` are the identities reported with ``service_agent: true``. ``monotonic``
    returns seconds (ages, periods); ``timestamp`` returns the wall-clock text shown to users.
    """

    def __init__(
        self,
        service_identities: Iterable[str] = (),
        rule: StaleRule | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        timestamp: Callable[[], str] | None = None,
    ) -> None:
        self.rule = rule or StaleRule()
        self._services = frozenset(service_identities)
        self._monotonic = monotonic
        self._timestamp = timestamp or _utc_timestamp
        self._peers: dict[str, PeerRecord] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()  # disconnected identities, oldest first
        self.heartbeats = 0
        self.ignored_heartbeats = 0

    # -- events --------------------------------------------------------------------------------
    def peer_connected(self, identity: str) -> None:
        """The router announced ``identity`` (or listed it); a known connected peer is left as is."""
        record = self._peers.get(identity)
        if record is not None and record.is_connected:
            return
        self._gone.pop(identity, None)
        self._peers[identity] = PeerRecord(identity, identity in self._services, self._timestamp())

    def peers_listed(self, identities: Iterable[str]) -> None:
        """The router listed these peers; only identities not in the table are added.

        A listing may be older than a drop notice handled meanwhile, so it never revives a peer
        that is known to be disconnected.
        """
        for identity in identities:
            if identity not in self._peers:
                self.peer_connected(identity)

    def peer_dropped(self, identity: str) -> None:
        """The router dropped ``identity``."""
        record = self._peers.get(identity)
        if record is None or not record.is_connected:
            return
        record.disconnected = self._timestamp()
        self._gone[identity] = None
        while len(self._gone) > self.rule.keep_disconnected:
            oldest, _ = self._gone.popitem(last=False)
            del self._peers[oldest]

    def heartbeat(self, identity: str, message: Any, declared_period: Any = None) -> bool:
        """``identity`` published a heartbeat carrying ``message``; False when it was ignored.

        ``declared_period`` is the period the heartbeat's header states (ignored unless a positive
        finite number of seconds).
        """
        record = self._peers.get(identity)
        if record is None:
            # connected before we could learn of it (we started after it): it is connected now
            self.peer_connected(identity)
            record = self._peers[identity]
        elif not record.is_connected:
            self.ignored_heartbeats += 1
            return False
        now = self._monotonic()
        interval = None if record.last_heartbeat_at is None else now - record.last_heartbeat_at
        if (interval is not None and interval >= self.rule.burst
                and status_of(message) == status_of(record.message)):
            record.intervals.append(interval)
            while len(record.intervals) > self.rule.samples:
                record.intervals.popleft()
        declared = usable_period(declared_period)
        if declared is not None:
            record.declared_period = declared
        record.last_heartbeat_at = now
        record.last_heartbeat = self._timestamp()
        record.message = message
        self.heartbeats += 1
        return True

    def forget(self, identity: str) -> None:
        """Remove ``identity`` from the table altogether."""
        self._peers.pop(identity, None)
        self._gone.pop(identity, None)

    # -- reading -------------------------------------------------------------------------------
    def identities(self) -> list[str]:
        """Every identity in the table, connected or not."""
        return list(self._peers)

    def period(self, identity: str) -> float | None:
        """The heartbeat period of ``identity``: declared, else observed (None when neither is known)."""
        return _known_period(self._record(identity))

    def entry(self, identity: str) -> dict[str, Any]:
        """The health of one peer; :class:`UnknownPeerError` when it is not in the table."""
        return self._entry(self._record(identity), self._monotonic())

    def report(self, exclude: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
        """``{identity: entry}`` for every peer in the table except ``exclude``."""
        skip = frozenset(exclude)
        now = self._monotonic()
        return {identity: self._entry(record, now)
                for identity, record in self._peers.items() if identity not in skip}

    def statistics(self) -> dict[str, int]:
        """Counts for status output."""
        states = [self._state(record, self._monotonic())[0] for record in self._peers.values()]
        return {"peers": len(states), "connected": states.count(CONNECTED), "stale": states.count(STALE),
                "disconnected": states.count(DISCONNECTED), "heartbeats": self.heartbeats,
                "ignored_heartbeats": self.ignored_heartbeats}

    def _record(self, identity: str) -> PeerRecord:
        try:
            return self._peers[identity]
        except KeyError:
            raise UnknownPeerError(f"no peer {identity!r} is known to the health service") from None

    def _state(self, record: PeerRecord, now: float) -> tuple[str, str, Any]:
        """(state, status, context) of ``record`` at monotonic time ``now``."""
        if not record.is_connected:
            return DISCONNECTED, STATUS_UNKNOWN, "disconnected"
        if record.last_heartbeat_at is None:
            return CONNECTED, STATUS_UNKNOWN, "no heartbeat received"
        period = _known_period(record) or self.rule.assumed_period
        silent = now - record.last_heartbeat_at
        if silent > self.rule.allowance(period):
            return STALE, STATUS_UNKNOWN, f"no heartbeat for {silent:.1f} s (expected every {period:.3g} s)"
        status = status_of(record.message)
        if status is None:
            return CONNECTED, STATUS_UNKNOWN, f"unrecognized heartbeat message {record.message!r}"
        context = record.message.get("context") if isinstance(record.message, dict) else None
        return CONNECTED, status, context

    def _entry(self, record: PeerRecord, now: float) -> dict[str, Any]:
        state, status, context = self._state(record, now)
        return {
            "peer": record.identity,
            "service_agent": record.service_agent,
            "connected": record.connected,
            "disconnected": record.disconnected,
            "last_heartbeat": record.last_heartbeat,
            "message": record.message,
            "heartbeat_period": _known_period(record),
            "state": state,
            "status": status,
            "context": context,
        }


def _known_period(record: PeerRecord) -> float | None:
    if record.declared_period is not None:
        return record.declared_period
    return max(record.intervals) if record.intervals else None


def _utc_timestamp() -> str:
    return format_timestamp(get_aware_utc_now())
