"""A self-healing AMQP link with publisher confirms: the machinery under the RabbitMQ back-end.

:class:`AmqpLink` keeps one pika :class:`~pika.adapters.gevent_connection.GeventConnection` open,
and opens it again whenever it drops (backing off up to a few seconds), until closed. Broker
operations (declare, bind, consume) are written as plain calls that wait for the broker's answer
(:meth:`AmqpLink._call`), and fail when the channel or connection they wait on closes. Besides
the channel that consumes, one channel carries declarations and bindings and one publishes, so a
refused binding or publish never takes down the consumers (whose queues go with them).

Every publish is confirmed by the broker. :meth:`AmqpLink.publish` records what to tell the sender
once the broker confirms (a reply) or refuses it, or when the link drops before it confirmed (an
EAGAIN error for that message id): nothing is reported sent and then lost. A publish waits, up to
its timeout, while there is no link, the broker blocks publishers, or too many publishes await
confirmation.

A publish whose routing key the user's topic permissions refuse (a protected topic, see the
platform's ``router.rmq.topic_permissions``) makes the broker close the publishing channel with
ACCESS_REFUSED: it is logged, its sender gets the refusal for its message id (on pub/sub the
``-32001`` error a ZeroMQ platform answers, which the agent raises as unauthorized), the publishes
still unconfirmed on that channel get EAGAIN, and a new publishing channel is opened; the link and
its consumers stay.

The subclass (:class:`~volttron.client.messagebus.rmq.RmqConnection`) says what a link needs
(:meth:`AmqpLink._prepare_link`) and receives what comes in.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.queue import Queue

from volttron.client.messagebus.base import BusClosed, BusError, BusEvent, BusTimeout, EventCallback, Message
from volttron.client.messagebus.rmq_config import BrokerSettings
from volttron.client.messagebus.rmq_frames import PublishFrames, publish_frames, read_frames_here
from volttron.client.messagebus.rmq_frames import publish as publish_message
from volttron.client.messagebus.rmq_ioloop import coalesce_writes
from volttron.client.messagebus.rmq_pika import Basic, ConnectionParameters, GeventConnection
from volttron.client.messagebus.rmq_pika import exceptions as pika_errors
from volttron.client.messagebus.rmq_wire import EXCHANGE, PUBSUB_TYPE, topic_from_routing_key
from volttron.utils.errors import VolttronError
from volttron.utils.frames import TEXT_ENCODING

_log = logging.getLogger("volttron.client.messagebus.rmq")

OPERATION_TIMEOUT = 10.0
"""Seconds a broker operation (declare, bind, consume) may take before the link is considered lost."""
MAX_UNCONFIRMED = 10_000
"""Publishes awaiting the broker's confirmation before senders wait."""
QUEUE_EXPIRES_MS = 60_000
"""A peer's queue that nobody consumed for this long is deleted by the broker."""
FIRST_RETRY_DELAY = 0.5
LOGIN_RETRY_DELAY = 2.0
"""Longest wait before logging in again after the broker refused the login."""
LAST_RETRY_DELAY = 5.0
PROTECTED_TOPIC_ERROR = -32001
"""Error number of a refused publish to a protected topic (the pub/sub service's, docs/protocol.md §2.6)."""
_REFUSED_TOPIC = re.compile(r"access to topic '(.*)' in exchange '")
_EVERY_CHANNEL = object()
_TEXT = TEXT_ENCODING


class AmqpLinkError(BusError):
    """The link to the broker failed or was lost (internal; it is retried)."""


class LoginRefused(AmqpLinkError):
    """The broker refused the login (credentials, or no access to the vhost)."""


class QueueLocked(AmqpLinkError):
    """Our queue is held by another connection: a peer with our identity is connected."""


@dataclass(slots=True)
class Pending:
    """What to tell the sender once the broker confirms (``reply``) or refuses a publish."""

    msg_id: str
    peer: str
    subsystem: str
    reply: list[bytes] | None = None
    routing_key: str = ""


class AmqpLink:
    """A broker link that comes back by itself; see the module docstring."""

    def __init__(self) -> None:
        self._closed = False
        self._on_event: EventCallback = _ignore_event
        self._incoming: Queue = Queue()
        self._ready = Event()
        self._window = Event()
        self._window.set()
        self._unblocked = Event()
        self._unblocked.set()
        self._drained = Event()
        self._drained.set()
        self._lost = Event()
        self._connection: Any = None
        self._channel: Any = None
        self._ops_channel: Any = None
        self._publishing: Any = None
        self._frames: tuple[Any, PublishFrames | None] = (None, None)
        """The publishing channel and the frames of its publishes (:mod:`~.rmq_frames`)."""
        self._unconfirmed: dict[int, Pending | None] = {}
        self._next_tag = 0
        self._waiters: dict[AsyncResult, Any] = {}
        """Pending broker operations and the channel each waits on (None: the connection)."""
        self._announced = False
        self._in_use_reported = False
        self._reconnect_interval: float | None = None
        self.settings = BrokerSettings()
        self.queue_name = ""
        self._link: gevent.Greenlet | None = None
        self._io: Any = None
        self._io_loop: Any = None
        self._stats = {"sent": 0, "received": 0, "confirmed": 0, "refused": 0, "failed_unconfirmed": 0,
                       "dropped": 0, "links": 0, "link_failures": 0, "access_refused": 0}

    @property
    def linked(self) -> bool:
        """True while the link is up and set up (messages can be sent)."""
        return self._ready.is_set() and not self._closed

    def wait_linked(self, timeout: float | None = None) -> bool:
        """Wait until the link is up and set up; False after ``timeout`` seconds."""
        return self._ready.wait(timeout)

    # ------------------------------------------------------------------ hooks

    def _prepare_link(self) -> None:
        """Declare and consume what the link needs, once connected (the subclass's part)."""

    def _forget_link_state(self) -> None:
        """The link is gone: forget what was made on it (the subclass's part)."""

    def _deliver(self, message: Message) -> None:
        """Hand ``message`` to the reader."""
        self._incoming.put(message)

    # ------------------------------------------------------------------ the link

    def _maintain_link(self) -> None:
        first = self._reconnect_interval or FIRST_RETRY_DELAY
        longest = max(first, self.settings.reconnect_delay or LAST_RETRY_DELAY)
        delay = first
        while not self._closed:
            try:
                self._link_once()
                delay = first
            except QueueLocked as exc:
                self._stats["link_failures"] += 1
                self._identity_in_use(exc)
                delay = first
            except LoginRefused as exc:
                self._stats["link_failures"] += 1
                _log.warning("%s: %s", self.settings.redacted(), exc)
                self._emit(BusEvent.HANDSHAKE_FAILED, str(exc))
                # the platform may be making our user right now: keep trying often
                delay = min(delay, LOGIN_RETRY_DELAY / 2)
            except AmqpLinkError as exc:
                self._stats["link_failures"] += 1
                _log.debug("no link to %s: %s", self.settings.redacted(), exc)
                self._emit(BusEvent.CONNECT_RETRIED, str(exc))
            finally:
                self._drop_link()
            if self._closed:
                return
            gevent.sleep(delay)
            delay = min(delay * 2, longest)

    def _identity_in_use(self, exc: QueueLocked) -> None:
        """Another connection consumes our queue: a peer with our identity is connected."""
        if self._in_use_reported:
            return
        self._in_use_reported = True
        _log.warning("%s is in use on %s (another connection consumes it); retrying", self.queue_name,
                     self.settings.redacted())
        # The broker is reachable: report the link up, as ZeroMQ would, so the agent waits for a
        # welcome that cannot come and then says that its identity may be taken.
        self._emit(BusEvent.CONNECTED, f"{self.settings.redacted()} ({exc})")

    def _link_once(self) -> None:
        """Connect, set up, report CONNECTED, and return when the link is gone."""
        self._lost.clear()
        self._connection = self._connect()
        self._channel = self._open_channel()
        self._open_publishing()
        self._prepare_link()
        self._stats["links"] += 1
        self._in_use_reported = False
        self._ready.set()
        self._announce()
        self._lost.wait()

    def _declare_queue(self, name: str) -> None:
        """Declare and bind the queue of a peer: ``name`` is also its routing key.

        Not exclusive to our connection, so the router can tell whether it exists (a passive
        declaration of someone else's exclusive queue is refused whether it exists or not);
        deleted when its consumer goes, or after a minute if nobody ever consumed it. Only one
        connection can consume it (see :meth:`_consume`).
        """
        self._call("declare queue", self._operations(), "queue_declare", queue=name, exclusive=False,
                   auto_delete=True, durable=False, arguments={"x-expires": QUEUE_EXPIRES_MS})
        self._call("bind queue", self._operations(), "queue_bind", queue=name, exchange=EXCHANGE,
                   routing_key=name)

    def _consume(self, channel: Any, queue: str, callback: Callable[..., None]) -> None:
        """Consume ``queue`` as its only consumer; :class:`QueueLocked` when another one has it."""
        try:
            self._call("consume", channel, "basic_consume", queue=queue, on_message_callback=callback,
                       auto_ack=True, exclusive=True)
        except AmqpLinkError as exc:
            if getattr(exc, "reply_code", None) in (403, 405):
                locked = QueueLocked(f"queue {queue} is in use by another connection")
                locked.reply_code = 405  # type: ignore[attr-defined]
                raise locked from exc
            raise

    def _announce(self) -> None:
        self._announced = True
        self._emit(BusEvent.CONNECTED, self.settings.redacted())

    def _connect(self) -> Any:
        result: AsyncResult[Any] = AsyncResult()
        settings = self.settings
        try:
            parameters = connection_parameters(settings, self.queue_name)
        except VolttronError as exc:
            raise AmqpLinkError(str(exc)) from exc
        connection = GeventConnection(
            parameters,
            on_open_callback=result.set,
            on_open_error_callback=lambda _conn, exc: result.set_exception(_open_error(exc, settings)),
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self._io,
        )
        try:
            opened: Any = result.get(timeout=parameters.stack_timeout + 5)
        except gevent.Timeout:
            try:
                connection.close()
            except pika_errors.AMQPError:
                pass  # never opened
            raise AmqpLinkError(f"no answer from {settings.redacted()}") from None
        coalesce_writes(opened)
        read_frames_here(opened)
        opened.add_on_connection_blocked_callback(lambda *_: self._unblocked.clear())
        opened.add_on_connection_unblocked_callback(lambda *_: self._unblocked.set())
        return opened

    def _open_channel(self, on_close: Callable[[Any, Exception], None] | None = None) -> Any:
        if self._connection is None or not self._connection.is_open:
            raise AmqpLinkError("not connected")
        result: AsyncResult[Any] = AsyncResult()
        self._waiters[result] = None
        try:
            channel = self._connection.channel(on_open_callback=result.set)
            channel.add_on_close_callback(on_close or self._on_channel_closed)
            return result.get(timeout=OPERATION_TIMEOUT)
        except gevent.Timeout:
            raise AmqpLinkError("the broker did not open a channel") from None
        except pika_errors.AMQPError as exc:
            raise AmqpLinkError(f"cannot open a channel: {exc!r}") from exc
        finally:
            self._waiters.pop(result, None)

    def _open_publishing(self) -> None:
        """Open the channel publishes go out on, with publisher confirms (delivery tags start again)."""
        channel = self._open_channel(self._on_publishing_closed)
        self._call("confirm delivery", channel, "confirm_delivery", ack_nack_callback=self._on_confirm)
        self._next_tag = 0
        self._frames = (channel, publish_frames(channel))
        self._publishing = channel

    def _operations(self) -> Any:
        """The channel for declarations and bindings, opened again after the broker closed it.

        Kept apart from the publishing channel: a refused binding or a passive declaration of a
        missing queue closes this channel only.
        """
        channel = self._ops_channel
        if channel is None or not channel.is_open:
            self._ops_channel = channel = self._open_channel(self._on_ops_channel_closed)
        return channel

    def _call(self, what: str, channel: Any, method: str, **kwargs: Any) -> Any:
        """Call a pika channel method that answers through ``callback`` and wait for the answer."""
        result: AsyncResult[Any] = AsyncResult()
        self._waiters[result] = channel
        try:
            getattr(channel, method)(callback=result.set, **kwargs)
            return result.get(timeout=OPERATION_TIMEOUT)
        except gevent.Timeout:
            raise AmqpLinkError(f"{what}: no answer from the broker") from None
        except (pika_errors.ChannelWrongStateError, pika_errors.ConnectionWrongStateError) as exc:
            raise AmqpLinkError(f"{what}: {exc!r}") from exc
        finally:
            self._waiters.pop(result, None)

    def queue_consumed(self, name: str) -> bool:
        """Whether queue ``name`` exists and has a consumer (a passive declaration).

        Raises :class:`AmqpLinkError` when the broker cannot be asked.
        """
        frame = self.queue_exists(name)
        return frame is not None and bool(frame.method.consumer_count)

    def queue_exists(self, name: str) -> Any:
        """The broker's answer to a passive declaration of queue ``name`` (None: no such queue).

        A passive declaration needs no permission. Raises :class:`AmqpLinkError` when the broker cannot
        be asked.
        """
        try:
            return self._call("check queue", self._operations(), "queue_declare", queue=name, passive=True)
        except AmqpLinkError as exc:
            if getattr(exc, "reply_code", None) == 404:
                return None
            raise

    def _on_connection_closed(self, _connection: Any, reason: Exception) -> None:
        _log.debug("connection to %s closed: %r", self.settings.redacted(), reason)
        self._fail_waiters(AmqpLinkError(f"connection closed: {reason!r}"))
        self._lost.set()

    def _on_channel_closed(self, channel: Any, reason: Exception) -> None:
        self._fail_waiters(_channel_error(reason), channel)
        if channel is self._channel:
            self._lost.set()  # the link greenlet closes the connection and starts again

    def _on_publishing_closed(self, channel: Any, reason: Exception) -> None:
        self._fail_waiters(_channel_error(reason), channel)
        if channel is not self._publishing:
            return
        self._publishing = None
        connection = self._connection
        found = _REFUSED_TOPIC.search(getattr(reason, "reply_text", "") or "")
        if found is None or self._closed or connection is None or not connection.is_open:
            self._lost.set()  # the link greenlet closes the connection and starts again
            return
        refused = found.group(1)
        self._stats["access_refused"] += 1
        _log.warning("the broker refused routing key %r to user %r (its topic permissions: a protected "
                     "topic?); publishing on a new channel", refused, self.settings.username)
        self._fail_unconfirmed("the broker closed the publishing channel before it confirmed the message",
                               refused)
        gevent.spawn(self._reopen_publishing, connection)

    def _reopen_publishing(self, connection: Any) -> None:
        try:
            self._open_publishing()
        except AmqpLinkError as exc:
            if self._connection is connection:
                _log.debug("no new publishing channel: %s", exc)
                self._lost.set()

    def _on_ops_channel_closed(self, channel: Any, reason: Exception) -> None:
        if channel is self._ops_channel:
            self._ops_channel = None
        self._fail_waiters(_channel_error(reason), channel)

    def _fail_waiters(self, error: BaseException, channel: Any = _EVERY_CHANNEL) -> None:
        """Fail the operations waiting on ``channel`` (all of them when not given)."""
        for waiter, on in list(self._waiters.items()):
            if channel is _EVERY_CHANNEL or on is channel or on is None:
                self._waiters.pop(waiter, None)
                if not waiter.ready():
                    waiter.set_exception(error)

    def _drop_link(self) -> None:
        announced, self._announced = self._announced, False
        self._ready.clear()
        self._forget_link_state()
        self._fail_unconfirmed()
        self._fail_waiters(AmqpLinkError("the link dropped"))
        connection, self._connection, self._channel, self._ops_channel = self._connection, None, None, None
        self._publishing = None
        if connection is not None and not (connection.is_closed or connection.is_closing):
            try:
                connection.close()
            except pika_errors.AMQPError:
                pass  # already closing
        if announced and not self._closed:
            _log.warning("lost the link to %s as %s; reconnecting", self.settings.redacted(), self.queue_name)
            self._emit(BusEvent.DISCONNECTED, self.settings.redacted())

    def _emit(self, event: BusEvent, detail: str) -> None:
        try:
            self._on_event(event, detail)
        except Exception:
            _log.exception("connection event handler failed on %s", event.value)

    # ------------------------------------------------------------------ publishing

    def publish(self, routing_key: str, body: bytes, properties: Any, pending: Pending | None,
                timeout: float | None) -> None:
        """Publish to the ``volttron`` exchange once the link is up, tracking the broker's confirmation."""
        if len(routing_key) > 63 and len(routing_key.encode("utf-8")) > 255:  # <= 4 bytes a character
            raise BusError(f"routing key {routing_key[:40]!r}... is longer than 255 bytes")
        deadline = None
        while True:
            channel = self._publishing
            if not (self._ready.is_set() and self._unblocked.is_set() and self._window.is_set()
                    and channel is not None and channel.is_open and not self._closed):
                if deadline is None:
                    deadline = float("inf") if timeout is None else time.monotonic() + max(0.0, timeout)
                self._wait_to_publish(routing_key, timeout, deadline)
                continue
            channel_frames, frames = self._frames
            try:
                publish_message(frames if channel_frames is channel else None, channel, EXCHANGE, routing_key,
                                body, properties)
            except (pika_errors.ChannelWrongStateError, pika_errors.ConnectionWrongStateError,
                    pika_errors.StreamLostError):
                continue  # the link went down meanwhile: wait for the next one
            except pika_errors.AMQPError as exc:
                raise BusError(f"publish to {routing_key!r} failed: {exc!r}") from exc
            self._next_tag += 1
            if pending is not None:
                pending.routing_key = routing_key
            self._unconfirmed[self._next_tag] = pending
            self._drained.clear()
            if len(self._unconfirmed) >= MAX_UNCONFIRMED:
                self._window.clear()
            self._stats["sent"] += 1
            return

    def _wait_to_publish(self, routing_key: str, timeout: float | None, deadline: float) -> None:
        """Wait (until ``deadline``) for what a publish needs: a link, no block, room, a channel."""
        for event, why in ((self._ready, "no link to the broker"),
                           (self._unblocked, "the broker blocks publishing"),
                           (self._window, "too many publishes await confirmation")):
            if self._closed:
                raise BusClosed("the connection is closed")
            left = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
            if not event.is_set() and not event.wait(left):
                raise BusTimeout(f"could not send to {routing_key!r} within {timeout} s: {why}")
        if self._closed:
            raise BusClosed("the connection is closed")
        channel = self._publishing
        if channel is None or not channel.is_open:  # being opened (again)
            if time.monotonic() >= deadline:
                raise BusTimeout(f"could not send to {routing_key!r} within {timeout} s: no publishing "
                                 "channel")
            gevent.sleep(0.01)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        tag = method.delivery_tag
        if method.multiple:
            done = []
            for key in self._unconfirmed:
                if key > tag:
                    break
                done.append(key)
            entries = [self._unconfirmed.pop(key) for key in done]
        else:
            entries = [self._unconfirmed.pop(tag, None)]
        for pending in entries:
            if acked:
                self._stats["confirmed"] += 1
                if pending is not None and pending.reply is not None:
                    self._deliver(Message("", pending.subsystem, pending.reply, pending.msg_id, ""))
            else:
                self._stats["refused"] += 1
                self._report_failure(pending, "the broker refused the message")
        self._after_confirmations()

    def _after_confirmations(self) -> None:
        if len(self._unconfirmed) < MAX_UNCONFIRMED // 2:
            self._window.set()
        if not self._unconfirmed:
            self._drained.set()

    def _fail_unconfirmed(self, why: str = "the link to the broker dropped before it confirmed the message",
                          refused_key: str | None = None) -> None:
        """Report the publishes awaiting confirmation as failed: refused (``refused_key``) or EAGAIN."""
        entries, self._unconfirmed = list(self._unconfirmed.values()), {}
        for pending in entries:
            if refused_key is not None and pending is not None and pending.routing_key == refused_key:
                self._stats["refused"] += 1
                if pending.msg_id:
                    self._deliver(refusal_message(pending, self.settings.username))
                continue
            self._stats["failed_unconfirmed"] += 1
            self._report_failure(pending, why)
        self._after_confirmations()

    def _report_failure(self, pending: Pending | None, why: str) -> None:
        if pending is None or not pending.msg_id:
            return
        self._deliver(error_message(pending.msg_id, errno.EAGAIN, why, pending.peer, pending.subsystem))


def connection_parameters(settings: Any, connection_name: str) -> ConnectionParameters:
    """pika's parameters for ``settings`` (TLS and EXTERNAL authentication when configured)."""
    from volttron.client.messagebus.rmq_login import pika_credentials, ssl_options

    return ConnectionParameters(
        host=settings.host,
        port=settings.port,
        virtual_host=settings.vhost,
        credentials=pika_credentials(settings),
        ssl_options=ssl_options(settings),
        heartbeat=settings.heartbeat,
        connection_attempts=1,
        socket_timeout=10,
        stack_timeout=15,
        blocked_connection_timeout=60,
        client_properties={"connection_name": connection_name, "product": "volttron",
                           "information": f"pid {os.getpid()}"},
    )


def error_message(msg_id: str, errnum: int, why: str, peer: str, subsystem: str) -> Message:
    """A VIP error (docs/protocol.md §1.5) for the pending request ``msg_id``, as if the router sent it."""
    text = f"{os.strerror(errnum)}: {why}"
    args = [str(errnum).encode("ascii"), frame_bytes(text), frame_bytes(peer), frame_bytes(subsystem)]
    return Message("", "error", args, msg_id, "")


def refusal_message(pending: Pending, user: str | None) -> Message:
    """The error for a publish the broker refused by the topic permissions of ``user``."""
    if pending.subsystem == PUBSUB_TYPE:
        topic = topic_from_routing_key(pending.routing_key)
        text = (f"the broker refused the publish to topic {topic}: it is protected, and {user} does not "
                "hold the capabilities it requires")
        code = str(PROTECTED_TOPIC_ERROR).encode("ascii")
        args = [code, frame_bytes(text), b"", PUBSUB_TYPE.encode("ascii")]
        return Message("", "error", args, pending.msg_id, "")
    why = f"the broker refused routing key {pending.routing_key!r} to {user}"
    return error_message(pending.msg_id, errno.EACCES, why, pending.peer, pending.subsystem)


def _open_error(exc: BaseException, settings: Any) -> AmqpLinkError:
    where = settings.redacted()
    if isinstance(exc, (pika_errors.ProbableAuthenticationError, pika_errors.AuthenticationError)):
        return LoginRefused(f"the broker at {where} refused the login of user {settings.username!r}")
    if isinstance(exc, pika_errors.ProbableAccessDeniedError):
        return LoginRefused(f"user {settings.username!r} may not use vhost {settings.vhost!r} at {where}")
    if isinstance(exc, pika_errors.ConnectionClosedByBroker) and exc.reply_code in (403, 530):
        return LoginRefused(f"the broker at {where} refused the connection: {exc.reply_text}")
    return AmqpLinkError(f"cannot connect to {where}: {exc!r}")


def _channel_error(reason: BaseException) -> AmqpLinkError:
    code = getattr(reason, "reply_code", None)
    text = getattr(reason, "reply_text", "") or repr(reason)
    error = AmqpLinkError(f"channel closed ({code}): {text}")
    error.reply_code = code  # type: ignore[attr-defined]
    return error


def frame_bytes(text: str) -> bytes:
    """``text`` as a frame: Latin-1, or UTF-8 when it does not fit."""
    try:
        return text.encode(_TEXT)
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _ignore_event(event: BusEvent, detail: str) -> None:
    """The event callback before the link is opened."""
