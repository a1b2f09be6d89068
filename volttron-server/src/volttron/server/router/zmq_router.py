"""The platform's ZeroMQ ROUTER socket: endpoints, options, the receive loop and disconnect detection.

Socket set-up follows docs/protocol.md §1.1: one ROUTER bound to ``inproc://vip`` (in-process services, no
authentication) and to every ipc/tcp address, each a CURVE server with the platform's secret key and
ZAP domain ``vip`` (NULL when authentication is disabled); ``ROUTER_MANDATORY`` so an unknown
recipient raises EHOSTUNREACH, ``SNDTIMEO=0`` so a full peer queue raises EAGAIN instead of
blocking, high-water marks, TCP keepalive, ``MAXMSGSIZE`` and ZMTP heartbeats.

The loop runs in one greenlet and is the only user of the socket. It waits on the socket's file
descriptor through the gevent hub, then drains every ready message without blocking (bounded per
wake-up so the ZAP handler and services get their turn) and hands each to ``route``.

Peers that go away are dropped promptly. libzmq of this generation has no ``ROUTER_NOTIFY`` (a
draft API), so the router watches its own socket monitor: ``EVENT_DISCONNECTED`` carries the file
descriptor of the closed connection, and every received message carries the descriptor it came
from (``SRCFD``), which gives the identity of each connection. ZMTP heartbeats turn a peer that
vanished without closing (host down, process stopped) into a disconnect too. A disconnect is applied
only once the socket has no more messages ready, so the last messages a peer sent before closing
are still routed, and it names the identity the descriptor had when the event arrived, so a
descriptor the kernel reuses for a new connection is never confused with the old one.

A second connection with an identity already connected is ignored by libzmq (no
``ROUTER_HANDOVER``): the first keeps working and the second is never routed anything, so its
hello goes unanswered, as with the original platform (docs/protocol.md §1.6). ``ROUTER_HANDOVER`` is left
off on purpose: the newest connection would take the identity over at its handshake, before it
has sent anything the router could check, and the old connection stays open but deaf (libzmq
4.3), so any authorized key could silently receive a live agent's messages.

Identity claims are checked on the first message of each connection (:meth:`_claim_allowed`). A
refused claimant is answered EACCES and its connection closed a moment later (the answer leaves
first); a connection that sends nothing for ``claim_timeout`` seconds is closed too, since it holds
its routing id unchecked; and the identity check bans a refused key at the handshake for a while
(:class:`~volttron.server.services.auth.identity_claims.IdentityClaims`), so the rightful owner
gets in. Connections are closed from the outside (:func:`.connections.shut_down`).

Bytes handed to peers are bounded per peer and in total (:mod:`.queue_budget`), and a message
larger than ``max_message_size`` in all (``MAXMSGSIZE`` bounds single frames) is not forwarded. A
peer over its bound for ``peer_overflow_timeout`` seconds is disconnected.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import gevent
import zmq
import zmq.green
from gevent.hub import Waiter, get_hub
from zmq.utils.monitor import parse_monitor_message

from volttron.client.messagebus.zmq_frames import recv_routed
from volttron.client.messagebus.zmq_frames import send as send_message
from volttron.server.router.connections import ConnectionTracker, send_queue, shut_down
from volttron.server.router.heap import HeapReleaser
from volttron.server.router.queue_budget import Drain, QueueBudget
from volttron.server.router.routing import Frames, MessageTooLarge, PeerBusy, PeerUnreachable
from volttron.utils.errors import VolttronError
from volttron.utils.frames import VIP_SIGNATURE
from volttron.utils.keys import to_z85
from volttron.utils.throttle import LogThrottle

_log = logging.getLogger(__name__)

INPROC_ADDRESS = "inproc://vip"
MAX_SOCKETS = 30690

# Plain ints: pyzmq's constants are enums, and enum arithmetic costs more than a frame send.
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)
_EHOSTUNREACH = int(zmq.EHOSTUNREACH)
_EAGAIN = int(zmq.EAGAIN)
_EACCES = errno.EACCES
_get = zmq.backend.Socket.get
_STALL_GRACE = 1.0
"""Seconds a peer's kernel send queue may stay unchanged before the router calls the peer stuck."""
_MONITORED = (zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
              | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)


class RouterError(VolttronError):
    """The router socket cannot be set up or used (bad address, address in use, ...)."""


@dataclass(frozen=True)
class RouterSettings:
    """How the ROUTER socket is set up (docs/protocol.md §1.1 defaults)."""

    addresses: tuple[str, ...] = ()
    """ipc/tcp endpoints to bind, the local ipc address first."""
    inproc_address: str = INPROC_ADDRESS
    secret_key: str | None = None
    """Platform secret key (any encoding); None means no CURVE (authentication disabled)."""
    zap_domain: bytes = b"vip"
    hwm: int = 6000
    max_message_size: int = 64 * 1024 * 1024
    """Bytes per frame (a peer sending a larger frame is disconnected by libzmq) and per message
    forwarded (a larger one is refused with EMSGSIZE)."""
    max_queued_bytes_per_peer: int = 128 * 1024 * 1024
    """Bytes handed to one peer that it has not been seen taking (raised to ``max_message_size``)."""
    max_queued_bytes: int = 1024 * 1024 * 1024
    """The same for all peers together."""
    peer_overflow_timeout: float = 60.0
    """Seconds a peer may stay over its bound before its connection is closed."""
    claim_timeout: float = 10.0
    """Seconds a new connection may send nothing before it is closed (its routing id is unchecked)."""
    refused_close_delay: float = 0.2
    """Seconds between refusing a claim (EACCES) and closing the connection, for the answer to leave."""
    heartbeat_interval_ms: int = 10_000
    heartbeat_timeout_ms: int = 30_000
    tcp_keepalive: tuple[int, int, int] = (180, 20, 6)
    """Idle seconds, interval seconds, probe count."""
    batch: int = 1000
    """Messages handled per wake-up before yielding to other greenlets."""
    heap_release_after: int = 100
    """Connections opened or closed after which freed memory is handed back to the system (:mod:`.heap`)."""
    heap_release_settle: float = 2.0
    """... once no connection opened or closed for this many seconds,"""
    heap_release_longest: float = 60.0
    """... or this many seconds after the first of those changes, if they never settle."""
    msgdebug: bool = False
    identity_check: Callable[[str, str], bool] | None = None
    """``(user_id, identity) -> allowed`` for CURVE peers; None when authentication is disabled."""


def bind_address(address: str) -> str:
    """The endpoint libzmq binds: the address without a ``?query`` or ``#identity`` suffix."""
    for mark in ("?", "#"):
        address = address.split(mark, 1)[0]
    return address


def make_context(shared: bool = False) -> zmq.green.Context:
    """A gevent-aware context with ``MAX_SOCKETS`` raised (docs/protocol.md §1.1).

    ``shared`` gives a green view of the process-wide ``zmq.Context.instance()``, so in-process
    agents that use the default context can reach ``inproc://vip`` too.
    """
    # a shadow does not keep its original alive: only the class-held instance may be shadowed
    context = (zmq.green.Context.shadow(zmq.Context.instance().underlying) if shared
               else zmq.green.Context())
    try:
        context.set(zmq.MAX_SOCKETS, MAX_SOCKETS)
    except zmq.ZMQError as exc:  # only possible before the first socket; keep the default then
        _log.debug("cannot raise MAX_SOCKETS: %s", exc)
    return context


class ZmqRouterSocket:
    """The bound ROUTER socket and its receive loop; see the module docstring.

    Use: :meth:`bind`, then :meth:`serve` with the routing function and the disconnect callback;
    :meth:`send` is for that routing function; :meth:`close` at the end.
    """

    def __init__(self, settings: RouterSettings, context: zmq.Context, identity: bytes) -> None:
        self.settings = settings
        self.identity = identity
        # A plain (non-gevent) view of the same libzmq context: the loop only ever makes non-blocking
        # calls and does its own waiting, so it needs none of zmq.green's per-call machinery.
        self._context: zmq.Context[Any] = zmq.Context.shadow(context.underlying)
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._waiter: Waiter | None = None
        self._watchers: list = []
        self._connections = ConnectionTracker()
        self._on_disconnect: Callable[[bytes], object] = lambda identity: None
        self.bound: list[str] = []
        self.received = 0
        self.disconnects = 0
        self.auth_failures = 0
        self.identity_refusals = 0
        self.connections_closed = 0
        self._users: dict[bytes, str] = {}
        """Identity -> the user id ZAP gave its connection's key (kept while auth is on)."""
        self._max_message = settings.max_message_size
        self._budget = QueueBudget(max(settings.max_queued_bytes_per_peer, settings.max_message_size),
                                   max(settings.max_queued_bytes, settings.max_message_size),
                                   settings.peer_overflow_timeout, self._drained)
        self._closing: set[tuple[int, int]] = set()
        self._last_outq: dict[bytes, tuple[int, float]] = {}  # peer -> (kernel send queue, since when)
        self._sweeper: gevent.Greenlet | None = None
        self._sweep_due = False
        self._monitor_signalled = True  # read the monitor once at the start
        self._sent_since_read = True
        self._throttle = LogThrottle(_log)
        self._heap = HeapReleaser(settings.heap_release_after, settings.heap_release_settle,
                                  settings.heap_release_longest)

    # -- set-up --------------------------------------------------------------------------------
    def bind(self) -> None:
        """Create the socket, set its options and bind every endpoint; :class:`RouterError` on failure."""
        s = self.settings
        sock = self._context.socket(zmq.ROUTER)
        self._socket = sock
        try:
            sock.setsockopt(zmq.IDENTITY, self.identity)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.SNDTIMEO, 0)
            sock.setsockopt(zmq.LINGER, 0)
            sock.set_hwm(s.hwm)
            sock.setsockopt(zmq.MAXMSGSIZE, s.max_message_size)
            sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
            sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, s.tcp_keepalive[0])
            sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, s.tcp_keepalive[1])
            sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, s.tcp_keepalive[2])
            if s.heartbeat_interval_ms > 0:
                sock.setsockopt(zmq.HEARTBEAT_IVL, s.heartbeat_interval_ms)
                sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, s.heartbeat_timeout_ms)
                sock.setsockopt(zmq.HEARTBEAT_TTL, s.heartbeat_timeout_ms)
        except zmq.ZMQError as exc:
            self.close()
            raise RouterError(f"cannot set up the router socket: {exc}") from None
        self._bind(s.inproc_address)
        if s.secret_key is not None:
            sock.setsockopt(zmq.ZAP_DOMAIN, s.zap_domain)
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, to_z85(s.secret_key))
        for address in s.addresses:
            self._bind(bind_address(address))
        self._monitor = sock.get_monitor_socket(_MONITORED)

    def _bind(self, endpoint: str) -> None:
        assert self._socket is not None
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise RouterError(f"cannot bind {endpoint}: {exc.strerror}") from None
        self.bound.append(endpoint)

    # -- sending -------------------------------------------------------------------------------
    def send(self, frames: Sequence[bytes]) -> None:
        """Send one message; frame 0 is the recipient. Raises :class:`PeerUnreachable`/:class:`PeerBusy`.

        Only the first frame can fail: the ROUTER checks the recipient and its queue there, and takes
        the remaining frames of a message it accepted.
        """
        sock = self._socket
        if sock is None:
            raise RouterError("the router socket is not bound")
        size = sum(map(len, frames))
        peer = frames[0]
        if size > self._max_message:
            raise MessageTooLarge(peer)
        if not self._budget.admit(peer, size):
            self._overflowing(peer)
            raise PeerBusy(peer)
        try:
            if not send_message(sock, frames):
                raise zmq.Again(_EAGAIN)  # the first frame: the peer's queue is full
        except zmq.ZMQError as exc:
            self._budget.refund(peer, size)
            if exc.errno == _EHOSTUNREACH:
                raise PeerUnreachable(frames[0]) from None
            if exc.errno == _EAGAIN:
                raise PeerBusy(frames[0]) from None
            raise RouterError(f"send to {frames[0]!r} failed: {exc}") from None
        finally:
            # The send may have taken the ZMQ_FD signal of a message that arrived meanwhile.
            if self._waiter is None:
                self._sent_since_read = True  # the loop looks before it waits (_wait)
            elif cast(int, _get(sock, _EVENTS)) & _POLLIN:
                get_hub().loop.run_callback(self._wake)  # another greenlet sent while the loop waits

    def _drained(self, peer: bytes) -> Drain:
        fd = self._connections.fd_of.get(peer)
        if fd is None:
            return Drain.STUCK  # never heard from: nothing shows it reads
        if fd < 0:
            return Drain.EMPTY  # in-process services are trusted to read
        found = send_queue(fd)
        if found is None:
            return Drain.STUCK
        queued, size = found
        if queued * 4 < size:
            self._last_outq.pop(peer, None)
            return Drain.EMPTY
        now = time.monotonic()
        last = self._last_outq.get(peer)
        if last is None or last[0] != queued:
            self._last_outq[peer] = (queued, now)
            return Drain.MOVING  # the first look cannot tell: the benefit of the doubt (twice the bound)
        # a reader descheduled for a moment is not stuck; one that took nothing for a second is
        return Drain.MOVING if now - last[1] < _STALL_GRACE else Drain.STUCK

    def _overflowing(self, peer: bytes) -> None:
        budget = self._budget
        self._throttle.warning(f"overflow:{peer!r}", "%r does not take what it is sent: %d bytes held for "
                               "it, %d messages to it dropped so far", peer, budget.queued.get(peer, 0),
                               budget.dropped[peer])
        if budget.overdue(peer):
            fd = self._connections.fd_of.get(peer, -1)
            if fd >= 0:
                self._close_later(fd, 0.0, f"{peer!r}: over its queue bound for "
                                            f"{budget.overflow_timeout:g} s ({budget.dropped[peer]} dropped)")

    # -- closing connections -------------------------------------------------------------------
    def _close_later(self, fd: int, delay: float, why: str) -> None:
        """Close the connection now on ``fd`` after ``delay`` seconds (not a later one on that number)."""
        self._drain_monitor()
        generation = self._connections.generation(fd)
        if generation is None or (fd, generation) in self._closing:
            return
        self._closing.add((fd, generation))
        gevent.spawn_later(delay, self._close_connection, fd, generation, why)

    def _close_connection(self, fd: int, generation: int, why: str) -> None:
        self._closing.discard((fd, generation))
        if self._monitor is None:
            return
        self._drain_monitor()  # a closed connection's number may be a new connection's by now
        if self._connections.generation(fd) != generation:
            return
        if shut_down(fd):
            self.connections_closed += 1
            self._throttle.warning(f"closed:{why[:40]}", "closed the connection of %s", why)
        get_hub().loop.run_callback(self._wake)  # let the loop read the disconnect

    def _sweep(self) -> None:
        # Only marks a sweep as due and wakes the loop, which sweeps once it has read every ready
        # message: a connection whose first message is waiting in the socket is not silent.
        while True:
            gevent.sleep(min(1.0, self.settings.claim_timeout / 2))
            if self._monitor is None:
                return
            self._sweep_due = True
            get_hub().loop.run_callback(self._wake)

    def _close_silent(self) -> None:
        """Close connections that sent nothing for ``claim_timeout`` s; call with no message ready."""
        self._sweep_due = False
        timeout = self.settings.claim_timeout
        self._drain_monitor()
        now = time.monotonic()
        due = self._connections.silent(now - timeout)
        if due:
            # a silent squatter and an owner libzmq ignored behind it look alike from here: close
            # every silent connection together, so the owner's reconnection is not always second
            due += self._connections.silent(now - 1.0)
        for fd, generation in due:
            self._close_connection(fd, generation, f"a connection that sent nothing for {timeout:g} s "
                                                   "(it held a routing id unchecked)")

    # -- the loop ------------------------------------------------------------------------------
    def serve(self, route: Callable[[Frames], None],
              on_disconnect: Callable[[bytes], object]) -> gevent.Greenlet:
        """Start the receive loop in a greenlet; ``on_disconnect(identity)`` when a peer goes away."""
        if self._socket is None or self._monitor is None:
            raise RouterError("bind() the router socket before serving")
        self._on_disconnect = on_disconnect
        if self.settings.msgdebug:
            plain_route = route

            def route(frames: Frames) -> None:
                _log.debug("routing %r", [f if len(f) <= 256 else f[:256] + b"..." for f in frames])
                plain_route(frames)

        loop = get_hub().loop
        for sock, callback in ((self._socket, self._wake), (self._monitor, self._monitor_woke)):
            watcher = loop.io(cast(int, sock.getsockopt(zmq.FD)), 1)  # an int option
            watcher.start(callback)
            self._watchers.append(watcher)
        self._greenlet = gevent.spawn(self._run, route)
        self._sweeper = gevent.spawn(self._sweep)
        return self._greenlet

    def _monitor_woke(self) -> None:
        self._monitor_signalled = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.switch(None)

    def _wait(self) -> None:
        # ZMQ_FD only signals changes, and any call on the socket may take the signal. The read that
        # failed just before has taken every pending one and found nothing, so ZMQ_FD will signal the
        # next message, unless a send since then took that signal: only then look (ZMQ_EVENTS costs
        # two system calls, a failed read as much). The monitor's signals set a flag (_monitor_woke).
        assert self._socket is not None
        if self._monitor_signalled:
            return
        if self._sent_since_read:
            self._sent_since_read = False
            if cast(int, _get(self._socket, _EVENTS)) & _POLLIN:
                return
        waiter = self._waiter = Waiter()
        try:
            waiter.get()
        finally:
            self._waiter = None

    def _run(self, route: Callable[[Frames], None]) -> None:
        assert self._socket is not None
        sock = self._socket
        fd_of = self._connections.fd_of
        batch = self.settings.batch
        while True:
            handled = 0
            while handled < batch:
                received = recv_routed(sock, fd_of)
                if received is None:
                    self._sent_since_read = False  # the failed read took every pending signal
                    break
                handled += 1
                frames, fd, user_id = received
                sender = frames[0]
                if fd_of.get(sender) != fd:
                    if fd >= 0 and not self._claim_allowed(user_id or "", frames, fd):
                        continue
                    self._connection_seen(sender, fd)
                try:
                    route(frames)
                except Exception:  # a bug in one handler must not take the platform down
                    _log.exception("error routing a message from %r", sender)
            self.received += handled
            if self._monitor_signalled:
                self._monitor_signalled = False
                self._drain_monitor()
            if handled < batch:
                # nothing left to read: every message a closed connection sent has been routed
                self._apply_disconnects()
                if self._sweep_due:
                    self._close_silent()
                    self._heap.maybe_release()
                self._wait()
            else:
                gevent.sleep(0)

    # -- identity claims -----------------------------------------------------------------------
    def _claim_allowed(self, user_id: str, frames: Frames, fd: int) -> bool:
        """May the key behind this new connection speak as the identity it declared?

        Checked once per connection (the first message over it), so the hot path never pays for it.
        A refused message is answered with EACCES and not routed; the peer is never added, and the
        connection is closed (the identity is free again for its owner).
        """
        check = self.settings.identity_check
        if check is None:
            return True
        identity = frames[0].decode("iso-8859-1")
        if check(user_id, identity):
            self._users[frames[0]] = user_id
            return True
        self.identity_refusals += 1
        self._throttle.warning(f"claim:{identity[:60]!r}:{user_id}", "refused %r: its key (user %r) may not "
                               "use that identity; closing its connection", identity, user_id)
        self._close_later(fd, self.settings.refused_close_delay,
                          f"{identity!r} (user {user_id!r}): identity claim refused")
        if len(frames) >= 6 and frames[2] == VIP_SIGNATURE and frames[5] != b"error":
            try:
                self.send([frames[0], b"", VIP_SIGNATURE, b"", frames[4], b"error", str(_EACCES).encode(),
                           os.strerror(_EACCES).encode(), frames[1], frames[5]])
            except (PeerUnreachable, PeerBusy, RouterError):
                pass
        return False

    # -- connection tracking -------------------------------------------------------------------
    def _connection_seen(self, sender: bytes, fd: int) -> None:
        """``sender`` spoke over a connection not yet tied to it (new peer, or it reconnected)."""
        # Events about the descriptor's previous owner were queued before this connection existed:
        # read them first so they are charged to that owner, not to ``sender``.
        self._drain_monitor()
        self._connections.seen(sender, fd)

    def _drain_monitor(self) -> None:
        monitor = self._monitor
        assert monitor is not None
        if not cast(int, _get(monitor, _EVENTS)) & _POLLIN:
            return  # the usual case, without the cost of a failed read (an exception)
        recv_multipart = monitor.recv_multipart
        while True:
            try:
                event = parse_monitor_message(recv_multipart(_NOBLOCK))
            except zmq.Again:
                return
            kind = event["event"]
            if kind == zmq.EVENT_ACCEPTED:
                self._connections.accepted(event["value"], time.monotonic())
                self._heap.changed()
            elif kind == zmq.EVENT_DISCONNECTED:
                self._connections.disconnected(event["value"])
                self._heap.changed()
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self.auth_failures += 1
                _log.info("refused a connection on %s: authentication failed", event["endpoint"].decode())
            else:
                _log.info("handshake failed on %s (event %s)", event["endpoint"].decode(), kind)

    def _apply_disconnects(self) -> None:
        for identity in self._connections.settle():
            self.disconnects += 1
            _log.debug("peer %r disconnected", identity)
            self._users.pop(identity, None)
            try:
                self._on_disconnect(identity)
            except Exception:
                _log.exception("error handling the disconnect of %r", identity)

    def forget(self, identity: bytes) -> None:
        """Stop tracking ``identity`` (it was dropped for another reason)."""
        self._connections.forget(identity)
        self._users.pop(identity, None)
        self._budget.forget(identity)
        self._last_outq.pop(identity, None)

    def user_of(self, identity: bytes) -> str | None:
        """The user id ZAP authenticated ``identity``'s connection as; None when auth is off or unknown."""
        return self._users.get(identity)

    # -- status and shutdown -------------------------------------------------------------------
    def statistics(self) -> dict[str, int]:
        """Counts for status output."""
        return {"received": self.received, "disconnects": self.disconnects,
                "auth_failures": self.auth_failures, "identity_refusals": self.identity_refusals,
                "connections": len(self._connections), "connections_closed": self.connections_closed,
                "heap_releases": self._heap.releases,
                **self._budget.statistics()}

    def close(self) -> None:
        """Stop the loop and close the sockets (pending outgoing messages are discarded)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None
        if self._sweeper is not None:
            self._sweeper.kill(block=True, timeout=5)
            self._sweeper = None
        for watcher in self._watchers:
            watcher.stop()
            watcher.close()
        self._watchers.clear()
        if self._monitor is not None:
            if self._socket is not None:
                try:
                    self._socket.disable_monitor()
                except zmq.ZMQError:
                    _log.debug("monitor already gone")
            self._monitor.close(0)
            self._monitor = None
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
