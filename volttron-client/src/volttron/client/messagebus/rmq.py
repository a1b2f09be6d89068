"""The RabbitMQ back-end: a peer's AMQP connection to the platform's broker (docs/protocol.md §6.2a, §6.3).

An :class:`RmqConnection` is an :class:`~volttron.client.messagebus.rmq_amqp.AmqpLink` (one pika
``GeventConnection``, opened again whenever it drops, every publish confirmed by the broker) that
speaks VIP. Once linked it has its queue ``<instance>.<identity>`` bound to the ``volttron``
exchange and consumes it as its only consumer (so a second peer with the same identity cannot take
its messages), and it has made the bindings of its pub/sub subscriptions again; then it reports
CONNECTED and the agent's core says hello to the router as on any bus. An agent logged in as its
own broker user may declare nothing (:func:`~.rmq_permissions.agent_permissions`): it asks the
platform's router for its queues (:data:`~.rmq_permissions.QUEUE_REQUEST`) and waits until they
exist; a peer with a login of its own declares them itself. Messages travel as
:mod:`~volttron.client.messagebus.rmq_wire` describes: peer to peer through the broker, never
through the router.

Pub/sub requests addressed to the router are served here, with the broker doing the fan-out
(``pubsub_by_broker``): subscriptions become bindings of the peer's pub/sub queue
(:mod:`~volttron.client.messagebus.rmq_subscriptions`), a publish goes straight to the exchange and
is answered (``request_response``) when the broker confirms it.

The AMQP properties of what we send are encoded by :mod:`~.rmq_properties`, with what is constant
per connection encoded once; a publish's frames are made, and a delivery's frames read, by
:mod:`~.rmq_frames` (pika's own decoder and dispatch for anything else); pika's transport sends its
buffered frames in few system calls, and at once when a greenlet keeps publishing
(:func:`~.rmq_ioloop.coalesce_writes`): the bytes on the wire are those pika would send.

Nothing is reported sent and then lost: a message with a message id that the broker refuses, or
that was not confirmed when the link dropped, comes back to the sender as an EAGAIN error for that
id, so the pending result fails with :class:`~volttron.client.vip.agent.errors.Again` instead of
waiting for a reply that cannot come. While the link is down :meth:`RmqConnection.send` waits for
it, up to its timeout.

``pika`` is imported only by the ``rmq_*`` modules, through :mod:`~.rmq_pika` (without the adapters an
agent does not use); its exceptions become :class:`~.base.BusError`.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import time
from typing import Any

import gevent
from gevent.queue import Empty

from volttron.client.messagebus.base import (
    BusClosed,
    BusError,
    Connection,
    ConnectionParams,
    EventCallback,
    Message,
)
from volttron.client.messagebus.rmq_amqp import (
    OPERATION_TIMEOUT,
    AmqpLink,
    AmqpLinkError,
    Pending,
    error_message,
    frame_bytes,
)
from volttron.client.messagebus.rmq_ioloop import hub_io_services
from volttron.client.messagebus.rmq_login import resolve_login
from volttron.client.messagebus.rmq_permissions import QUEUE_REQUEST, agent_queue_names, queue_request_body
from volttron.client.messagebus.rmq_pika import BasicProperties
from volttron.client.messagebus.rmq_pika import exceptions as pika_errors
from volttron.client.messagebus.rmq_properties import TABLES_KEPT, EncodedProperties, PropertiesEncoder
from volttron.client.messagebus.rmq_subscriptions import (
    BindingChange,
    SubscriptionRequestError,
    SubscriptionTable,
)
from volttron.client.messagebus.rmq_wire import (
    CONTENT_TYPE,
    EXCHANGE,
    LINK_HEADERS,
    PUBSUB_KEY,
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
    topic_words,
    with_sender,
)
from volttron.utils.errors import VolttronError
from volttron.utils.frames import TEXT_ENCODING
from volttron.utils.throttle import LogThrottle

_TEXT = TEXT_ENCODING
_CLOSED = object()
_PLAIN_BUS = re.compile(rb'\{"bus": "([^"\\]*)", ')
"""The start of a publish body as the pub/sub subsystem writes it (``json.dumps``), naming its bus."""
_ORIGINS_KEPT = 1024
"""Senders whose origin is remembered, and topics whose routing key is (all are forgotten when there are
more)."""

_log = logging.getLogger(__name__)

class RmqConnection(AmqpLink, Connection):
    """A VIP peer connection over RabbitMQ; see the module docstring."""

    name = "rmq"
    uses_curve_keys = False
    reports_disconnects = True
    pubsub_by_broker = True

    def __init__(self, params: ConnectionParams) -> None:
        Connection.__init__(self, params)
        AmqpLink.__init__(self)
        self._drop_log = LogThrottle(_log)
        self._opened = False
        self._reconnect_interval = params.reconnect_interval
        self._trusted: frozenset[str] = frozenset()
        self._origins: dict[tuple[Any, Any], Any] = {}
        self._subscriptions: SubscriptionTable | None = None
        self._bound: set[str] = set()
        self._pubsub_queue = ""
        self._pubsub_declared = False
        self._encoder: PropertiesEncoder | None = None
        self._tables: dict[tuple[str, str, str | None, str], bytes] = {}
        self._publish_keys: dict[str, str] = {}
        self._topic_keys: dict[tuple[str, str], bool] = {}

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
        # the one pub/sub queue the platform declares for the peer's user (consumed by this link only)
        self._pubsub_queue = agent_queue_names(self.queue_name)[1]
        self._trusted = frozenset({admin_user(instance), self.settings.username or ""} - {""})
        self._encoder = PropertiesEncoder(self.queue_name, self.settings.username, CONTENT_TYPE)
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

    def _prepare_link(self) -> None:
        self._declare_queue(self.queue_name)
        self._consume(self._channel, self.queue_name, self._on_vip_message)
        self._setup_link()
        assert self._subscriptions is not None
        self._apply(BindingChange(add=self._subscriptions.bindings()))

    def _setup_link(self) -> None:
        """More queues and consumers once the peer's own are ready (the router adds its own)."""

    def _platform_declares(self) -> bool:
        """Whether the platform declares our queues: we log in as our own agent user
        ``<instance>.<identity>``, which may declare nothing (see :func:`~.rmq_permissions.
        agent_permissions`). A peer with a login of its own (authentication off) declares them itself."""
        return self.settings.username == self.queue_name and not self._is_router()

    def _declare_queue(self, name: str) -> None:
        if self._platform_declares():
            self._await_platform_queue(name)
        else:
            super()._declare_queue(name)

    def _await_platform_queue(self, name: str) -> None:
        """Ask the platform's router to declare our queue ``name`` unless it exists; wait until it does.

        The request goes again every second (the router may be starting); :class:`AmqpLinkError` after
        :data:`~.rmq_amqp.OPERATION_TIMEOUT` seconds (the link is tried again).
        """
        if self.queue_exists(name) is not None:
            return
        deadline = time.monotonic() + OPERATION_TIMEOUT
        asked = 0.0
        delay = 0.02
        while True:
            now = time.monotonic()
            if now - asked >= 1.0:
                properties = BasicProperties(app_id=self.queue_name, user_id=self.settings.username,
                                             type=QUEUE_REQUEST, content_type=CONTENT_TYPE)
                try:
                    self._operations().basic_publish(EXCHANGE, peer_routing_key(self.instance, ROUTER),
                                                     queue_request_body([name]), properties)
                except pika_errors.AMQPError as exc:
                    raise AmqpLinkError(f"cannot ask the platform for queue {name}: {exc!r}") from exc
                asked = now
            gevent.sleep(delay)
            delay = min(delay * 2, 0.25)
            if self.queue_exists(name) is not None:
                return
            if time.monotonic() >= deadline:
                raise AmqpLinkError(f"the platform did not declare queue {name} within {OPERATION_TIMEOUT:g} "
                                    "s (is it running, with this agent in its auth.json?)")

    def _forget_link_state(self) -> None:
        self._bound.clear()
        self._pubsub_declared = False

    # ------------------------------------------------------------------ the link

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
        pending = Pending(message.id, message.peer, message.subsystem) if message.id else None
        self.publish(key, self._encode_args(message), self._properties(message, key), pending, timeout)

    def _encode_args(self, message: Message) -> bytes:
        try:
            return encode_args(message.args)
        except UnicodeEncodeError as exc:
            raise BusError(f"a text message argument is not Latin-1: {exc}") from exc
        except (TypeError, AttributeError) as exc:
            raise BusError(f"message arguments are bytes or text, not {exc}") from exc

    def _properties(self, message: Message, key: str, topic: str | None = None,
                    bus: str = "") -> EncodedProperties:
        """The AMQP properties of ``message`` to routing key ``key`` (a publish on ``topic``: with the
        topic and bus headers)."""
        user = message.user or self.params.identity
        encoder = self._encoder
        assert encoder is not None  # made by open(), before anything can be sent
        # a peer sends to few recipients, on few topics: the encoded table is remembered per kind
        kind = (key, user, topic, bus)
        table = self._tables.get(kind)
        if table is None:
            headers = message_headers(key, user)
            if topic is not None:
                headers.update(topic=topic, bus=bus)
            table = encoder.headers_table(headers.items())
            if len(self._tables) >= TABLES_KEPT:
                self._tables.clear()
            self._tables[kind] = table
        try:
            return encoder.encode_with_table(table, message.id or None, message.subsystem)
        except ValueError as exc:  # a message id or subsystem name longer than AMQP allows
            raise BusError(f"cannot send the {message.subsystem!r} message: {exc}") from exc

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
        plain = _PLAIN_BUS.match(body)
        if plain is not None:
            # our own pub/sub subsystem's body (json.dumps): the bus without parsing the rest, which
            # the subscribers parse (and drop if it is not JSON)
            bus = plain.group(1).decode(_TEXT)
        else:
            bus = _json_object(args, 2).get("bus") or ""
            if not isinstance(bus, str):
                raise SubscriptionRequestError("bus must be text")
        key = self._publish_keys.get(topic)
        if key is None:
            if len(self._publish_keys) >= _ORIGINS_KEPT:
                self._publish_keys.clear()
            key = self._publish_keys[topic] = publish_routing_key(self.instance, topic)
        properties = self._properties(message, key, topic, bus)
        pending = Pending(message.id, "", "pubsub", [b"request_response", b"1"]) if message.id else None
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
            except AmqpLinkError as exc:
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
        if self._platform_declares():
            self._await_platform_queue(self._pubsub_queue)
        else:
            self._call("declare pub/sub queue", self._operations(), "queue_declare", queue=self._pubsub_queue,
                       exclusive=True, auto_delete=True, durable=False)
        self._call("consume pub/sub", self._channel, "basic_consume", queue=self._pubsub_queue,
                   on_message_callback=self._on_publication, auto_ack=True, exclusive=True)
        self._pubsub_declared = True

    def _reply(self, request: Message, args: list[bytes]) -> None:
        if request.id:
            self._deliver(Message("", request.subsystem, args, request.id, ""))

    # ------------------------------------------------------------------ receiving

    def origin(self, properties: Any) -> Any:
        """Who sent a delivery (:func:`~.rmq_wire.message_origin`), or None when nobody vouches for it."""
        app_id, user_id, headers = properties.app_id, properties.user_id, properties.headers
        if user_id in self._trusted or (headers and not headers.keys().isdisjoint(LINK_HEADERS)):
            return message_origin(self.instance, app_id, user_id, headers, self._trusted)
        # otherwise the answer depends on app_id and user_id only: the same for every message of a peer
        try:
            return self._origins[app_id, user_id]
        except KeyError:
            pass
        found = message_origin(self.instance, app_id, user_id, headers, self._trusted)
        if len(self._origins) >= _ORIGINS_KEPT:
            self._origins.clear()
        self._origins[app_id, user_id] = found
        return found

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
        app_id = properties.app_id or ""
        remote = "" if app_id.startswith(f"{self.instance}.") else app_id.partition(".")[0]
        return Message(origin.peer, properties.type or "", args, properties.message_id or "", origin.user,
                       remote)

    def _on_publication(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        origin = self.origin(properties)
        if origin is None:
            self._drop("a publication whose sender the broker does not vouch for", properties)
            return
        headers = properties.headers or {}
        topic = headers.get("topic")
        if not isinstance(topic, str):
            topic = topic_from_routing_key(method.routing_key)
        elif not self.topic_matches_key(topic, method.routing_key):
            self._drop(f"a publication on {method.routing_key!r} claiming topic {topic!r}", properties)
            return
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
        args = [b"publish", frame_bytes(topic), with_sender(body, origin.peer)]
        self._deliver(Message("", PUBSUB_TYPE, args, properties.message_id or "", origin.user))

    def topic_matches_key(self, topic: str, routing_key: str) -> bool:
        """Whether ``routing_key`` is the publish key of ``topic`` (on this or a one-word instance).

        The broker's topic permissions judge the key, so a topic header naming another topic could
        pass a publish off as one on a protected topic.
        """
        known = self._topic_keys.get((topic, routing_key))
        if known is not None:
            return known
        head, tail = f"{PUBSUB_KEY}.", f".{topic_words(topic)}.#"
        where = routing_key[len(head):len(routing_key) - len(tail)]
        matches = (routing_key.startswith(head) and routing_key.endswith(tail) and bool(where)
                   and (where == self.instance or "." not in where))
        if len(self._topic_keys) >= _ORIGINS_KEPT:
            self._topic_keys.clear()
        self._topic_keys[topic, routing_key] = matches  # a subscriber hears few topics, each many times
        return matches

    def _drop(self, what: str, properties: Any) -> None:
        # what others send decides how often this runs: one line per kind and sender per interval
        self._stats["dropped"] += 1
        self._drop_log.warning(f"{what}:{properties.user_id}", "dropped %s (app_id %r, user_id %r)", what,
                               properties.app_id, properties.user_id)

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
            except pika_errors.AMQPError:
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


CONNECTION_CLASS = RmqConnection
