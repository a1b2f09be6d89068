"""The ZeroMQ back-end: a DEALER socket to the platform's ROUTER (docs/protocol.md §1.1, §1.2, §8.2).

The socket identity is the agent's VIP identity, set before connecting. With a server key the
socket is a CURVE client (keys given as 43-character URL-safe base64, converted to Z85 here).
Options follow the original peer: high-water mark 6000, ``IMMEDIATE``, TCP keep-alive 180/20/6,
``RECONNECT_IVL`` when asked. A socket monitor turns link changes into
:class:`~volttron.client.messagebus.base.BusEvent` callbacks; CONNECTED is reported once the
ZMTP/CURVE handshake has succeeded, so the first message sent after it goes out at once.

Why not ``zmq.green`` sockets: their Python wrappers re-check the socket state after every frame,
which costs two thirds of the receive throughput on 8-frame VIP messages (measured 47k vs 141k
messages/s). :class:`CooperativeSocket` applies the same edge-triggered ``ZMQ_FD`` protocol once
per operation instead: every ZeroMQ call is non-blocking, and waits yield to the gevent hub.

``zmq.ZMQError`` never leaves this module; it becomes :class:`~.base.BusError`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import struct
from typing import Any, cast

import gevent
import zmq
from gevent import getcurrent
from gevent.event import Event
from gevent.hub import Waiter
from zmq.utils import z85

try:  # pyzmq's compiled socket class; the Python subclass only adds convenience wrappers
    from zmq.backend import Socket as _BackendSocket
except ImportError:  # pragma: no cover - every supported pyzmq has it
    _BackendSocket = zmq.Socket  # type: ignore[misc,assignment]

from volttron.client.messagebus.address import parse_vip_address
from volttron.client.messagebus.base import (
    BusClosed,
    BusError,
    BusEvent,
    BusTimeout,
    Connection,
    ConnectionParams,
    EventCallback,
    Message,
)
from volttron.client.messagebus.zmq_frames import recv as _recv_message
from volttron.client.messagebus.zmq_frames import send as _send_message
from volttron.utils.errors import ConfigError
from volttron.utils.frames import TEXT_ENCODING, VIP_SIGNATURE

_log = logging.getLogger(__name__)

HWM = 6000
KEEPALIVE_IDLE = 180
KEEPALIVE_INTERVAL = 20
KEEPALIVE_COUNT = 6
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_get = getattr(_BackendSocket, "get", zmq.Socket.get)
_CLOSED_ERRNOS = (zmq.ENOTSOCK, zmq.ETERM)

_MONITOR_EVENTS = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: BusEvent.CONNECTED,
    zmq.EVENT_DISCONNECTED: BusEvent.DISCONNECTED,
    zmq.EVENT_CONNECT_RETRIED: BusEvent.CONNECT_RETRIED,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: BusEvent.HANDSHAKE_FAILED,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: BusEvent.HANDSHAKE_FAILED,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: BusEvent.HANDSHAKE_FAILED,
}
_MONITOR_MASK = sum(set(_MONITOR_EVENTS))  # distinct bits


def shared_context(context: Any = None) -> zmq.Context:
    """A plain ZeroMQ context: ``context`` (any pyzmq context, green or not) shadowed, or the global one.

    In-process peers (``inproc://``) must use the libzmq context the router bound in; pass it.
    """
    if context is None:
        return zmq.Context.instance()
    underlying = getattr(context, "underlying", None)
    if underlying is None:
        raise BusError(f"not a ZeroMQ context: {context!r}")
    return zmq.Context.shadow(underlying)


class CooperativeSocket:
    """A plain ZeroMQ socket whose blocking operations wait in the gevent hub.

    ``ZMQ_FD`` only signals that the socket state may have changed, and any ZeroMQ call on the
    socket may consume that signal. So a writer re-reads ``ZMQ_EVENTS`` before it sleeps; a reader
    sleeps right after a read that failed (that read ran every pending command and found nothing, so
    the next message signals again), and when ``ZMQ_FD`` fires while only readers wait, the hub
    switches straight to them (their read runs the pending commands; asking ``ZMQ_EVENTS`` first
    would cost two system calls and a pass through the hub's callbacks before every message).
    After a burst of sends the socket reads ``ZMQ_EVENTS`` once, before the hub sleeps, and wakes a
    waiting reader only if a message is there; a read wakes a waiting writer's check. Whole messages
    are read and sent by :mod:`volttron.client.messagebus.zmq_frames` (one call a message with the
    compiled helper, pyzmq's compiled methods frame by frame without it).
    """

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self._readers: list[Waiter[Any]] = []
        self._writable = Event()
        self._write_waiters = 0
        self._hub = gevent.get_hub()
        self._loop = self._hub.loop
        self._look_pending = False
        self._watcher = self._loop.io(int(sock.getsockopt(zmq.FD)), 1)
        self._watcher.start(self._signalled)

    def _signalled(self) -> None:
        # In the hub: ZMQ_FD fired. Readers alone: let their read run the pending commands.
        if self._readers and not self._write_waiters:
            self._wake_readers()
        else:
            self._update()

    def _look(self) -> None:
        self._look_pending = False
        self._update()

    def _events(self) -> int:
        """ZMQ_EVENTS (runs libzmq's pending commands); both directions once the socket is closed, so
        whoever waits tries again and its call reports the closing."""
        try:
            return cast(int, _get(self.sock, _EVENTS))  # zmq.EVENTS is an int option
        except zmq.ZMQError:
            return _POLLIN | _POLLOUT

    def _update(self) -> None:
        events = self._events()
        if events & _POLLIN and self._readers:
            self._wake_readers()
        if events & _POLLOUT:
            self._writable.set()

    def _wake_readers(self) -> None:
        readers, self._readers = self._readers, []
        if getcurrent() is self._hub:
            for waiter in readers:
                waiter.switch(True)
        else:
            for waiter in readers:
                self._loop.run_callback(waiter.switch, True)

    def _wait_readable(self, timeout: float | None) -> bool:
        """Wait after a failed read until ZMQ_FD fires (True) or ``timeout`` passes (False)."""
        if self._write_waiters and self._events() & _POLLIN:
            return True  # a waiting writer's look may have taken the signal of a message that came meanwhile
        # else: the read that failed just before took every pending signal and found no message, so
        # ZMQ_FD signals the next one; looking again (ZMQ_EVENTS: two system calls) would tell nothing.
        waiter: Waiter[Any] = Waiter(self._hub)
        readers = self._readers
        readers.append(waiter)
        timer = None
        if timeout is not None:
            timer = self._loop.timer(max(0.0, timeout))
            timer.start(waiter.switch, False)
        try:
            return bool(waiter.get())
        finally:
            if timer is not None:
                timer.close()
            if waiter in self._readers:
                self._readers.remove(waiter)

    def _wait_writable(self, timeout: float | None) -> bool:
        event = self._writable
        event.clear()
        self._update()
        if event.is_set():
            return True
        self._write_waiters += 1
        try:
            return event.wait(timeout)
        finally:
            self._write_waiters -= 1

    def recv_multipart(self, timeout: float | None = None) -> list[bytes] | None:
        """The next multipart message, or None after ``timeout`` seconds."""
        sock = self.sock
        while True:
            parts = _recv_message(sock)
            if parts is None:
                if not self._wait_readable(timeout) and timeout is not None:
                    return None
                continue
            if self._write_waiters:
                self._update()  # the call may have taken the edge a waiting writer needs
            return parts

    def send_multipart(self, frames: list[bytes], timeout: float | None = None) -> bool:
        """Queue ``frames`` as one message; False when not possible within ``timeout`` seconds."""
        sock = self.sock
        while not _send_message(sock, frames):
            if not self._wait_writable(timeout) and timeout is not None:
                return False
        if self._readers and not self._look_pending:
            # The send may have taken the edge that says a message waits: look before the hub
            # sleeps, once for a whole burst of sends (ZMQ_EVENTS costs two system calls and runs
            # libzmq's pending commands), rather than wake the reader for nothing each time.
            self._look_pending = True
            self._loop.run_callback(self._look)
        return True

    def close(self, linger_ms: int = 0) -> None:
        """Stop watching and close the socket; waiting greenlets wake and see it closed."""
        self._watcher.stop()
        self._watcher.close()
        if not self.sock.closed:
            self.sock.close(linger=linger_ms)
        self._wake_readers()
        self._writable.set()


class ZmqConnection(Connection):
    """A VIP peer connection over a ZeroMQ DEALER socket."""

    name = "zmq"
    uses_curve_keys = True
    reports_disconnects = True

    def __init__(self, params: ConnectionParams) -> None:
        super().__init__(params)
        self._socket: CooperativeSocket | None = None
        self._monitor: gevent.Greenlet | None = None
        self._monitor_socket: CooperativeSocket | None = None
        self._closed = False
        self._sent = 0
        self._received = 0
        self._dropped = 0
        self._events: dict[str, int] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    def open(self, on_event: EventCallback) -> None:
        if self._socket is not None or self._closed:
            raise BusError("a ZeroMQ connection can be opened once")
        params = self.params
        try:
            address = parse_vip_address(params.address)
        except ConfigError as exc:
            raise BusError(str(exc)) from exc
        try:
            identity = params.identity.encode(TEXT_ENCODING)
        except UnicodeEncodeError as exc:
            raise BusError(f"identity {params.identity!r} is not Latin-1 text") from exc
        context = shared_context(params.options.get("context"))
        sock = None
        try:
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.IDENTITY, identity)
            sock.set_hwm(HWM)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
            sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, KEEPALIVE_IDLE)
            sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, KEEPALIVE_INTERVAL)
            sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, KEEPALIVE_COUNT)
            if params.reconnect_interval is not None:
                sock.setsockopt(zmq.RECONNECT_IVL, max(1, int(params.reconnect_interval * 1000)))
            if params.serverkey:
                self._set_curve(sock, params)
            monitor = None
            if address.scheme != "inproc":
                monitor = sock.get_monitor_socket(_MONITOR_MASK)
            sock.connect(address.base)
        except zmq.ZMQError as exc:
            if sock is not None:
                sock.close(linger=0)
            raise BusError(f"cannot connect to {address.redacted()}: {exc}") from exc
        self._socket = CooperativeSocket(sock)
        if monitor is not None:
            self._monitor_socket = CooperativeSocket(monitor)
            self._monitor = gevent.spawn(self._watch, self._monitor_socket, on_event)
        else:
            # inproc has no handshake to wait for: the link is usable now (docs/protocol.md §1.8 step 2)
            gevent.spawn(on_event, BusEvent.CONNECTED, address.base)

    @staticmethod
    def _set_curve(sock: zmq.Socket, params: ConnectionParams) -> None:
        if not (params.publickey and params.secretkey):
            raise BusError("a server key was given but no public/secret key pair for this peer")
        sock.curve_serverkey = z85_key(params.serverkey or "")
        sock.curve_publickey = z85_key(params.publickey)
        sock.curve_secretkey = z85_key(params.secretkey)

    def _watch(self, monitor: CooperativeSocket, on_event: EventCallback) -> None:
        while not self._closed:
            try:
                frames = monitor.recv_multipart()
            except zmq.ZMQError:
                return
            if frames is None or self._closed:
                return
            if len(frames) < 2 or len(frames[0]) < 6:
                continue
            # ZMQ_EVENT message: 16-bit event number, 32-bit value, then the endpoint. (pyzmq's
            # parser imports asyncio, 3 MB an agent does not otherwise need.)
            event = _MONITOR_EVENTS.get(struct.unpack_from("=H", frames[0])[0])
            if event is None:
                continue
            self._events[event.value] = self._events.get(event.value, 0) + 1
            detail = frames[1].decode(TEXT_ENCODING)
            try:
                on_event(event, detail)
            except Exception:
                _log.exception("connection event handler failed on %s", event.value)

    def send(self, message: Message, timeout: float | None = None) -> None:
        sock = self._socket
        if sock is None or self._closed:
            raise BusClosed("the connection is closed")
        try:
            frames = [
                message.peer.encode(TEXT_ENCODING),
                VIP_SIGNATURE,
                message.user.encode(TEXT_ENCODING),
                message.id.encode(TEXT_ENCODING),
                message.subsystem.encode(TEXT_ENCODING),
            ]
            for arg in message.args:
                frames.append(arg if isinstance(arg, bytes) else _to_bytes(arg))
        except UnicodeEncodeError as exc:
            raise BusError(f"a frame of the {message.subsystem!r} message is not Latin-1 text") from exc
        try:
            sent = sock.send_multipart(frames, timeout)
        except zmq.ZMQError as exc:
            if exc.errno in _CLOSED_ERRNOS or self._closed:
                raise BusClosed("the connection is closed") from exc
            raise BusError(f"send failed: {exc}") from exc
        if not sent:
            raise BusTimeout(f"could not send to {message.peer!r} within {timeout} s (platform unreachable?)")
        self._sent += 1

    def recv(self, timeout: float | None = None) -> Message | None:
        sock = self._socket
        if sock is None:
            raise BusClosed("the connection is not open")
        while True:
            try:
                frames = sock.recv_multipart(timeout)
            except zmq.ZMQError as exc:
                raise BusClosed("the connection is closed") from exc
            if frames is None:
                if self._closed:
                    raise BusClosed("the connection is closed")
                return None
            if len(frames) < 5 or frames[1] != VIP_SIGNATURE:
                self._dropped += 1
                _log.warning("dropped a message that is not VIP (%d frames)", len(frames))
                continue
            self._received += 1
            return Message(
                frames[0].decode(TEXT_ENCODING),
                frames[4].decode(TEXT_ENCODING),
                frames[5:],
                frames[3].decode(TEXT_ENCODING),
                frames[2].decode(TEXT_ENCODING),
            )

    def close(self, linger: float = 1.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self._monitor is not None:
            self._monitor.kill(block=False)
        if self._socket is not None:
            try:
                self._socket.sock.disable_monitor()
            except zmq.ZMQError:
                pass  # already closed or never monitored
            self._socket.close(int(max(0.0, linger) * 1000))
        if self._monitor_socket is not None:
            self._monitor_socket.close(0)

    def statistics(self) -> dict[str, Any]:
        return {
            "bus": self.name,
            "sent": self._sent,
            "received": self._received,
            "dropped_non_vip": self._dropped,
            "events": dict(self._events),
        }


def z85_key(key: str) -> bytes:
    """The Z85 form ZeroMQ wants of a key given as 43 characters of URL-safe base64 (or any form).

    The common forms are converted here; others go through :func:`volttron.utils.keys.to_z85`,
    which loads cryptography (7 MB an agent process need not carry).
    """
    if len(key) == 40:
        return key.encode("ascii")
    if len(key) in (43, 44):
        try:
            raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 32:
            return z85.encode(raw)
    from volttron.utils.keys import to_z85

    return to_z85(key)


def _to_bytes(arg: Any) -> bytes:
    if isinstance(arg, str):
        return arg.encode(TEXT_ENCODING)
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    raise BusError(f"message arguments are bytes or text, not {type(arg).__name__}")


CONNECTION_CLASS = ZmqConnection
