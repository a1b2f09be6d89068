"""The platform's router on RabbitMQ: one :class:`~.routing.VipRouter`, two transports (docs/protocol.md §6).

With ``--message-bus rmq`` the platform keeps its ZeroMQ ROUTER (``inproc://vip`` for the
in-process services, and its ipc/tcp addresses for vctl and ZeroMQ agents, as the original's
ZeroMQ proxy router did) and joins the broker with a :class:`~.link.RouterLink`. The same
:class:`~.routing.VipRouter` answers hello, ping, peerlist, query, agentstop and quit for peers of
both transports, so there is one peer list with one add/drop broadcast.

* RabbitMQ peers talk to each other through the broker; what they address to the router arrives
  on ``<instance>.router``, what they address to a ZeroMQ peer on the queue the link holds for it.
  Both are routed by the :class:`VipRouter` like any ZeroMQ message.
* :meth:`RabbitRouter.send` (the router's ``send``) tries the ZeroMQ socket unless the recipient is
  known on RabbitMQ, and publishes to the broker otherwise. The broker's answer to an unknown
  recipient comes back through the ``undeliverable`` exchange, and the router then drops that
  peer and sends the sender EHOSTUNREACH, as on ZeroMQ.
* Pub/sub: publishes over ZeroMQ are served by the platform's pub/sub service and copied to the
  broker for RabbitMQ subscribers; broker publishes are handed to the ZeroMQ subscribers. The
  router's pub/sub queue is bound only to what those ZeroMQ subscribers asked for (a
  :class:`~.pubsub_bindings.PubSubBinder` follows the pub/sub service's subscriptions), so
  publishes no ZeroMQ peer wants never reach the platform process.
* ``external_rpc`` to another instance goes through the broker (an :class:`~volttron.server.
  services.external.service.ExternalRouting` with this router as its broker route): federation
  or shovels between the brokers carry it (``vcfg rabbitmq federation`` / ``shovel``).
* A RabbitMQ peer that disappears without ``agentstop`` is noticed within
  :attr:`RabbitRouter.SWEEP_INTERVAL` seconds: its exclusive queue is gone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import gevent
import gevent.event
import gevent.queue

from volttron.client.messagebus.base import BusClosed, BusError, BusEvent, BusTimeout
from volttron.client.messagebus.rmq_admin import broker_admin
from volttron.client.messagebus.rmq_config import (
    BrokerSettings,
    admin_settings,
    load_rabbitmq_config,
    rabbitmq_config_path,
)
from volttron.client.messagebus.rmq_wire import fq_identity, with_sender
from volttron.server.router.rmq.link import Delivery, RouterLink
from volttron.server.router.rmq.pubsub_bindings import PubSubBinder
from volttron.server.router.rmq.users import BrokerUsers
from volttron.server.router.routing import (
    EHOSTUNREACH,
    VIP1,
    Frames,
    PeerBusy,
    PeerUnreachable,
    VipRouter,
)
from volttron.server.services.external.service import ExternalRouting, LinkDown
from volttron.server.services.pubsub.index import PLATFORMS
from volttron.server.services.pubsub.service import PubSubService
from volttron.utils.errors import ConfigError, VolttronError
from volttron.utils.frames import TEXT_ENCODING

_log = logging.getLogger(__name__)


class BrokerUnavailable(VolttronError):
    """The platform cannot join its RabbitMQ broker."""


class RabbitRouter:
    """Routes between the ZeroMQ socket, the broker and the :class:`VipRouter`; see the module docstring."""

    SWEEP_INTERVAL = 2.0
    PROXY_TIMEOUT = 5.0
    """Longest a new ZeroMQ peer's first message waits for its queue on the broker."""

    def __init__(self, router: VipRouter, zmq_send: Callable[[Frames], None], link: RouterLink,
                 pubsub: PubSubService | None = None) -> None:
        self.router = router
        self.link = link
        self._zmq_send = zmq_send
        self._pubsub = pubsub
        self.zmq_peers: set[bytes] = set()
        self.rmq_peers: set[bytes] = set()
        self._greenlets: list[gevent.Greenlet] = []
        self._problem = "no answer"
        self._failures = 0
        self._proxy_changes: gevent.queue.Queue = gevent.queue.Queue()
        self._hopeless = gevent.event.Event()
        self.copied_publishes = 0
        self.delivered_publishes = 0
        self.unroutable = 0
        self.users: BrokerUsers | None = None
        """Keeps agents' broker users in step with ``auth.json`` (set by :func:`start_rabbit_router`)."""
        self.external: ExternalRouting | None = None
        """``external_rpc`` to other instances through the broker (set by :func:`start_rabbit_router`)."""
        self.bindings: PubSubBinder | None = None
        """Binds the pub/sub queue to the ZeroMQ subscribers' prefixes (made by :meth:`start`)."""

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        """Join the broker and start routing; :class:`BrokerUnavailable` if not linked within ``timeout``."""
        self.link.open(self._on_link_event)
        deadline = time.monotonic() + timeout
        while not self.link.linked and not self._hopeless.is_set() and time.monotonic() < deadline:
            self._hopeless.wait(0.05)
        if not self.link.linked:
            where = self.link.settings.redacted()
            self.link.close(linger=0)
            raise BrokerUnavailable(f"cannot join the RabbitMQ broker at {where} as "
                                    f"{self.link.settings.username}: {self._problem}")
        self.router.send = self.send
        self.router.add_drop_listener(self._peer_dropped)
        self.router.register_subsystem(b"peerlist", self._peerlist)
        if self._pubsub is not None:
            self.bindings = PubSubBinder(self.link.instance, self.link, self._subscribed_prefixes,
                                         self._pubsub_request)
            self._pubsub.add_change_listener(self.bindings.changed)
            self.router.register_subsystem(b"pubsub", self.bindings.request)
            self.bindings.start()
        self._greenlets = [gevent.spawn(self._run), gevent.spawn(self._sweep),
                           gevent.spawn(self._apply_proxy_changes)]

    def close(self) -> None:
        """Stop routing and leave the broker."""
        if self.users is not None:
            self.users.stop()
        if self.bindings is not None:
            self.bindings.stop()
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self.link.close(linger=0.5)

    def _on_link_event(self, event: BusEvent, detail: str) -> None:
        if event in (BusEvent.CONNECT_RETRIED, BusEvent.HANDSHAKE_FAILED):
            self._problem = detail
            self._failures += 1
            # a refused login, a name in use, or a broker not answering thrice: starting cannot work
            if (event is BusEvent.HANDSHAKE_FAILED or detail.startswith(RouterLink.NAME_IN_USE)
                    or self._failures >= 3):
                self._hopeless.set()
        elif event is BusEvent.DISCONNECTED:
            _log.warning("lost the RabbitMQ broker at %s; reconnecting", detail)
        elif event is BusEvent.CONNECTED:
            _log.info("routing over RabbitMQ at %s as %s", detail, self.link.queue_name)
            if self.bindings is not None:
                self.bindings.changed()  # the new link is bound already; a pass checks nothing changed since

    def statistics(self) -> dict[str, Any]:
        """Counts for status output."""
        return {"zmq_peers": len(self.zmq_peers), "rmq_peers": len(self.rmq_peers),
                "copied_publishes": self.copied_publishes, "delivered_publishes": self.delivered_publishes,
                "unroutable": self.unroutable, "link": self.link.statistics(),
                "pubsub_bindings": self.bindings.statistics() if self.bindings is not None else None,
                "users": self.users.statistics() if self.users is not None else None}

    # -- sending --------------------------------------------------------------------------------
    def send_external(self, to_platform: str, to_peer: str, from_peer: str, user: bytes, msg_id: bytes,
                      body: bytes) -> None:
        """:class:`~volttron.server.services.external.service.BrokerRoute`: publish on the broker."""
        try:
            self.link.publish_external(to_platform, to_peer, from_peer, user, msg_id, body)
        except BusError as exc:
            raise LinkDown(str(exc) or "no link to the broker") from None

    def send(self, frames: Frames) -> None:
        """The router's ``send``: ZeroMQ first unless the recipient is a RabbitMQ peer, else the broker."""
        recipient = frames[0]
        if recipient not in self.rmq_peers:
            try:
                self._zmq_send(frames)
                return
            except PeerUnreachable:
                if recipient in self.zmq_peers:
                    raise
        try:
            self.link.forward(frames)
        except BusTimeout:
            raise PeerBusy(recipient) from None
        except BusError as exc:
            _log.debug("cannot forward to %r: %s", recipient, exc)
            raise PeerUnreachable(recipient) from None

    # -- ZeroMQ side ----------------------------------------------------------------------------
    def route_zmq(self, frames: Frames) -> None:
        """What the ZeroMQ socket loop calls instead of ``router.route``: learns the ZeroMQ peers."""
        sender = frames[0] if frames else b""
        if sender and sender not in self.zmq_peers and not sender.startswith(b"\x00"):
            self.zmq_peers.add(sender)
            self.rmq_peers.discard(sender)
            # A new ZeroMQ peer's first message may ask for an answer from a RabbitMQ peer: its
            # queue must exist before that answer comes, so wait (briefly) for it.
            done: gevent.event.AsyncResult[None] = gevent.event.AsyncResult()
            self._proxy_changes.put((sender, done))
            done.wait(self.PROXY_TIMEOUT)
        self.router.route(frames)

    def _peer_dropped(self, identity: bytes) -> None:
        self.rmq_peers.discard(identity)
        if self.bindings is not None:
            self.bindings.forget(identity)
        if identity in self.zmq_peers:
            self.zmq_peers.discard(identity)
            self._proxy_changes.put((identity, None))

    def _apply_proxy_changes(self) -> None:
        """Hold and release the queues of ZeroMQ peers one change at a time, in order.

        A release is skipped when the peer has come back meanwhile (it still needs its queue).
        """
        while True:
            identity, done = self._proxy_changes.get()
            name = identity.decode(TEXT_ENCODING)
            try:
                if done is not None:
                    self.link.add_proxy(name)
                elif identity not in self.zmq_peers:
                    self.link.remove_proxy(name)
            finally:
                if done is not None:
                    done.set(None)

    def _peerlist(self, frames: Frames) -> None:
        """``peerlist`` as the original RabbitMQ router answers it (``list_with_messagebus`` names buses)."""
        sender, msg_id = frames[0], frames[4]
        head = [sender, b"", VIP1, b"", msg_id, b"peerlist"]
        op = frames[6] if len(frames) > 6 else None
        peers = self.router.peers
        if op == b"list":
            self.router.reply([*head, b"listing", *peers])
        elif op == b"list_with_messagebus":
            listing = {p.decode(TEXT_ENCODING): "rmq" if p in self.rmq_peers else "zmq" for p in peers}
            self.router.reply([*head, b"listing_with_messagebus", json.dumps(listing).encode("ascii")])
        else:
            self.router.reply([*head, b"error", b"missing operation" if op is None else b"unknown operation"])

    def _subscribed_prefixes(self) -> Iterator[str]:
        """Every prefix subscribed through the pub/sub service (either bucket, any bus)."""
        assert self._pubsub is not None
        index = self._pubsub.index
        for platform in PLATFORMS:
            for _bus, prefix, _member in index.listing(None, "", None, platform, subscribed=False):
                yield prefix

    def _pubsub_request(self, frames: Frames) -> None:
        """Serve a ``pubsub`` request, and copy an accepted publish to the broker."""
        pubsub = self._pubsub
        assert pubsub is not None
        before = pubsub.published
        pubsub.handle(frames)
        if pubsub.published == before or len(frames) < 9 or frames[6] != b"publish":
            return  # not a publish, or refused (protected topic, malformed)
        try:
            bus = json.loads(frames[8].decode(TEXT_ENCODING)).get("bus") or ""
        except (ValueError, AttributeError):
            bus = ""
        sender = frames[0].decode(TEXT_ENCODING)
        try:
            self.link.publish_copy(sender, sender, frames[4].decode(TEXT_ENCODING),
                                   frames[7].decode(TEXT_ENCODING), frames[8], str(bus))
            self.copied_publishes += 1
        except BusError as exc:
            _log.debug("publish on %r not copied to the broker: %s", frames[7], exc)

    # -- RabbitMQ side --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self.link.next_delivery()
            except BusClosed:
                return
            if not isinstance(item, Delivery):
                continue
            try:
                if item.kind == "route":
                    self._route_rmq(item.frames)
                elif item.kind == "unroutable":
                    self._unroutable(*item.frames)
                elif item.kind == "publication":
                    self._publication(*item.frames)
                elif item.kind == "external_undeliverable" and self.external is not None:
                    msg_id, body, ours = item.frames
                    self.external.undeliverable(msg_id, body, ours == b"1")
            except Exception:  # one bad message must not stop the routing
                _log.exception("routing a %s from the broker failed", item.kind)

    def _route_rmq(self, frames: Frames) -> None:
        sender = frames[0]
        if sender and sender not in self.zmq_peers:
            self.rmq_peers.add(sender)
        self.router.route(frames)

    def _unroutable(self, sender: bytes, recipient: bytes, msg_id: bytes, subsystem: bytes) -> None:
        self.unroutable += 1
        self.router.drop_peer(recipient)
        if sender and sender != recipient and subsystem != b"error":
            self.router.send_error(sender, msg_id, EHOSTUNREACH, recipient, subsystem)

    def _publication(self, sender: bytes, user: bytes, msg_id: bytes, topic: bytes, body: bytes,
                     bus: bytes) -> None:
        if self._pubsub is None:
            return
        # the pub/sub service subscribes peers by their identity frame; its index takes any hashable peer
        subscribers = cast("set[bytes]", self._pubsub.index.match(topic.decode(TEXT_ENCODING),
                                                                  bus.decode(TEXT_ENCODING)))
        if not subscribers:
            return
        delivery = with_sender(body, sender.decode(TEXT_ENCODING))
        tail = [b"", VIP1, user, msg_id, b"pubsub", b"publish", topic, delivery]
        for subscriber in subscribers:
            if subscriber in self.rmq_peers:
                continue  # it has its own binding
            try:
                self._zmq_send([subscriber, *tail])
                self.delivered_publishes += 1
            except PeerBusy:
                _log.debug("publish on %r dropped for slow subscriber %r", topic, subscriber)
            except PeerUnreachable:
                self.router.drop_peer(subscriber)

    def _sweep(self) -> None:
        link = self.link
        while True:
            gevent.sleep(self.SWEEP_INTERVAL)
            if not link.linked:
                continue
            for peer in list(self.rmq_peers):
                try:
                    exists = link.queue_consumed(fq_identity(link.instance, peer.decode(TEXT_ENCODING)))
                except BusError:
                    break  # the link dropped: try again later
                if not exists and peer in self.rmq_peers:
                    _log.info("RabbitMQ peer %r is gone", peer)
                    self.router.drop_peer(peer)


def platform_broker_settings(home: Path, instance: str) -> BrokerSettings:
    """The platform's broker and login from ``$VOLTTRON_HOME/rabbitmq_config.yml``.

    Raises :class:`BrokerUnavailable` when the file is missing or names another instance.
    """
    try:
        config = load_rabbitmq_config(home)
        configured = config.get("instance-name")
        if configured and str(configured) != instance:
            raise BrokerUnavailable(f"{rabbitmq_config_path(home)} was made for instance {configured!r}, not "
                                    f"{instance!r}: run 'vcfg rabbitmq single' again or fix instance-name")
        return admin_settings(config, home, instance)
    except ConfigError as exc:
        raise BrokerUnavailable(f"the RabbitMQ message bus is not set up: {exc}") from exc


def start_rabbit_router(router: VipRouter, zmq_send: Callable[[Frames], None], settings: BrokerSettings,
                        pubsub: PubSubService | None, *, home: Path, keys: tuple[str | None, str | None],
                        timeout: float = 30.0) -> RabbitRouter:
    """Join the broker described by ``settings`` and route ``router``'s traffic over it too.

    ``keys`` is the platform's (public, secret) key pair; with it, agents in ``auth.json`` get
    broker users (:mod:`~.users`). Without it (authentication disabled) agents need logins
    of their own.
    """
    rabbit = RabbitRouter(router, zmq_send, RouterLink(settings), pubsub)
    rabbit.start(timeout)
    if pubsub is not None:
        rabbit.external = ExternalRouting(router, pubsub, settings.instance_name or "", broker=rabbit)
        rabbit.external.attach()
    public, secret = keys
    if public and secret:
        try:
            admin = broker_admin(settings, settings.username, settings.password)
            rabbit.users = BrokerUsers(admin, home, settings.instance_name or "", settings.vhost,
                                       secret_key=secret, public_key=public, tls=settings.ssl)
            rabbit.users.start()
        except VolttronError as exc:
            _log.error("agents get no broker users from auth.json: %s", exc)
    return rabbit
