"""The gevent hub as pika's I/O loop, one per connection object and reused across reconnections.

pika's :class:`~pika.adapters.gevent_connection.GeventConnection` makes a new loop, with a pipe for
thread-safe callbacks, for every connection attempt, and never closes it: a peer that retries for a
long broker outage would leak two descriptors per attempt. This loop needs no pipe (gevent's own
``run_callback_threadsafe`` wakes the hub); :class:`HubIOServices` on it is handed to every
``GeventConnection`` of one :class:`~volttron.client.messagebus.rmq.RmqConnection` as its
``custom_ioloop``.
"""

from __future__ import annotations

import _socket  # socket.getaddrinfo may be gevent's (monkey-patched), which makes its resolver
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

import gevent
import gevent.socket
from gevent.hub import Waiter

from volttron.client.messagebus.rmq_pika import (
    AbstractIOReference,
    AbstractSelectorIOLoop,
    SelectorIOServicesAdapter,
    io_services_utils,
)

_log = logging.getLogger(__name__)
GATHER_BUFFERS = 512
"""Most buffers one ``sendmsg`` takes (Linux allows 1,024)."""
RECEIVE_BYTES = 64 * 1024
"""Most bytes one read from the broker takes."""
WRITE_THROUGH = 64 * 1024
"""Bytes buffered by a greenlet that keeps sending, after which they are sent at once (see
:class:`_CoalescingTransport`)."""


class HubIOLoop(AbstractSelectorIOLoop):
    """pika's selector loop interface on the current thread's gevent hub."""

    READ = 1
    WRITE = 2
    ERROR = 0

    def __init__(self) -> None:
        self._hub = gevent.get_hub()
        self._thread = threading.get_ident()
        self._watchers: dict[int, tuple[Callable[[int, int], None], Any, Any]] = {}
        """Per descriptor, its handler, a watcher for reading and one for writing (each running while
        wanted)."""
        self._waiter: Waiter[Any] = Waiter()

    def close(self) -> None:
        """Stop watching every descriptor (the hub itself is not ours to destroy)."""
        for fd in list(self._watchers):
            self.remove_handler(fd)

    def start(self) -> None:
        """Block the calling greenlet until :meth:`stop` (pika's blocking helpers only)."""
        self._waiter.get()
        self._waiter.clear()

    def stop(self) -> None:
        """Release :meth:`start`."""
        self._waiter.switch(None)

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` soon in the hub; safe from any thread."""
        if threading.get_ident() == self._thread:
            self._hub.loop.run_callback(callback)
        else:
            self._hub.loop.run_callback_threadsafe(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        """Run ``callback`` after ``delay`` seconds; returns a handle for :meth:`remove_timeout`."""
        timer = self._hub.loop.timer(max(0.0, delay))
        timer.start(callback)
        return timer

    def remove_timeout(self, timeout_handle: Any) -> None:
        """Cancel a :meth:`call_later`."""
        timeout_handle.close()

    def add_handler(self, fd: int, handler: Callable[[int, int], None], events: int) -> None:
        """Call ``handler(fd, READ)`` when ``fd`` is readable, ``handler(fd, WRITE)`` when writable,
        as ``events`` asks."""
        self.remove_handler(fd)
        loop = self._hub.loop
        self._watchers[fd] = (handler, loop.io(fd, self.READ), loop.io(fd, self.WRITE))
        self.update_handler(fd, events)

    def update_handler(self, fd: int, events: int) -> None:
        """Watch ``fd`` for other ``events`` with the same handler.

        pika turns writing on and off around every burst of frames it sends: the watchers stay,
        only started or stopped (each says which event it saw, so a writable socket is not also
        read, nor a readable one written).
        """
        watchers = self._watchers.get(fd)
        if watchers is None:
            return  # closed meanwhile (the connection object was closed while pika tore it down)
        handler, reader, writer = watchers
        for watcher, event in ((reader, self.READ), (writer, self.WRITE)):
            if events & event:
                if not watcher.active:
                    watcher.start(handler, fd, event)
            elif watcher.active:
                watcher.stop()

    def remove_handler(self, fd: int) -> None:
        """Stop watching ``fd``."""
        for watcher in self._watchers.pop(fd, ())[1:]:
            watcher.close()


class _Resolution(AbstractIOReference):
    """A host name being resolved (cancellable until its answer is handed over)."""

    def __init__(self) -> None:
        self.greenlet: gevent.Greenlet | None = None
        self.done = False

    def cancel(self) -> bool:
        if self.done:
            return False
        self.done = True
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
        return True


class HubIOServices(SelectorIOServicesAdapter):
    """pika's I/O services on a :class:`HubIOLoop`, resolving host names with gevent.

    pika's own resolver starts a thread and waits for it to start, which a monkey-patched process
    cannot do inside a loop callback. An IP address needs no resolver: it is converted at once
    (gevent's resolver, made on first use, costs the process a thread pool and about 1 MB).
    """

    def getaddrinfo(self, host: str, port: int, on_done: Callable[..., None], family: int = 0,
                    socktype: int = 0, proto: int = 0, flags: int = 0) -> AbstractIOReference:
        resolution = _Resolution()

        def answer(result: Any) -> None:
            if not resolution.done:
                resolution.done = True
                on_done(result)

        def resolve() -> None:
            try:
                result: Any = gevent.socket.getaddrinfo(host, port, family, socktype, proto, flags)
            except OSError as exc:
                result = exc
            loop.add_callback(lambda: answer(result))  # pika expects its loop's context

        loop = self._loop
        numeric = _numeric_address(host, port, family, socktype, proto, flags)
        if numeric is not None:
            loop.add_callback(lambda: answer(numeric))  # never during the call (pika's contract)
        else:
            resolution.greenlet = gevent.spawn(resolve)
        return resolution


def _numeric_address(host: str, port: int, family: int, socktype: int, proto: int,
                     flags: int) -> list[Any] | None:
    """``getaddrinfo`` of an IP address (no lookup, so it cannot block), or None for a host name."""
    try:
        # bytes: a text host goes through the idna codec (stringprep, unicodedata), needless here
        return _socket.getaddrinfo(host.encode("ascii"), port, family, socktype, proto,
                                   flags | _socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None


_PlainTransport: Any = getattr(io_services_utils, "_AsyncPlaintextTransport", None)


class _CoalescingTransport(_PlainTransport or object):  # type: ignore[misc]
    """pika's plain TCP transport, sending what is buffered in as few system calls as it can.

    pika sends only when the hub runs its writer, so a greenlet that publishes back to back (up to
    the thousands of unconfirmed publishes the link allows) would hold everything until it waits,
    and the broker, idle meanwhile, would get it all at once. Once :data:`WRITE_THROUGH` more bytes
    are buffered, what the socket takes is sent at once, through pika's own writer (which leaves the
    rest for later, and fails the connection as pika does on an error): the broker works while the
    greenlet goes on. The same bytes in the same order.

    It reads up to :data:`RECEIVE_BYTES` a call instead of pika's 4 KB (ten small deliveries): fewer
    system calls, and fewer pieces for the frame reader to join.
    """

    _flush_at = WRITE_THROUGH
    _MAX_RECV_BYTES = RECEIVE_BYTES

    def write(self, data: bytes) -> None:
        super().write(data)
        if self._tx_buffered_byte_count >= self._flush_at and self._state == self._STATE_ACTIVE:
            self._on_socket_writable()
            # at most one try per WRITE_THROUGH bytes buffered, however full the socket is
            self._flush_at = self._tx_buffered_byte_count + WRITE_THROUGH
        elif self._tx_buffered_byte_count < self._flush_at - WRITE_THROUGH:
            self._flush_at = self._tx_buffered_byte_count + WRITE_THROUGH

    def _produce(self) -> None:
        # pika buffers each frame apart and sends them one ``send`` each: three per publish (method,
        # header, body), thousands when a publisher published while the socket was busy. One
        # ``sendmsg`` takes many buffers (the kernel gathers them, nothing is copied here): the
        # same bytes in the same order, with far fewer system calls.
        buffers = self._tx_buffers
        sock = self._sock
        while buffers:
            if len(buffers) == 1:
                sent = sock.send(buffers[0])
            else:
                sent = sock.sendmsg(list(itertools.islice(buffers, GATHER_BUFFERS)))
            self._tx_buffered_byte_count -= sent
            while sent:
                first = buffers[0]
                if sent < len(first):
                    buffers[0] = first[sent:]
                    break
                buffers.popleft()
                sent -= len(first)


def coalesce_writes(connection: Any) -> bool:
    """Make an open pika connection on plain TCP send its buffered frames in as few calls as it can.

    The stream of bytes is the same; only the number of system calls changes. This reaches
    into pika's transport (``connection._transport`` and its buffer), so it is done only when they
    are what pika 1.x has; True if done. TLS connections keep pika's own transport.
    """
    transport: Any = getattr(connection, "_transport", None)
    if _PlainTransport is None or type(transport) is not _PlainTransport:
        _log.debug("pika's writes are not coalesced (transport %r)", type(transport).__name__)
        return False
    if not all(hasattr(transport, name) for name in ("_tx_buffers", "_tx_buffered_byte_count", "_sock",
                                                      "_produce")) or not hasattr(transport._sock, "sendmsg"):
        _log.debug("pika's writes are not coalesced: its transport has changed")
        return False
    transport.__class__ = _CoalescingTransport
    return True


def hub_io_services() -> tuple[HubIOServices, HubIOLoop]:
    """pika's I/O services on a new :class:`HubIOLoop`, and the loop (to close at the end)."""
    loop = HubIOLoop()
    return HubIOServices(loop), loop
