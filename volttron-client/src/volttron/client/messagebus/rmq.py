"""The RabbitMQ back-end: a peer's AMQP connection to the platform's broker (reference §6.2a, §6.3).

One :class:`RmqConnection` keeps one pika
:class:`~pika.adapters.gevent_connection.GeventConnection` open, and opens it again whenever it
drops, until closed. Once linked it has declared its queue ``<instance>.<identity>`` (exclusive, so
a second peer with the same identity cannot take its messages) bound to the ``volttron`` exchange,
consumes from it, and re-made the bindings of its pub/sub subscriptions; then it reports
CONNECTED and the agent's core says hello to the router as on any bus. Messages travel as
:mod:`~volttron.client.messagebus.rmq_wire` describes: peer to peer through the broker, never
through the router.

Pub/sub requests addressed to the router are served here, with the broker doing the fan-out:
subscriptions become bindings of the peer's pub/sub queue
(:mod:`~volttron.client.messagebus.rmq_subscriptions`), a publish goes straight to the exchange.

Nothing is reported sent and then lost. Every publish is confirmed by the broker (publisher
confirms): a pub/sub ``publish`` is answered (``request_response``) only when the broker confirms
it, and a message with a message id that the broker refuses, or that was not confirmed when the
link dropped, comes back to the sender as an EAGAIN error for that id, so the pending result
fails with :class:`~volttron.client.vip.agent.errors.Again` instead of waiting for a reply that
cannot come. While the link is down :meth:`RmqConnection.send` waits for it, up to its timeout.

``pika`` is imported only here and in the other ``rmq_*`` modules; its exceptions become
:class:`~.base.BusError`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import pika
import pika.exceptions
from gevent.event import AsyncResult, Event
from gevent.queue import Empty, Queue
from pika.adapters.gevent_connection import GeventConnection
from pika.spec import Basic

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
from volttron.client.messagebus.rmq_config import BrokerSettings
from volttron.client.messagebus.rmq_ioloop import hub_io_services
from volttron.client.messagebus.rmq_login import resolve_login
from volttron.client.messagebus.rmq_subscriptions import (
    BindingChange,
    SubscriptionRequestError,
    SubscriptionTable,
)
from volttron.client.messagebus.rmq_wire import (
    CONTENT_TYPE,
    EXCHANGE,
    PUBSUB_TYPE,
    ROUTER,
    admin_user,
    decode_args,
    encode_args,
    fq_identity,
    message_headers,
    message_origin,
    peer_routing_key,
    publish_routing_key,
    topic_from_routing_key,
    with_sender,
)
from volttron.utils.errors import VolttronError
from volttron.utils.frames import TEXT_ENCODING

_log = logging.getLogger(__name__)

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
_CLOSED = object()
_TEXT = TEXT_ENCODING


class LinkError(BusError):
    """The link to the broker failed or was lost (internal; it is retried)."""


class LoginRefused(LinkError):
    """The broker refused the login (credentials, or no access to the vhost)."""


class QueueLocked(LinkError):
    """Our queue is held by another connection: a peer with our identity is connected."""


@dataclass(slots=True)
class _Pending:
    """What to tell the sender once the broker confirms (``reply``) or refuses a publish."""

    msg_id: str
    peer: str
    subsystem: str
    reply: list[bytes] | None = None


class RmqConnection(Connection):
    """A VIP peer connection over RabbitMQ; see the module docstring."""

    name = "rmq"
    uses_curve_keys = False
    reports_disconnects = True
    pubsub_by_broker = True

    def __init__(self, params: ConnectionParams) -> None:
        super().__init__(params)
        self._opened = False
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
        self._unconfirmed: dict[int, _Pending | None] = {}
        self._next_tag = 0
        self._waiters: dict[AsyncResult, Any] = {}
        """Pending broker operations and the channel each waits on (None: the connection)."""
        self._announced = False
        self._in_use_reported = False
        self.settings = BrokerSettings()
        self.queue_name = ""
        self._trusted: frozenset[str] = frozenset()
        self._link: gevent.Greenlet | None = None
        self._io: Any = None
        self._io_loop: Any = None
        self._subscriptions: SubscriptionTable | None = None
        self._bound: set[str] = set()
        self._pubsub_queue = ""
        self._pubsub_declared = False
        self._stats = {"sent": 0, "received": 0, "confirmed": 0, "refused": 0, "failed_unconfirmed": 0,
                       "dropped": 0, "links": 0, "link_failures": 0}

    # ------------------------------------------------------------------ set-up

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def instance(self) -> str:
        """The platform instance name the queues and routing keys use."""
        return self.settings.instance_name or ""

    def open(self, on_event: EventCallback) -> None:
        if self._opened or self._closed:
            raise BusError("a RabbitMQ connection can be opened once")
        identity = self.params.identity
        if not identity or (identity == ROUTER and not self._is_router()):
            raise BusError(f"identity {identity!r} cannot be used on RabbitMQ (it names the router's queue)")
        try:
            identity.encode(_TEXT)
        except UnicodeEncodeError as exc:
            raise BusError(f"identity {identity!r} is not Latin-1 text") from exc
        try:
            self.settings = resolve_login(self.params)
        except VolttronError as exc:
            raise BusError(str(exc)) from exc
        instance = self.instance
        self.queue_name = fq_identity(instance, identity)
        self._pubsub_queue = f"{self.queue_name}.pubsub.{uuid.uuid4().hex}"
        self._trusted = frozenset({admin_user(instance), self.settings.username or ""} - {""})
        self._subscriptions = SubscriptionTable(instance)
        self._on_event = on_event
        self._opened = True
        pika_log = logging.getLogger("pika")
        if pika_log.level == logging.NOTSET:
            # pika narrates every frame, and logs each failed connection attempt as an error; this
            # module reports what matters (and retries)
            pika_log.setLevel(logging.CRITICAL)
        self._io, self._io_loop = hub_io_services()
        self._link = gevent.spawn(self._maintain_link)

    def _is_router(self) -> bool:
        return False

    @property
    def linked(self) -> bool:
        """True while the link is up and set up (messages can be sent)."""
        return self._ready.is_set() and not self._closed

    def wait_linked(self, timeout: float | None = None) -> bool:
        """Wait until the link is up and set up; False after ``timeout`` seconds."""
        return self._ready.wait(timeout)

    # ------------------------------------------------------------------ the link

    def _maintain_link(self) -> None:
        first = self.params.reconnect_interval or FIRST_RETRY_DELAY
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
            except LinkError as exc:
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
        _log.warning("identity %r is in use on %s (another connection consumes %s); retrying",
                     self.params.identity, self.settings.redacted(), self.queue_name)
        # The broker is reachable: report the link up, as ZeroMQ would, so the agent waits for a
        # welcome that cannot come and then says that its identity may be taken.
        self._emit(BusEvent.CONNECTED, f"{self.settings.redacted()} ({exc})")

    def _link_once(self) -> None:
        """Connect, set up, report CONNECTED, and return when the link is gone."""
        self._lost.clear()
        self._connection = self._connect()
        self._channel = self._open_channel()
        self._call("confirm delivery", self._channel, "confirm_delivery", ack_nack_callback=self._on_confirm)
        self._next_tag = 0
        self._declare_queue(self.queue_name)
        self._consume(self._channel, self.queue_name, self._on_vip_message)
        self._setup_link()
        assert self._subscriptions is not None
        self._apply(BindingChange(add=self._subscriptions.bindings()))
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
        except LinkError as exc:
            if getattr(exc, "reply_code", None) in (403, 405):
                locked = QueueLocked(f"queue {queue} is in use by another connection")
                locked.reply_code = 405  # type: ignore[attr-defined]
                raise locked from exc
            raise

    def _announce(self) -> None:
        self._announced = True
        self._emit(BusEvent.CONNECTED, self.settings.redacted())

    def _setup_link(self) -> None:
        """More queues and consumers once the peer's own are ready (the router adds its own)."""

    def _connect(self) -> Any:
        result = AsyncResult()
        settings = self.settings
        try:
            parameters = connection_parameters(settings, self.queue_name)
        except VolttronError as exc:
            raise LinkError(str(exc)) from exc
        connection = GeventConnection(
            parameters,
            on_open_callback=result.set,
            on_open_error_callback=lambda _conn, exc: result.set_exception(_open_error(exc, settings)),
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self._io,
        )
        try:
            opened = result.get(timeout=parameters.stack_timeout + 5)
        except gevent.Timeout:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass  # never opened
            raise LinkError(f"no answer from {settings.redacted()}") from None
        opened.add_on_connection_blocked_callback(lambda *_: self._unblocked.clear())
        opened.add_on_connection_unblocked_callback(lambda *_: self._unblocked.set())
        return opened

    def _open_channel(self, on_close: Callable[[Any, Exception], None] | None = None) -> Any:
        if self._connection is None or not self._connection.is_open:
            raise LinkError("not connected")
        result = AsyncResult()
        self._waiters[result] = None
        try:
            channel = self._connection.channel(on_open_callback=result.set)
            channel.add_on_close_callback(on_close or self._on_channel_closed)
            return result.get(timeout=OPERATION_TIMEOUT)
        except gevent.Timeout:
            raise LinkError("the broker did not open a channel") from None
        except pika.exceptions.AMQPError as exc:
            raise LinkError(f"cannot open a channel: {exc!r}") from exc
        finally:
            self._waiters.pop(result, None)

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
        result = AsyncResult()
        self._waiters[result] = channel
        try:
            getattr(channel, method)(callback=result.set, **kwargs)
            return result.get(timeout=OPERATION_TIMEOUT)
        except gevent.Timeout:
            raise LinkError(f"{what}: no answer from the broker") from None
        except (pika.exceptions.ChannelWrongStateError, pika.exceptions.ConnectionWrongStateError) as exc:
            raise LinkError(f"{what}: {exc!r}") from exc
        finally:
            self._waiters.pop(result, None)

    def queue_consumed(self, name: str) -> bool:
        """Whether queue ``name`` exists and has a consumer (a passive declaration).

        Raises :class:`LinkError` when the broker cannot be asked.
        """
        try:
            frame = self._call("check queue", self._operations(), "queue_declare", queue=name, passive=True)
        except LinkError as exc:
            if getattr(exc, "reply_code", None) == 404:
                return False
            raise
        return bool(frame.method.consumer_count)

    def _on_connection_closed(self, _connection: Any, reason: Exception) -> None:
        _log.debug("connection to %s closed: %r", self.settings.redacted(), reason)
        self._fail_waiters(LinkError(f"connection closed: {reason!r}"))
        self._lost.set()

    def _on_channel_closed(self, channel: Any, reason: Exception) -> None:
        self._fail_waiters(_channel_error(reason), channel)
        if channel is self._channel:
            self._lost.set()  # the link greenlet closes the connection and starts again

    def _on_ops_channel_closed(self, channel: Any, reason: Exception) -> None:
        if channel is self._ops_channel:
            self._ops_channel = None
        self._fail_waiters(_channel_error(reason), channel)

    def _fail_waiters(self, error: BaseException, channel: Any = _CLOSED) -> None:
        """Fail the operations waiting on ``channel`` (all of them when not given)."""
        for waiter, on in list(self._waiters.items()):
            if channel is _CLOSED or on is channel or on is None:
                self._waiters.pop(waiter, None)
                if not waiter.ready():
                    waiter.set_exception(error)

    def _drop_link(self) -> None:
        announced, self._announced = self._announced, False
        self._ready.clear()
        self._bound.clear()
        self._pubsub_declared = False
        self._fail_unconfirmed()
        self._fail_waiters(LinkError("the link dropped"))
        connection, self._connection, self._channel, self._ops_channel = self._connection, None, None, None
        if connection is not None and not (connection.is_closed or connection.is_closing):
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass  # already closing
        if announced and not self._closed:
            _log.warning("lost the link to %s as %s; reconnecting", self.settings.redacted(), self.queue_name)
            self._emit(BusEvent.DISCONNECTED, self.settings.redacted())

    def _emit(self, event: BusEvent, detail: str) -> None:
        try:
            self._on_event(event, detail)
        except Exception:
            _log.exception("connection event handler failed on %s", event.value)

    # ------------------------------------------------------------------ sending

    def send(self, message: Message, timeout: float | None = None) -> None:
        if self._closed or not self._opened:
            raise BusClosed("the connection is closed" if self._closed else "the connection is not open")
        if message.peer == "" and message.subsystem == "pubsub":
            self._pubsub_request(message, timeout)
            return
        try:
            peer = message.peer.encode(_TEXT).decode(_TEXT)
            message.id.encode(_TEXT)
        except UnicodeEncodeError as exc:
            raise BusError(f"a frame of the {message.subsystem!r} message is not Latin-1 text") from exc
        key = peer_routing_key(self.instance, peer)
        pending = _Pending(message.id, message.peer, message.subsystem) if message.id else None
        self.publish(key, self._encode_args(message), self._properties(message, key), pending, timeout)

    def _encode_args(self, message: Message) -> bytes:
        try:
            return encode_args(message.args)
        except (TypeError, AttributeError) as exc:
            raise BusError(f"message arguments are bytes, not {exc}") from exc

    def _properties(self, message: Message, key: str, headers: dict[str, Any] | None = None) -> Any:
        user = message.user or self.params.identity
        return pika.BasicProperties(
            app_id=self.queue_name,
            user_id=self.settings.username,
            headers={**message_headers(key, user), **(headers or {})},
            message_id=message.id or None,
            type=message.subsystem,
            content_type=CONTENT_TYPE,
        )

    def publish(self, routing_key: str, body: bytes, properties: Any, pending: _Pending | None,
                timeout: float | None) -> None:
        """Publish to the ``volttron`` exchange once the link is up, tracking the broker's confirmation."""
        if len(routing_key.encode("utf-8")) > 255:
            raise BusError(f"routing key {routing_key[:40]!r}... is longer than 255 bytes")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if self._closed:
                raise BusClosed("the connection is closed")
            for event, why in ((self._ready, "no link to the broker"),
                               (self._unblocked, "the broker blocks publishing"),
                               (self._window, "too many publishes await confirmation")):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not event.is_set() and not event.wait(left):
                    raise BusTimeout(f"could not send to {routing_key!r} within {timeout} s: {why}")
            if self._closed:
                raise BusClosed("the connection is closed")
            channel = self._channel
            if channel is None or not channel.is_open:
                self._ready.wait(0.05)
                continue
            try:
                channel.basic_publish(EXCHANGE, routing_key, body, properties)
            except (pika.exceptions.ChannelWrongStateError, pika.exceptions.ConnectionWrongStateError,
                    pika.exceptions.StreamLostError):
                continue  # the link went down meanwhile: wait for the next one
            except pika.exceptions.AMQPError as exc:
                raise BusError(f"publish to {routing_key!r} failed: {exc!r}") from exc
            self._next_tag += 1
            self._unconfirmed[self._next_tag] = pending
            self._drained.clear()
            if len(self._unconfirmed) >= MAX_UNCONFIRMED:
                self._window.clear()
            self._stats["sent"] += 1
            return

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

    def _fail_unconfirmed(self) -> None:
        entries, self._unconfirmed = list(self._unconfirmed.values()), {}
        for pending in entries:
            self._stats["failed_unconfirmed"] += 1
            self._report_failure(pending, "the link to the broker dropped before it confirmed the message")
        self._after_confirmations()

    def _report_failure(self, pending: _Pending | None, why: str) -> None:
        if pending is None or not pending.msg_id:
            return
        self._deliver(error_message(pending.msg_id, errno.EAGAIN, why, pending.peer, pending.subsystem))

    # ------------------------------------------------------------------ pub/sub through the broker

    def _pubsub_request(self, message: Message, timeout: float | None) -> None:
        args = message.args
        op = bytes(args[0]) if args else b""
        try:
            if op == b"publish":
                self._publish_topic(message, timeout)
            elif op in (b"subscribe", b"unsubscribe", b"synchronize"):
                self._change_subscriptions(op, message, timeout)
            elif op == b"list":
                assert self._subscriptions is not None
                rows = self._subscriptions.listing(_json_object(args, 1))
                self._reply(message, [b"list_response", json.dumps(rows).encode("ascii")])
            else:
                _log.debug("pub/sub operation %r is not served on RabbitMQ", op)
        except SubscriptionRequestError as exc:
            self._deliver(error_message(message.id, errno.EINVAL, str(exc), "", "pubsub"))

    def _publish_topic(self, message: Message, timeout: float | None) -> None:
        args = message.args
        if len(args) < 3:
            raise SubscriptionRequestError("publish needs a topic and a message")
        topic = bytes(args[1]).decode(_TEXT)
        body = bytes(args[2])
        request = _json_object(args, 2)
        bus = request.get("bus") or ""
        if not isinstance(bus, str):
            raise SubscriptionRequestError("bus must be text")
        key = publish_routing_key(self.instance, topic)
        properties = self._properties(message, key, {"topic": topic, "bus": bus})
        pending = _Pending(message.id, "", "pubsub", [b"request_response", b"1"]) if message.id else None
        self.publish(key, body, properties, pending, timeout)

    def _change_subscriptions(self, op: bytes, message: Message, timeout: float | None) -> None:
        table = self._subscriptions
        assert table is not None
        if op == b"subscribe":
            change = table.subscribe(_json_object(message.args, 1))
        elif op == b"unsubscribe":
            change = table.unsubscribe(_json_object(message.args, 1))
        else:
            change = table.synchronize(_json_object(message.args, 2))
        if change and self._ready.is_set():
            try:
                self._apply(change)
            except LinkError as exc:
                if getattr(exc, "reply_code", None) == 403:
                    self._deliver(error_message(message.id, errno.EACCES, str(exc), "", "pubsub"))
                    return
                # the link dropped: every binding is made again when it is back
                _log.debug("bindings wait for the next link: %s", exc)
        if op != b"synchronize":
            self._reply(message, [b"request_response", b"true"])

    def _apply(self, change: BindingChange) -> None:
        wanted_now = change.add - self._bound
        if wanted_now:
            self._declare_pubsub_queue()
        for key in sorted(wanted_now):
            self._call("bind", self._operations(), "queue_bind", queue=self._pubsub_queue, exchange=EXCHANGE,
                       routing_key=key)
            self._bound.add(key)
        for key in sorted(change.remove & self._bound):
            self._call("unbind", self._operations(), "queue_unbind", queue=self._pubsub_queue,
                       exchange=EXCHANGE, routing_key=key)
            self._bound.discard(key)

    def _declare_pubsub_queue(self) -> None:
        if self._pubsub_declared:
            return
        self._call("declare pub/sub queue", self._operations(), "queue_declare", queue=self._pubsub_queue,
                   exclusive=True, auto_delete=True, durable=False)
        self._call("consume pub/sub", self._channel, "basic_consume", queue=self._pubsub_queue,
                   on_message_callback=self._on_publication, auto_ack=True)
        self._pubsub_declared = True

    def _reply(self, request: Message, args: list[bytes]) -> None:
        if request.id:
            self._deliver(Message("", request.subsystem, args, request.id, ""))

    # ------------------------------------------------------------------ receiving

    def _deliver(self, message: Message) -> None:
        self._incoming.put(message)

    def origin(self, properties: Any) -> Any:
        """Who sent a delivery (:func:`~.rmq_wire.message_origin`), or None when nobody vouches for it."""
        return message_origin(self.instance, properties.app_id, properties.user_id, properties.headers,
                              self._trusted)

    def _on_vip_message(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        message = self.decode_message(properties, body)
        if message is not None:
            self._deliver(message)

    def decode_message(self, properties: Any, body: bytes) -> Message | None:
        """The VIP message in an AMQP delivery (``peer`` is its sender), or None when dropped."""
        origin = self.origin(properties)
        if origin is None:
            self._drop("a message whose sender the broker does not vouch for", properties)
            return None
        try:
            args = decode_args(body)
        except ValueError:
            self._drop("a message whose body is not a JSON list", properties)
            return None
        self._stats["received"] += 1
        return Message(origin.peer, properties.type or "", args, properties.message_id or "", origin.user)

    def _on_publication(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        origin = self.origin(properties)
        if origin is None:
            self._drop("a publication whose sender the broker does not vouch for", properties)
            return
        headers = properties.headers or {}
        topic = headers.get("topic")
        if not isinstance(topic, str):
            topic = topic_from_routing_key(method.routing_key)
        bus = headers.get("bus")
        if not isinstance(bus, str):
            try:
                bus = json.loads(body).get("bus") or ""
            except (ValueError, AttributeError):
                bus = ""
        assert self._subscriptions is not None
        if not self._subscriptions.wants(bus, topic):
            return  # a binding shared with a prefix we dropped, or another bus
        self._stats["received"] += 1
        self._deliver(Message("", PUBSUB_TYPE, [b"publish", _frame(topic), with_sender(body, origin.peer)],
                              properties.message_id or "", origin.user))

    def _drop(self, what: str, properties: Any) -> None:
        self._stats["dropped"] += 1
        _log.warning("dropped %s (app_id %r, user_id %r)", what, properties.app_id, properties.user_id)

    def recv(self, timeout: float | None = None) -> Message | None:
        if not self._opened:
            raise BusClosed("the connection is not open")
        if self._closed and self._incoming.empty():
            raise BusClosed("the connection is closed")
        try:
            item = self._incoming.get(timeout=timeout)
        except Empty:
            return None
        if item is _CLOSED:
            self._incoming.put(_CLOSED)  # for any other reader
            raise BusClosed("the connection is closed")
        return item

    # ------------------------------------------------------------------ closing

    def close(self, linger: float = 1.0) -> None:
        if self._closed:
            return
        if self._opened and self._ready.is_set() and linger > 0:
            self._drained.wait(linger)
        self._closed = True
        self._incoming.put(_CLOSED)
        for event in (self._ready, self._window, self._unblocked):
            event.set()  # waiting senders wake up and see the connection closed
        connection = self._connection
        if connection is not None and connection.is_open:
            try:
                connection.close()
                self._lost.wait(min(max(linger, 0.1), 2.0))
            except pika.exceptions.AMQPError:
                pass  # already closing
        if self._link is not None and self._link is not gevent.getcurrent():
            self._link.kill(block=False)
        if self._io_loop is not None:
            self._io_loop.close()

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"bus": self.name, **self._stats, "unconfirmed": len(self._unconfirmed)}
        if self._subscriptions is not None:
            stats["subscriptions"] = len(self._subscriptions)
            stats["bindings"] = len(self._bound)
        return stats


def connection_parameters(settings: Any, connection_name: str) -> pika.ConnectionParameters:
    """pika's parameters for ``settings`` (TLS and EXTERNAL authentication when configured)."""
    from volttron.client.messagebus.rmq_login import pika_credentials, ssl_options

    return pika.ConnectionParameters(
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
    """A VIP error (reference §1.5) for the pending request ``msg_id``, as if the router sent it."""
    text = f"{os.strerror(errnum)}: {why}"
    return Message("", "error", [str(errnum).encode("ascii"), _frame(text), _frame(peer), _frame(subsystem)],
                   msg_id, "")


def _open_error(exc: BaseException, settings: Any) -> LinkError:
    where = settings.redacted()
    if isinstance(exc, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
        return LoginRefused(f"the broker at {where} refused the login of user {settings.username!r}")
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return LoginRefused(f"user {settings.username!r} may not use vhost {settings.vhost!r} at {where}")
    if isinstance(exc, pika.exceptions.ConnectionClosedByBroker) and exc.reply_code in (403, 530):
        return LoginRefused(f"the broker at {where} refused the connection: {exc.reply_text}")
    return LinkError(f"cannot connect to {where}: {exc!r}")


def _channel_error(reason: BaseException) -> LinkError:
    code = getattr(reason, "reply_code", None)
    text = getattr(reason, "reply_text", "") or repr(reason)
    error = LinkError(f"channel closed ({code}): {text}")
    error.reply_code = code  # type: ignore[attr-defined]
    return error


def _json_object(args: list[bytes], index: int) -> dict[str, Any]:
    if len(args) <= index:
        raise SubscriptionRequestError("the request has no body")
    try:
        value = json.loads(bytes(args[index]).decode(_TEXT))
    except ValueError:
        raise SubscriptionRequestError("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise SubscriptionRequestError("the request body must be a JSON object")
    return value


def _frame(text: str) -> bytes:
    try:
        return text.encode(_TEXT)
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _ignore_event(event: BusEvent, detail: str) -> None:
    """The event callback before :meth:`RmqConnection.open`."""


CONNECTION_CLASS = RmqConnection
