"""The platform router's own connection to RabbitMQ (docs/protocol.md §6.1, §6.3, §6.4).

A :class:`RouterLink` is a :class:`~volttron.client.messagebus.rmq.RmqConnection` with identity
``router``, logged in as the platform's broker user, that also:

* declares the ``volttron`` topic exchange (alternate exchange ``undeliverable``) and the
  ``undeliverable`` fanout exchange, so a platform never runs on a half-prepared vhost;
* consumes ``<instance>.router`` (messages RabbitMQ peers address to the router, and the requests of
  agents for their queues: an agent's broker user may declare nothing, so the router declares its
  two queues for it, :data:`~volttron.client.messagebus.rmq_permissions.QUEUE_REQUEST`), and
  ``<instance>.router.undeliverable``, bound to ``undeliverable``: what the broker could not route,
  so the sender gets EHOSTUNREACH as on ZeroMQ;
* holds a queue ``<instance>.<identity>`` for each peer connected over ZeroMQ (the in-process
  services, vctl, ZeroMQ agents), so RabbitMQ peers reach them by the same routing keys (the
  original's ZeroMQ proxy router);
* consumes ``<instance>.router.pubsub`` to hand broker publishes to pub/sub subscribers connected
  over ZeroMQ, bound only to the keys :meth:`RouterLink.set_pubsub_bindings` was last given (what
  those subscribers asked for, :mod:`~volttron.server.router.rmq.pubsub_bindings`; none while nobody
  on ZeroMQ subscribes), and bound to them again on every new link before it is reported up;
* publishes ``external_rpc`` messages for agents of other instances (:meth:`RouterLink.publish_external`,
  routing key ``<other instance>.<identity>``: a federation or shovel carries them), and reports
  those the broker could not route, ours or another instance's, as ``"external_undeliverable"``.

Everything it receives is queued as a :class:`Delivery` for the router's greenlet
(:mod:`~volttron.server.router.rmq.router`), never handled in the hub. The queue is the one the
client's link reads :class:`~volttron.client.messagebus.base.Message` objects from: that link
queues a Message only as the reply or error a publish asked for, which the router's never do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import gevent
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore
from gevent.queue import Full, Queue

from volttron.client.messagebus.base import BusEvent, ConnectionParams, Message
from volttron.client.messagebus.rmq import RmqConnection
from volttron.client.messagebus.rmq_amqp import OPERATION_TIMEOUT, AmqpLinkError, QueueLocked
from volttron.client.messagebus.rmq_config import BrokerSettings
from volttron.client.messagebus.rmq_permissions import QUEUE_REQUEST, agent_queue_arguments, requested_queues
from volttron.client.messagebus.rmq_wire import (
    ALTERNATE_EXCHANGE,
    CONTENT_TYPE,
    EXCHANGE,
    PUBSUB_KEY,
    ROUTER,
    decode_args,
    encode_args,
    fq_identity,
    message_headers,
    peer_routing_key,
    publish_routing_key,
    topic_from_routing_key,
)
from volttron.utils.frames import TEXT_ENCODING

_log = logging.getLogger(__name__)

EXTERNAL_RPC = "external_rpc"
VIA_HEADER = "via"
"""Header marking publishes the router copied from ZeroMQ to the broker (so it does not copy them back)."""


@dataclass(frozen=True)
class Delivery:
    """Something the broker gave the router.

    ``kind`` is ``"route"`` (``frames`` as the ZeroMQ router receives them: sender, recipient,
    ``VIP1``, user, id, subsystem, args), ``"unroutable"`` (``frames`` = sender, recipient, id,
    subsystem), ``"publication"`` (``frames`` = sender, user, id, topic, body, bus) or
    ``"external_undeliverable"`` (``frames`` = id, envelope, ``b"1"`` if we sent it else ``b""``).
    """

    kind: str
    frames: list[bytes]


def _b(text: str) -> bytes:
    try:
        return text.encode(TEXT_ENCODING)
    except UnicodeEncodeError:
        return text.encode("utf-8")


class RouterLink(RmqConnection):
    """The router's broker connection; see the module docstring."""

    def __init__(self, settings: BrokerSettings) -> None:
        super().__init__(ConnectionParams(settings.redacted(), ROUTER, instance_name=settings.instance_name,
                                          options={"context": settings}))
        self.proxied: set[str] = set()
        """Identities of ZeroMQ peers whose queue the router holds."""
        self._proxy_channels: dict[str, Any] = {}
        self._queue_requests: Queue = Queue(maxsize=self.MAX_QUEUE_REQUESTS)
        self._requested: set[str] = set()
        self._declarer: Any = None
        self._declaring: gevent.Greenlet | None = None
        self._pubsub_wanted: frozenset[str] = frozenset()
        self._pubsub_bound: set[str] = set()
        self._binding = BoundedSemaphore()
        """One binder of the pub/sub queue at a time: the link's set-up or :meth:`set_pubsub_bindings`."""
        self._stats["agent_queues_declared"] = 0

    MAX_QUEUE_REQUESTS = 1000
    """Agents' queues waiting to be declared; further requests are dropped (the agent asks again)."""

    def _is_router(self) -> bool:
        return True

    def _deliver(self, message: Message | Delivery) -> None:
        """Hand a :class:`Delivery` (or a Message of the client's link, see the module docstring) to
        :meth:`next_delivery`."""
        self._incoming.put(message)

    @property
    def undeliverable_queue(self) -> str:
        """``<instance>.router.undeliverable``."""
        return f"{self.queue_name}.undeliverable"

    @property
    def pubsub_queue(self) -> str:
        """``<instance>.router.pubsub``."""
        return f"{self.queue_name}.pubsub"

    # -- link set-up ----------------------------------------------------------------------------
    def _setup_link(self) -> None:
        ops = self._operations()
        self._call("declare exchange", ops, "exchange_declare", exchange=ALTERNATE_EXCHANGE,
                   exchange_type="fanout", durable=True)
        self._call("declare exchange", ops, "exchange_declare", exchange=EXCHANGE, exchange_type="topic",
                   durable=True, arguments={"alternate-exchange": ALTERNATE_EXCHANGE})
        self._queue(self.undeliverable_queue, ALTERNATE_EXCHANGE, "", self._on_undeliverable)
        self._queue(self.pubsub_queue, EXCHANGE, None, self._on_publication_copy)
        self._proxy_channels.clear()
        for identity in sorted(self.proxied):
            try:
                self._proxy_queue(identity)
            except QueueLocked as exc:
                _log.warning("no RabbitMQ queue for ZeroMQ peer %r: %s", identity, exc)
        # last: from here to reporting the link up nothing yields, so no newer set of keys is missed
        with self._binding:  # a new queue: none of the previous link's bindings are there
            self._pubsub_bound.clear()
            self._bind_pubsub()

    NAME_IN_USE = "another platform named"

    def _identity_in_use(self, exc: Exception) -> None:
        self._emit(BusEvent.CONNECT_RETRIED, f"{self.NAME_IN_USE} {self.instance!r} already routes on "
                                             f"vhost {self.settings.vhost!r}")

    def _queue(self, name: str, exchange: str, key: str | None, callback: Any) -> None:
        self._call("declare queue", self._operations(), "queue_declare", queue=name, exclusive=True,
                   auto_delete=True, durable=False)
        if key is not None:
            self._call("bind queue", self._operations(), "queue_bind", queue=name, exchange=exchange,
                       routing_key=key)
        self._call("consume", self._channel, "basic_consume", queue=name, on_message_callback=callback,
                   auto_ack=True)

    def _proxy_queue(self, identity: str) -> None:
        """Declare and consume the queue of a ZeroMQ peer, on a channel of its own.

        If a RabbitMQ peer with that identity consumes it already, only that channel is refused.
        """
        name = fq_identity(self.instance, identity)
        self._declare_queue(name)
        channel = self._open_channel(self._on_proxy_channel_closed)
        self._proxy_channels[identity] = channel
        self._consume(channel, name, self._on_proxied)

    def _forget_link_state(self) -> None:
        super()._forget_link_state()
        self._declarer = None

    # -- the pub/sub queue's bindings -----------------------------------------------------------
    @property
    def pubsub_bound(self) -> frozenset[str]:
        """The keys ``<instance>.router.pubsub`` is bound to on the current link."""
        return frozenset(self._pubsub_bound) if self.linked else frozenset()

    def set_pubsub_bindings(self, keys: frozenset[str]) -> None:
        """Bind ``<instance>.router.pubsub`` to exactly ``keys``: now if linked, else at the next link.

        New bindings are made before old ones go, so a publish both sets match is never missed.
        Waits for the broker (one round trip per binding made or removed); raises
        :class:`~.base.BusError` when the link drops meanwhile (the next link binds ``keys``).
        """
        with self._binding:
            self._pubsub_wanted = keys
            if self.linked:
                self._bind_pubsub()

    def _bind_pubsub(self) -> None:
        for key in sorted(self._pubsub_wanted - self._pubsub_bound):
            self._call("bind pub/sub queue", self._operations(), "queue_bind", queue=self.pubsub_queue,
                       exchange=EXCHANGE, routing_key=key)
            self._pubsub_bound.add(key)
        for key in sorted(self._pubsub_bound - self._pubsub_wanted):
            self._call("unbind pub/sub queue", self._operations(), "queue_unbind", queue=self.pubsub_queue,
                       exchange=EXCHANGE, routing_key=key)
            self._pubsub_bound.discard(key)

    # -- agents' queues -------------------------------------------------------------------------
    def _queue_request(self, properties: Any, body: bytes) -> None:
        """Queue the declarations an agent asked for (its own queues only, see :func:`requested_queues`)."""
        user = properties.user_id or ""
        granted = [] if user in self._trusted else requested_queues(self.instance, user, body)
        if not granted:
            self._drop("a request for queues that are not the sender's", properties)
            return
        for name, vip in granted:
            if name in self._requested:
                continue
            try:
                self._queue_requests.put_nowait((name, vip))
            except Full:
                self._drop_log.warning("queue-requests-full", "too many queue requests waiting: %s dropped "
                                       "(its agent asks again)", name)
                continue
            self._requested.add(name)
        if self._declaring is None or self._declaring.dead:
            self._declaring = gevent.spawn(self._declare_requested)

    def _declare_requested(self) -> None:
        while not self._closed:
            name, vip = self._queue_requests.get()
            try:
                self._declare_agent_queue(name, vip)
            except AmqpLinkError as exc:
                _log.warning("queue %s not declared for its agent: %s", name, exc)
            finally:
                self._requested.discard(name)

    def _declare_agent_queue(self, name: str, vip: bool) -> None:
        """Declare an agent's queue (and bind its VIP queue to its routing key), on a channel of its own:
        a queue of that name with other settings refuses the declaration and closes only that channel."""
        channel = self._declarer
        if channel is None or not channel.is_open:
            self._declarer = channel = self._open_channel(self._on_declarer_closed)
        self._call("declare agent queue", channel, "queue_declare", queue=name, **agent_queue_arguments())
        if vip:
            self._call("bind agent queue", channel, "queue_bind", queue=name, exchange=EXCHANGE,
                       routing_key=name)
        self._stats["agent_queues_declared"] += 1

    def _on_declarer_closed(self, channel: Any, reason: Exception) -> None:
        if channel is self._declarer:
            self._declarer = None
        self._fail_waiters(AmqpLinkError(f"declaring channel closed: {reason!r}"), channel)

    def close(self, linger: float = 1.0) -> None:
        super().close(linger)
        if self._declaring is not None and self._declaring is not gevent.getcurrent():
            self._declaring.kill(block=False)

    def _on_proxy_channel_closed(self, channel: Any, reason: Exception) -> None:
        self._fail_waiters(AmqpLinkError(f"proxy channel closed: {reason!r}"), channel)
        for identity, held in list(self._proxy_channels.items()):
            if held is channel:
                del self._proxy_channels[identity]

    def add_proxy(self, identity: str) -> None:
        """Hold ``<instance>.<identity>`` for a ZeroMQ peer (now if linked, else at the next link)."""
        if identity in self.proxied or identity == ROUTER:
            return
        self.proxied.add(identity)
        if self.linked:
            try:
                self._proxy_queue(identity)
            except AmqpLinkError as exc:
                # taken by a RabbitMQ peer of that identity, or the link dropped (redone when back)
                _log.warning("no RabbitMQ queue for ZeroMQ peer %r: %s", identity, exc)

    def remove_proxy(self, identity: str) -> None:
        """Delete the queue held for a ZeroMQ peer that went away."""
        if identity not in self.proxied:
            return
        self.proxied.discard(identity)
        channel = self._proxy_channels.pop(identity, None)
        if channel is not None and channel.is_open and self.linked:
            # its consumer goes, and with it the auto-delete queue; wait, so that a peer coming back
            # with this identity can consume the queue again
            closed: AsyncResult[None] = AsyncResult()
            channel.add_on_close_callback(lambda *_: closed.set(None))
            channel.close()
            closed.wait(OPERATION_TIMEOUT)

    # -- receiving ------------------------------------------------------------------------------
    def _on_vip_message(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        if properties.type == QUEUE_REQUEST:
            self._queue_request(properties, body)
            return
        message = self.decode_message(properties, body)
        if message is not None:
            self._deliver(Delivery("route", [_b(message.peer), b"", b"VIP1", _b(message.user), _b(message.id),
                                             _b(message.subsystem), *message.args]))

    def _on_proxied(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message = self.decode_message(properties, body)
        if message is None:
            return
        recipient = method.routing_key[len(self.instance) + 1:]
        self._deliver(Delivery("route", [_b(message.peer), _b(recipient), b"VIP1", _b(message.user),
                                         _b(message.id), _b(message.subsystem), *message.args]))

    def _on_undeliverable(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        key = method.routing_key or ""
        local = f"{self.instance}."
        if key.startswith(PUBSUB_KEY):
            return  # a publish nobody subscribed to
        if properties.type == EXTERNAL_RPC and self._external_undeliverable(key, properties, body):
            return
        if not key.startswith(local):
            return  # another instance's message
        origin = self.origin(properties)
        if origin is None:
            return
        recipient = key[len(local):]
        self._deliver(Delivery("unroutable", [_b(origin.peer), _b(recipient), _b(properties.message_id or ""),
                                              _b(properties.type or "")]))

    def _external_undeliverable(self, key: str, properties: Any, body: bytes) -> bool:
        """Report an unroutable ``external_rpc`` message we sent to another instance, or one another
        instance sent here; False for anything else (a local message: the usual rules apply)."""
        user = properties.user_id or ""
        ours = user in self._trusted
        local = key.startswith(f"{self.instance}.")
        remote_user = bool(user) and not ours and not user.startswith(f"{self.instance}.")
        if not ((ours and not local) or (remote_user and local)) or self.origin(properties) is None:
            return False
        try:
            args = decode_args(body)
        except ValueError:
            return True
        if len(args) == 2 and args[0] == b"send_peer":
            self._deliver(Delivery("external_undeliverable", [_b(properties.message_id or ""), args[1],
                                                              b"1" if ours else b""]))
        return True

    def _on_publication_copy(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        headers = properties.headers or {}
        if headers.get(VIA_HEADER) == ROUTER:
            return  # copied from ZeroMQ by us: its ZeroMQ subscribers have it already
        origin = self.origin(properties)
        if origin is None:
            return
        topic = headers.get("topic")
        if not isinstance(topic, str):
            topic = topic_from_routing_key(method.routing_key)
        elif not self.topic_matches_key(topic, method.routing_key):
            self._drop("a publication whose topic header is not its routing key", properties)
            return  # the broker judged the key, not the header: a protected topic could hide in it
        bus = headers.get("bus")
        if not isinstance(bus, str):
            bus = ""
        msg_id = _b(properties.message_id or "")
        frames = [_b(origin.peer), _b(origin.user), msg_id, _b(topic), body, _b(bus)]
        self._deliver(Delivery("publication", frames))

    def next_delivery(self, timeout: float | None = None) -> Delivery | Message | None:
        """The next :class:`Delivery` (None after ``timeout``); :class:`~.base.BusClosed` once closed.

        A Message would be a reply or error the client's link queued for a publish that asked for one
        (see the module docstring): the reader skips it.
        """
        # recv() is declared for the client's link, whose queue holds Messages; ours also holds what
        # _deliver above queued
        return cast("Delivery | Message | None", self.recv(timeout))

    # -- sending --------------------------------------------------------------------------------
    def forward(self, frames: list[bytes]) -> None:
        """Publish frames the router sends (recipient, sender, ``VIP1``, user, id, subsystem, args).

        Never waits: raises :class:`~.base.BusTimeout` at once when there is no link.
        """
        recipient = frames[0].decode(TEXT_ENCODING)
        sender = frames[1].decode(TEXT_ENCODING)
        key = peer_routing_key(self.instance, recipient)
        message = Message(recipient, frames[5].decode(TEXT_ENCODING), list(frames[6:]),
                          frames[4].decode(TEXT_ENCODING), frames[3].decode(TEXT_ENCODING))
        self.publish(key, encode_args(message.args), self._router_properties(sender, message, key), None, 0)

    def publish_copy(self, sender: str, user: str, msg_id: str, topic: str, body: bytes, bus: str) -> None:
        """Copy a publish made over ZeroMQ to the broker, for the RabbitMQ subscribers (never waits)."""
        key = publish_routing_key(self.instance, topic)
        message = Message("", "pubsub", [], msg_id, user)
        extra = {"topic": topic, "bus": bus, VIA_HEADER: ROUTER}
        properties = self._router_properties(sender, message, key, extra)
        self.publish(key, body, properties, None, 0)

    def publish_external(self, to_platform: str, to_peer: str, from_peer: str, user: bytes, msg_id: bytes,
                         body: bytes) -> None:
        """Publish ``['external_rpc', 'send_peer', body]`` for ``to_peer`` of instance ``to_platform``
        (routing key ``<to_platform>.<to_peer>``) on behalf of local agent ``from_peer``; never waits."""
        key = peer_routing_key(to_platform, to_peer)
        message = Message(to_peer, EXTERNAL_RPC, [b"send_peer", body], msg_id.decode(TEXT_ENCODING),
                          user.decode(TEXT_ENCODING))
        properties = self._router_properties(from_peer, message, key)
        self.publish(key, encode_args(message.args), properties, None, 0)

    def _router_properties(self, sender: str, message: Message, key: str,
                           extra: dict[str, Any] | None = None) -> Any:
        import pika

        return pika.BasicProperties(
            app_id=fq_identity(self.instance, sender or ROUTER),
            user_id=self.settings.username,
            headers={**message_headers(key, message.user), **(extra or {})},
            message_id=message.id or None,
            type=message.subsystem,
            content_type=CONTENT_TYPE,
        )


