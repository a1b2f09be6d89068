"""The pub/sub service, served by the router itself (docs/protocol.md §2.6).

Agents send ``pubsub`` messages to the router (empty recipient); ``args = [op, ...]``:

================  ===================================================  ====================================
op                arguments                                            reply
================  ===================================================  ====================================
subscribe         ``{"prefix": str|[str], "bus", "all_platforms"}``    ``request_response, true``
unsubscribe       ``{"internal"|"all": {"prefix": [..]|null, "bus"}}`` ``request_response, true``
publish           topic, ``{"bus", "headers", "message"}``             ``request_response, <count>``
list              ``{"prefix", "all_platforms", "subscribed", ...}``   ``list_response, [[bus, prefix, in]]``
synchronize       ``connected``, ``{"subscriptions": {...}}``          none
auth_update       ``{"capabilities": {user_id: caps}}`` (auth only)    none
protected_update  protected-topics document (auth only)                none
================  ===================================================  ====================================

Linked platforms add ``external_list`` and ``external_publish`` (:mod:`..external.service`, which
registers them with :meth:`PubSubService.register_op` and forwards publishes with
:meth:`PubSubService.add_forwarder`).

A subscriber receives ``['publish', topic, {"sender": publisher, "bus", "headers", "message"}]``
once per publish, however many of its prefixes match. The publisher's JSON is parsed once (to read
the bus and reject garbage) and the ``sender`` key is spliced into its bytes, so the message itself
is delivered exactly as it was sent. Counts are ASCII digits. Malformed requests get an error reply
(``22 Invalid argument``) so the agent's pending result fails at once instead of timing out.

A peer holds a bounded number of subscriptions (:class:`~.index.PubSubIndex` limits); past them a
``subscribe`` or ``synchronize`` is refused whole with error ``122`` and a text naming the limit. A
dropped peer's subscriptions leave the index in slices, yielding to the router between them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import gevent

from volttron.server.identities import AUTH
from volttron.server.router.routing import VIP1, Frames, PeerBusy, PeerUnreachable, VipRouter
from volttron.server.services.pubsub.index import (
    ALL_PLATFORMS,
    DEFAULT_MAX_PER_PEER,
    INTERNAL,
    Key,
    PubSubIndex,
    SubscriptionLimitError,
)
from volttron.server.services.pubsub.protected import ProtectedTopics, is_allowed
from volttron.utils.jsonapi import decode, encode
from volttron.utils.throttle import LogThrottle

_log = logging.getLogger(__name__)

EINVAL = 22
EDQUOT = 122
DROP_SLICE = 500
"""Subscriptions removed between two yields when a peer is dropped."""
PROTECTED_TOPIC_ERROR = b"-32001"
_SENDER_CACHE_LIMIT = 4096
_TEXT = "iso-8859-1"

CapabilityTable = Mapping[str, Mapping[str, Any]]
Forwarder = Callable[[bytes, bytes, str, bytes, bytes, str], int]
"""``(sender, msg_id, topic, topic_frame, delivery, bus) -> platforms it was sent to`` (§3.6)."""


class BadPubSubRequest(ValueError):
    """A pub/sub request that cannot be served; the text goes back to the sender."""


def _json_object(frame: bytes, what: str) -> dict[str, Any]:
    try:
        value = decode(frame.decode(_TEXT))
    except (ValueError, RecursionError):
        raise BadPubSubRequest(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadPubSubRequest(f"{what} must be a JSON object")
    return value


def _prefixes(value: Any, allow_none: bool = False) -> list[str] | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return value
    raise BadPubSubRequest("prefix must be text or a list of text")


@overload
def _bus(value: Any, allow_none: Literal[False] = False) -> str: ...


@overload
def _bus(value: Any, allow_none: bool) -> str | None: ...


def _bus(value: Any, allow_none: bool = False) -> str | None:
    if value is None:
        return None if allow_none else ""
    if not isinstance(value, str):
        raise BadPubSubRequest("bus must be text")
    return value


class PubSubService:
    """Subscriptions and publish fan-out for a :class:`VipRouter`.

    ``capabilities`` returns ``{user_id: capabilities}`` (from ``auth.json`` until the auth service
    pushes a table with ``auth_update``); ``protected`` is the write-protected topic list.
    """

    def __init__(self, router: VipRouter, *, protected: ProtectedTopics | None = None,
                 capabilities: Callable[[], CapabilityTable] | None = None,
                 auth_identity: str = AUTH, throttle: LogThrottle | None = None,
                 max_subscriptions: int = DEFAULT_MAX_PER_PEER) -> None:
        self._router = router
        self.index = PubSubIndex(max_per_peer=max_subscriptions)
        self._protected = protected if protected is not None else ProtectedTopics()
        self._capabilities: Callable[[], CapabilityTable] = capabilities or dict
        self._pushed_capabilities: CapabilityTable | None = None
        self._auth_identity = auth_identity.encode(_TEXT)
        self._throttle = throttle or LogThrottle(_log)
        self._ops: dict[bytes, Callable[[Frames], None]] = {
            b"publish": self._publish,
            b"subscribe": self._subscribe,
            b"unsubscribe": self._unsubscribe,
            b"list": self._list,
            b"synchronize": self._synchronize,
            b"auth_update": self._auth_update,
            b"protected_update": self._protected_update,
        }
        self._forwarders: list[Forwarder] = []
        self._sender_json: dict[bytes, bytes] = {}  # a publisher's identity as a JSON string
        self._subscription_listeners: list[Callable[[], None]] = []
        self._change_listeners: list[Callable[[], None]] = []
        self.published = 0
        self.delivered = 0
        self.dropped: Counter[bytes] = Counter()

    def attach(self) -> None:
        """Serve ``pubsub`` on the router and forget a peer's subscriptions when it is dropped."""
        self._router.register_subsystem(b"pubsub", self.handle)
        self._router.add_drop_listener(self.peer_dropped)

    def register_op(self, op: bytes, handler: Callable[[Frames], None]) -> None:
        """Serve another operation (the platform-to-platform ``external_*`` ones, docs/protocol.md §3.6)."""
        self._ops[op] = handler

    def add_forwarder(self, forwarder: Forwarder) -> None:
        """Also offer every accepted publish to ``forwarder`` (other platforms); it returns a count."""
        self._forwarders.append(forwarder)

    def add_subscription_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after a change that may have touched the ``all`` (every platform) bucket."""
        self._subscription_listeners.append(listener)

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after any change of the subscriptions (either bucket, any bus or peer).

        It is called in the middle of serving a request: it should only note that something changed.
        """
        self._change_listeners.append(listener)

    def _subscriptions_changed(self, all_bucket: bool = True) -> None:
        for listener in self._change_listeners:
            listener()
        for listener in self._subscription_listeners if all_bucket else ():
            listener()

    def peer_dropped(self, identity: bytes) -> None:
        """Remove every subscription of a peer that went away, a slice at a time past ``DROP_SLICE``."""
        self.dropped.pop(identity, None)
        keys = self.index.detach_peer(identity)
        if len(keys) <= DROP_SLICE:
            self.index.remove_detached(identity, keys)
            if keys:
                self._subscriptions_changed()
        else:
            gevent.spawn(self._remove_slices, identity, keys)

    def _remove_slices(self, identity: bytes, keys: list[Key]) -> None:
        for start in range(0, len(keys), DROP_SLICE):
            self.index.remove_detached(identity, keys[start:start + DROP_SLICE])
            gevent.sleep(0)
        self._subscriptions_changed()

    def statistics(self) -> dict[str, Any]:
        """Counts for status output, with the dropped deliveries per slow subscriber."""
        return {**self.index.statistics(), "published": self.published, "delivered": self.delivered,
                "dropped": {k.decode(_TEXT): v for k, v in self.dropped.items()}}

    # -- dispatch ------------------------------------------------------------------------------
    def handle(self, frames: Frames) -> None:
        """Serve one ``pubsub`` message addressed to the router."""
        op = frames[6] if len(frames) > 6 else b""
        handler = self._ops.get(op)
        try:
            if handler is None:
                raise BadPubSubRequest(f"unknown pubsub operation {op[:40].decode(_TEXT)!r}" if op
                                 else "missing pubsub operation")
            handler(frames)
        except SubscriptionLimitError as exc:
            self._throttle.warning(f"sublimit:{frames[0]!r}", "refused subscriptions of %r: %s",
                                   frames[0], exc)
            self._router.send_error(frames[0], frames[4], EDQUOT, b"", b"pubsub", str(exc).encode(_TEXT))
        except BadPubSubRequest as exc:
            self._router.malformed += 1
            self._throttle.warning(f"pubsub:{frames[0]!r}", "bad pubsub request from %r: %s", frames[0], exc)
            self._router.send_error(frames[0], frames[4], EINVAL, b"", b"pubsub",
                                    str(exc).encode(_TEXT, "replace"))

    def _respond(self, frames: Frames, *values: bytes) -> None:
        sender = frames[0]
        self._router.reply([sender, b"", VIP1, sender, frames[4], b"pubsub", *values])

    @staticmethod
    def _arg(frames: Frames, index: int, what: str) -> bytes:
        if len(frames) <= index:
            raise BadPubSubRequest(f"{what} is missing")
        return frames[index]

    # -- operations ----------------------------------------------------------------------------
    def _publish(self, frames: Frames) -> None:
        topic_frame = self._arg(frames, 7, "topic")
        payload = self._arg(frames, 8, "publish message")
        body = _json_object(payload, "publish message")
        bus = _bus(body.get("bus"))
        topic = topic_frame.decode(_TEXT)
        sender = frames[0]
        self._protected.refresh()
        if self._protected:
            required = self._protected.required(topic)
            if required is not None and not self._may_publish(sender, required):
                text = (f"to publish to topic {topic} requires capabilities {required}, "
                        f"which {sender.decode(_TEXT)} does not hold")
                _log.warning("refused publish: %s", text)
                self._router.reply([sender, b"", VIP1, sender, frames[4], b"error", PROTECTED_TOPIC_ERROR,
                                    text.encode(_TEXT, "replace"), b"", b"pubsub"])
                return
        self.published += 1
        subscribers = self.index.match(topic, bus)
        count = len(subscribers)
        if subscribers or self._forwarders:
            delivery = self._delivery(sender, payload, body)
            self._send_to(subscribers, sender, frames[4], topic_frame, delivery)
            for forward in self._forwarders:
                count += forward(sender, frames[4], topic, topic_frame, delivery, bus)
        self._respond(frames, b"request_response", str(count).encode("ascii"))

    def deliver(self, user: bytes, msg_id: bytes, topic_frame: bytes, delivery: bytes, bus: str = "") -> int:
        """Hand a publish that came from another platform to its ``all_platforms`` subscribers here.

        Returns how many got it. Subscribers of the ``internal`` bucket asked for this platform's
        publishes only, so they are skipped. ``delivery`` is the ``{"sender", "bus", "headers",
        "message"}`` JSON as it arrived. Nothing is forwarded again, so platforms linked in a ring
        never loop a message.
        """
        topic = topic_frame.decode(_TEXT)
        subscribers = {peer for peer in self.index.match(topic, bus)
                       if self.index.listing(peer, topic, bus, ALL_PLATFORMS, reverse=True)}
        self._send_to(subscribers, user, msg_id, topic_frame, delivery)
        return len(subscribers)

    def _send_to(self, subscribers: set, user: bytes, msg_id: bytes, topic_frame: bytes,
                 delivery: bytes) -> None:
        send = self._router.send
        tail = [b"", VIP1, user, msg_id, b"pubsub", b"publish", topic_frame, delivery]
        for subscriber in subscribers:
            try:
                send([subscriber, *tail])
            except PeerBusy:
                self.dropped[subscriber] += 1
                self._throttle.warning(f"slow:{subscriber!r}", "subscriber %r is not keeping up; %d "
                                       "publishes dropped so far", subscriber, self.dropped[subscriber])
                continue
            except PeerUnreachable:
                self._router.drop_peer(subscriber)
                continue
            self.delivered += 1

    def _delivery(self, sender: bytes, payload: bytes, body: dict[str, Any]) -> bytes:
        """The publisher's JSON with ``"sender"`` first, keeping the rest of its bytes as they were."""
        sender_json = self._sender_json.get(sender)
        if sender_json is None:
            if len(self._sender_json) >= _SENDER_CACHE_LIMIT:
                self._sender_json.clear()
            sender_json = self._sender_json[sender] = json.dumps(sender.decode(_TEXT)).encode("ascii")
        stripped = payload.lstrip()
        if body and "sender" not in body and stripped[:1] == b"{":
            return b'{"sender": ' + sender_json + b", " + stripped[1:].lstrip()
        # empty object or a forged "sender": rebuild it so ours is the one receivers see
        return encode({**body, "sender": sender.decode(_TEXT)}).encode("ascii")

    def may_publish(self, user: str, topic: str) -> bool:
        """Whether ``user`` may publish to ``topic`` under the protected topics.

        For publishes that did not come through :meth:`_publish`: a linked platform's, checked for
        its remote principal (:mod:`..external.service`).
        """
        self._protected.refresh()
        if not self._protected:
            return True
        required = self._protected.required(topic)
        return required is None or self._may_publish(user.encode(_TEXT), required)

    def _may_publish(self, sender: bytes, required: list[str]) -> bool:
        table = self._pushed_capabilities if self._pushed_capabilities is not None else self._capabilities()
        return is_allowed(required, table.get(sender.decode(_TEXT)))

    def _subscribe(self, frames: Frames) -> None:
        request = _json_object(self._arg(frames, 7, "subscription"), "subscription")
        prefixes = _prefixes(request.get("prefix"))
        assert prefixes is not None
        bus = _bus(request.get("bus"))
        assert bus is not None
        platform = ALL_PLATFORMS if request.get("all_platforms") else INTERNAL
        self.index.subscribe(frames[0], prefixes, bus, platform)
        self._respond(frames, b"request_response", b"true")
        self._subscriptions_changed(platform == ALL_PLATFORMS)

    def _unsubscribe(self, frames: Frames) -> None:
        request = _json_object(self._arg(frames, 7, "unsubscription"), "unsubscription")
        if INTERNAL not in request and ALL_PLATFORMS not in request:
            request = {INTERNAL: request}  # the bare {"prefix", "bus"} form
        for platform in (INTERNAL, ALL_PLATFORMS):
            spec = request.get(platform)
            if spec is None:
                continue
            if not isinstance(spec, dict):
                raise BadPubSubRequest(f"{platform} must be a JSON object")
            prefixes = _prefixes(spec.get("prefix"), allow_none=True)
            bus = _bus(spec.get("bus", ""), allow_none=True)
            self.index.unsubscribe(frames[0], prefixes, bus, platform)
        self._respond(frames, b"request_response", b"true")
        self._subscriptions_changed(ALL_PLATFORMS in request)

    def _list(self, frames: Frames) -> None:
        request = _json_object(self._arg(frames, 7, "list request"), "list request")
        prefix = request.get("prefix") or ""
        if not isinstance(prefix, str):
            raise BadPubSubRequest("prefix must be text")
        platform = ALL_PLATFORMS if request.get("all_platforms") else INTERNAL
        rows = self.index.listing(frames[0], prefix, _bus(request.get("bus", ""), allow_none=True), platform,
                                  subscribed=bool(request.get("subscribed", True)),
                                  reverse=bool(request.get("reverse", False)))
        self._respond(frames, b"list_response", json.dumps([list(r) for r in rows]).encode("ascii"))

    def _synchronize(self, frames: Frames) -> None:
        if self._arg(frames, 7, "synchronize state") != b"connected":
            return
        data = _json_object(self._arg(frames, 8, "subscriptions"), "subscriptions")
        items = data.get("subscriptions", data)
        if not isinstance(items, dict):
            raise BadPubSubRequest("subscriptions must be a JSON object")
        wanted: dict[str, dict[str, list[str]]] = {}
        for platform, buses in items.items():
            if platform not in (INTERNAL, ALL_PLATFORMS) or not isinstance(buses, dict):
                raise BadPubSubRequest("subscriptions must map 'internal'/'all' to {bus: [prefix, ...]}")
            wanted[platform] = {}
            for bus, prefixes in buses.items():
                found = _prefixes(prefixes)
                assert found is not None
                wanted[platform][bus] = found
        self.index.replace(frames[0], wanted)
        self._subscriptions_changed()

    def _auth_update(self, frames: Frames) -> None:
        if frames[0] != self._auth_identity:
            raise BadPubSubRequest("auth_update is accepted from the auth service only")
        data = _json_object(self._arg(frames, 7, "capabilities"), "capabilities")
        table = data.get("capabilities")
        if not isinstance(table, dict) or not all(isinstance(v, (dict, list)) for v in table.values()):
            raise BadPubSubRequest("capabilities must map user ids to capabilities")
        self._pushed_capabilities = {
            user: caps if isinstance(caps, dict) else dict.fromkeys(map(str, caps))
            for user, caps in table.items()
        }

    def _protected_update(self, frames: Frames) -> None:
        if frames[0] != self._auth_identity:
            raise BadPubSubRequest("protected_update is accepted from the auth service only")
        document = _json_object(self._arg(frames, 7, "protected topics"), "protected topics")
        try:
            self._protected.replace(document)
        except ValueError as exc:
            raise BadPubSubRequest(str(exc)) from None
