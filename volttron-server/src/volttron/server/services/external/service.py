"""Routing between linked ZeroMQ platforms, independent of the socket library.

See docs/protocol.md §2.5, §2.6, §3.6.

Each platform opens one link (a DEALER, :mod:`.zmq_links`) to every platform in its discovery file
and *sends* over it; what the other platforms send arrives on our own ROUTER socket from their links,
which introduce themselves with ``['routing_table', 'hello', 'hello', <their instance name>]``.
Only a peer that did so, under the identity form ``instance.<our name>.<n>`` and with a name listed
in our discovery file, may use the platform-to-platform operations below.

Pub/sub: whenever the set of this platform's ``all_platforms`` subscriptions changes, and whenever a
link (re)connects, the link gets ``['pubsub', 'external_list', {<our name>: [prefixes]}]``. A local
publish whose topic starts with a prefix another platform listed is sent there as ``['pubsub',
'external_publish', topic, {sender, bus, headers, message}]``, and that platform hands it to its
local subscribers of either bucket (never forwarding it again). ``external_list`` names no bus, so
only the default bus ``''`` crosses platforms.

RPC: an agent sends ``['external_rpc', 'send_platform', {to_platform, to_peer, args}]`` to the
router; we fill ``from_platform``/``from_peer`` and send ``['external_rpc', 'send_peer', ...]`` over
the link to ``to_platform``, whose router delivers it to ``to_peer``; the answer comes back the same
way. A platform we have no link to, or whose link is down, is refused at once with EHOSTUNREACH and a
text naming it; an agent missing on the far side is answered with JSON-RPC error -32006 so the
caller's result fails instead of waiting for its timeout.

On a RabbitMQ platform the brokers are linked instead (federation, shovel: docs/protocol.md §6.5) and
an :class:`ExternalRouting` gets a :class:`BrokerRoute`: ``send_platform`` for a platform with no
ZeroMQ link is published on the broker with routing key ``<to_platform>.<to_peer>`` as
``['external_rpc', 'send_peer', envelope]``; the federation or shovel that carries that key
delivers it straight to the agent's queue on the other instance, and the answer comes back the
same way. What the broker could not route comes back here (:meth:`ExternalRouting.undeliverable`):
the caller gets EHOSTUNREACH when no link carries the key, or -32006 from the far side when the
agent there is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from volttron.server.router.routing import EHOSTUNREACH, VIP1, Frames, PeerBusy, PeerUnreachable, VipRouter
from volttron.server.services.pubsub.index import ALL_PLATFORMS, INTERNAL, PubSubIndex
from volttron.server.services.pubsub.service import PubSubService
from volttron.utils.errors import VolttronError
from volttron.utils.identities import remote_principal
from volttron.utils.jsonrpc import UNAVAILABLE_AGENT, json_error
from volttron.utils.throttle import LogThrottle

_log = logging.getLogger(__name__)

EINVAL = 22
_TEXT = "iso-8859-1"


class LinkDown(VolttronError):
    """A message could not be sent over a platform link (not connected, or its queue is full)."""


class PlatformLink(Protocol):
    """What the routing needs of a link to one remote platform."""

    instance_name: str

    @property
    def connected(self) -> bool:
        """True once the link is up and has introduced itself."""

    def send(self, frames: Frames) -> None:
        """Send ``['', 'VIP1', user, msg_id, subsystem, args...]``; :class:`LinkDown` if it cannot."""

    def stop(self) -> None:
        """Close the link."""


class BrokerRoute(Protocol):
    """How a RabbitMQ platform sends an ``external_rpc`` message to another instance's agent."""

    def send_external(self, to_platform: str, to_peer: str, from_peer: str, user: bytes, msg_id: bytes,
                      body: bytes) -> None:
        """Publish ``['external_rpc', 'send_peer', body]`` with routing key ``<to_platform>.<to_peer>``;
        :class:`LinkDown` when the broker cannot take it now."""


class ExternalRouting:
    """This platform's side of multi-platform routing; see the module docstring."""

    def __init__(self, router: VipRouter, pubsub: PubSubService, instance_name: str,
                 throttle: LogThrottle | None = None, broker: BrokerRoute | None = None,
                 user_of: Callable[[bytes], str | None] | None = None) -> None:
        self._router = router
        self._user_of = user_of
        """The user id a peer's key authenticated as (None: authentication is off)."""
        self._broker = broker
        self._pubsub = pubsub
        self.instance_name = instance_name
        self._own = instance_name.encode(_TEXT)
        self._links: dict[str, PlatformLink] = {}
        self._platform_peers: dict[bytes, str] = {}
        """ROUTER identity of a remote platform's link -> its instance name (after its hello)."""
        self._remote = PubSubIndex()
        """What each remote platform subscribed to: peer = instance name, bus ''."""
        self._remote_source: dict[str, bytes] = {}
        self._sent: dict[str, list[str]] = {}
        self._throttle = throttle or LogThrottle(_log)
        self.forwarded = 0
        self.received = 0
        self.rpc_sent = 0
        self.rpc_refused = 0
        self.publishes_refused = 0

    # -- wiring --------------------------------------------------------------------------------
    def attach(self) -> None:
        """Serve ``routing_table``, ``external_rpc`` and the ``external_*`` pub/sub operations."""
        self._router.register_subsystem(b"routing_table", self._routing_table)
        self._router.register_subsystem(b"external_rpc", self._external_rpc)
        self._router.add_drop_listener(self._peer_dropped)
        self._pubsub.register_op(b"external_list", self._external_list)
        self._pubsub.register_op(b"external_publish", self._external_publish)

    def add_link(self, link: PlatformLink) -> None:
        """Route to ``link.instance_name`` over ``link``."""
        if not self._links:
            # only a platform with links can have remote subscribers: one without pays nothing per publish
            self._pubsub.add_forwarder(self._forward_publish)
            self._pubsub.add_subscription_listener(self._subscriptions_changed)
        self._links[link.instance_name] = link

    def link_connected(self, link: PlatformLink) -> None:
        """A link (re)connected: tell that platform what we subscribe to (it may have restarted)."""
        self._sent.pop(link.instance_name, None)
        self._send_list(link, self._own_prefixes())

    def stop(self) -> None:
        """Close every link."""
        for link in self._links.values():
            link.stop()
        self._links.clear()

    def statistics(self) -> dict[str, Any]:
        """Link states and message counts for status output."""
        return {"links": {name: link.connected for name, link in self._links.items()},
                "remote_platforms": sorted(set(self._platform_peers.values())),
                "forwarded": self.forwarded, "received": self.received,
                "publishes_refused": self.publishes_refused,
                "rpc_sent": self.rpc_sent, "rpc_refused": self.rpc_refused}

    def remote_prefixes(self, instance_name: str) -> list[str]:
        """The prefixes platform ``instance_name`` subscribed to here (for status and tests)."""
        return sorted(prefix for _bus, prefix, _in in self._remote.listing(instance_name, "", ""))

    # -- remote platforms introducing themselves ------------------------------------------------
    def _routing_table(self, frames: Frames) -> None:
        sender = frames[0]
        if len(frames) < 8 or frames[6] != b"hello":
            _log.debug("ignored routing_table %r from %r", frames[6:7], sender)
            return
        name = frames[-1].decode(_TEXT)
        if name not in self._links:
            self._throttle.warning(f"hello:{name}", "platform %r (peer %r) is not in the discovery file; "
                                   "its messages are ignored", name, sender)
            return
        if not sender.startswith(b"instance." + self._own + b"."):
            self._throttle.warning(f"hello:{sender!r}", "ignored a platform hello from %r: a link to %r "
                                   "is named instance.%s.<n>", sender, self.instance_name, self.instance_name)
            return
        user = self._user_of(sender) if self._user_of is not None else None
        if user is not None and user != name:
            # a platform's key is let in by an entry whose user id is its name (multi-platform.md);
            # any other key saying hello as that platform would speak for it
            self._router.malformed += 1
            self._throttle.warning(f"hello-user:{sender!r}", "ignored a hello as platform %r from %r: "
                                   "its key is user %r, not %r", name, sender, user, name)
            return
        if self._platform_peers.get(sender) != name:
            _log.info("platform %r linked to us as %r", name, sender)
        self._platform_peers[sender] = name

    def _platform_of(self, frames: Frames, what: str) -> str | None:
        name = self._platform_peers.get(frames[0])
        if name is None:
            self._router.malformed += 1
            self._throttle.warning(f"notplatform:{frames[0]!r}", "%s from %r refused: not a linked platform",
                                   what, frames[0])
        return name

    def _peer_dropped(self, identity: bytes) -> None:
        name = self._platform_peers.pop(identity, None)
        if name is not None and self._remote_source.get(name) == identity:
            # the platform went away: stop sending it publishes until its link says hello again
            del self._remote_source[name]
            self._remote.drop_peer(name)
            _log.info("platform %r unlinked (%r)", name, identity)

    # -- pub/sub ------------------------------------------------------------------------------
    def _own_prefixes(self) -> list[str]:
        rows = self._pubsub.index.listing(None, "", "", ALL_PLATFORMS, subscribed=False)
        return sorted({prefix for _bus, prefix, _member in rows})

    def _subscriptions_changed(self) -> None:
        prefixes = self._own_prefixes()
        for link in self._links.values():
            if link.connected and self._sent.get(link.instance_name) != prefixes:
                self._send_list(link, prefixes)

    def _send_list(self, link: PlatformLink, prefixes: list[str]) -> None:
        body = json.dumps({self.instance_name: prefixes}).encode(_TEXT)
        try:
            link.send([b"", VIP1, b"", b"", b"pubsub", b"external_list", body])
        except LinkDown as exc:
            _log.debug("subscriptions not sent to %r: %s", link.instance_name, exc)
            return  # sent again when the link connects
        self._sent[link.instance_name] = prefixes

    def _external_list(self, frames: Frames) -> None:
        name = self._platform_of(frames, "external_list")
        if name is None or len(frames) < 8:
            return
        try:
            body = json.loads(frames[7].decode(_TEXT))
            prefixes = body[name] if isinstance(body, dict) else None
        except (ValueError, KeyError):
            prefixes = None
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            self._throttle.warning(f"list:{name}", "bad external_list from platform %r", name)
            return
        self._remote.replace(name, {INTERNAL: {"": prefixes}})
        self._remote_source[name] = frames[0]
        _log.debug("platform %r subscribes to %r", name, prefixes)

    def _external_publish(self, frames: Frames) -> None:
        name = self._platform_of(frames, "external_publish")
        if name is None or len(frames) < 9:
            return
        topic = frames[7].decode(_TEXT)
        try:
            body = json.loads(frames[8].decode(_TEXT))
        except (ValueError, RecursionError):
            body = None
        why = linked_publish_refusal(body, topic, self._sent.get(name, ()))  # what we asked B for
        principal = remote_principal(name, body["sender"]) if why is None else ""
        if why is None and not self._pubsub.may_publish(principal, topic):
            why = f"{principal!r} may not publish to protected topic {topic!r}"
        if why is not None:
            self.publishes_refused += 1
            self._throttle.warning(f"pub:{name}", "publish from platform %r refused: %s", name, why)
            return
        # delivered as from B: the sender is B's agent as B's principal here, never one of ours
        delivery = json.dumps({"sender": principal, "bus": "", "headers": body.get("headers") or {},
                               "message": body.get("message")}).encode(_TEXT)
        self.received += 1
        self._pubsub.deliver(principal.encode(_TEXT), frames[4], frames[7], delivery, "")

    def _forward_publish(self, sender: bytes, msg_id: bytes, topic: str, topic_frame: bytes,
                         delivery: bytes, bus: str) -> int:
        if not self._remote_source:
            return 0
        count = 0
        for name in self._remote.match(topic, bus):
            link = self._links.get(cast(str, name))  # this index's peers are platform names
            if link is None:
                continue
            try:
                link.send([b"", VIP1, sender, msg_id, b"pubsub", b"external_publish", topic_frame, delivery])
            except LinkDown as exc:
                self._throttle.warning(f"fwd:{name}", "publish not forwarded to platform %r: %s", name, exc)
                continue
            count += 1
        self.forwarded += count
        return count

    # -- RPC ----------------------------------------------------------------------------------
    def _external_rpc(self, frames: Frames) -> None:
        op = frames[6] if len(frames) > 6 else b""
        try:
            envelope = json.loads(frames[7].decode(_TEXT)) if len(frames) > 7 else None
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("args"), list):
            self._refuse(frames, EINVAL, b"", "external_rpc needs a JSON object with 'args'")
            return
        if op == b"send_platform":
            if frames[0] in self._platform_peers:  # platforms send send_peer; this one is confused
                self._refuse(frames, EINVAL, b"", "send_platform from a linked platform")
            else:
                self._send_platform(frames, envelope)
        elif op == b"send_peer":
            name = self._platform_of(frames, "external_rpc send_peer")
            if name is not None:
                self._send_peer(frames, envelope, name)
        else:
            self._refuse(frames, EINVAL, b"", f"unknown external_rpc operation {op[:40].decode(_TEXT)!r}")

    def _refuse(self, frames: Frames, errnum: int, recipient: bytes, text: str) -> None:
        self.rpc_refused += 1
        if frames[0] in self._platform_peers:
            self._throttle.warning(f"rpc:{frames[0]!r}", "external_rpc from platform peer %r: %s",
                                   frames[0], text)
            return
        self._router.send_error(frames[0], frames[4], errnum, recipient, b"external_rpc", text.encode(_TEXT))

    def _send_platform(self, frames: Frames, envelope: dict[str, Any]) -> None:
        sender = frames[0]
        to_platform, to_peer = envelope.get("to_platform"), envelope.get("to_peer")
        if not isinstance(to_platform, str) or not isinstance(to_peer, str):
            self._refuse(frames, EINVAL, b"", "external_rpc needs to_platform and to_peer")
            return
        envelope["from_platform"] = self.instance_name
        envelope["from_peer"] = sender.decode(_TEXT)
        body = json.dumps(envelope).encode(_TEXT)
        if to_platform == self.instance_name:
            self._deliver(self.instance_name, to_peer, sender, frames[4], body, envelope)
            return
        link = self._links.get(to_platform)
        if link is None and self._broker is not None:
            try:
                self._broker.send_external(to_platform, to_peer, envelope["from_peer"], frames[3], frames[4],
                                           body)
            except LinkDown as exc:
                self._refuse(frames, EHOSTUNREACH, to_peer.encode(_TEXT),
                             f"platform {to_platform!r} cannot be reached through the broker now ({exc})")
                return
            self.rpc_sent += 1
            return
        if link is None:
            self._refuse(frames, EHOSTUNREACH, to_peer.encode(_TEXT),
                         f"no link to platform {to_platform!r} (not in external_platform_discovery.json)")
            return
        try:
            link.send([b"", VIP1, sender, frames[4], b"external_rpc", b"send_peer", body])
        except LinkDown as exc:
            self._refuse(frames, EHOSTUNREACH, to_peer.encode(_TEXT),
                         f"platform {to_platform!r} is not connected ({exc})")
            return
        self.rpc_sent += 1

    def _send_peer(self, frames: Frames, envelope: dict[str, Any], name: str) -> None:
        to_peer, from_peer = envelope.get("to_peer"), envelope.get("from_peer")
        if not isinstance(to_peer, str) or not isinstance(from_peer, str) or not from_peer:
            self._refuse(frames, EINVAL, b"", "send_peer needs to_peer and from_peer")
            return
        # The platform is the link's, whatever the envelope says: answers go back over that link
        # only (no reflection to a third platform), and the caller is that platform's principal,
        # in the user frame our agents check capabilities against.
        envelope["from_platform"] = name
        envelope["to_platform"] = self.instance_name
        body = json.dumps(envelope).encode(_TEXT)
        user = remote_principal(name, from_peer).encode(_TEXT)
        self._deliver(name, to_peer, user, frames[4], body, envelope)

    def _deliver(self, from_platform: str, to_peer: str, user: bytes, msg_id: bytes, body: bytes,
                 envelope: dict[str, Any]) -> None:
        try:
            self._router.send([to_peer.encode(_TEXT), b"", VIP1, user, msg_id, b"external_rpc", b"send_peer",
                               body])
            return
        except PeerUnreachable:
            why = f"agent {to_peer!r} is not connected to platform {self.instance_name!r}"
        except PeerBusy:
            why = f"agent {to_peer!r} on platform {self.instance_name!r} is not keeping up"
        answers = _unavailable_answers(envelope["args"], why)
        if not answers:
            return
        reply = {"to_platform": from_platform, "to_peer": envelope.get("from_peer"),
                 "from_platform": self.instance_name, "from_peer": to_peer, "args": answers}
        frames = [b"", VIP1, b"", msg_id, b"external_rpc", b"send_peer", json.dumps(reply).encode(_TEXT)]
        if from_platform == self.instance_name:
            frames.insert(0, str(envelope.get("from_peer")).encode(_TEXT))
            self._router.reply(frames)
            return
        link = self._links.get(from_platform)
        try:
            if link is None:
                raise LinkDown(f"no link to platform {from_platform!r}")
            link.send(frames)
        except LinkDown as exc:
            _log.info("could not tell platform %r that %s: %s", from_platform, why, exc)

    def undeliverable(self, msg_id: bytes, body: bytes, ours: bool) -> None:
        """The broker could not route an ``external_rpc`` message (RabbitMQ platforms).

        ``ours``: we published it (no federation or shovel carries its routing key): its sender
        gets EHOSTUNREACH. Otherwise another instance's message for an agent missing here: it gets
        the -32006 answers, as over ZeroMQ.
        """
        try:
            envelope = json.loads(body.decode(_TEXT))
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("args"), list):
            return
        to_platform, to_peer = str(envelope.get("to_platform")), str(envelope.get("to_peer"))
        if ours:
            from_peer = envelope.get("from_peer")
            if not isinstance(from_peer, str) or not from_peer:
                return
            self.rpc_refused += 1
            if any(_is_request(item) for item in envelope["args"]):
                text = (f"no federation or shovel carries messages for {to_peer!r} to platform "
                        f"{to_platform!r} (none is set up for it; or, with federation, {to_peer!r} is not "
                        "connected there)")
                self._router.send_error(from_peer.encode(_TEXT), msg_id, EHOSTUNREACH, to_peer.encode(_TEXT),
                                        b"external_rpc", text.encode(_TEXT))
            return
        if to_platform != self.instance_name or not isinstance(envelope.get("from_platform"), str):
            return
        why = f"agent {to_peer!r} is not connected to platform {self.instance_name!r}"
        self._reply_unavailable(envelope, to_peer, msg_id, why)

    def _reply_unavailable(self, envelope: dict[str, Any], to_peer: str, msg_id: bytes, why: str) -> None:
        answers = _unavailable_answers(envelope["args"], why)
        if not answers or self._broker is None:
            return
        from_platform, from_peer = str(envelope["from_platform"]), str(envelope.get("from_peer"))
        reply = {"to_platform": from_platform, "to_peer": from_peer, "from_platform": self.instance_name,
                 "from_peer": to_peer, "args": answers}
        try:
            self._broker.send_external(from_platform, from_peer, to_peer, b"", msg_id,
                                       json.dumps(reply).encode(_TEXT))
        except LinkDown as exc:
            _log.info("could not tell platform %r that %s: %s", from_platform, why, exc)


def linked_publish_refusal(body: Any, topic: str, prefixes: Iterable[str]) -> str | None:
    """Why a linked platform's publish of ``topic`` is refused here, or None to deliver it.

    Only what this platform subscribed to there (``prefixes``), only on the default bus, with a
    JSON object naming its sender and, when given, headers that are an object.
    """
    if not isinstance(body, dict) or not isinstance(body.get("sender"), str) or not body["sender"]:
        return "not a JSON object with a sender"
    if body.get("bus") not in (None, ""):
        return f"bus {str(body.get('bus'))[:40]!r}: only the default bus crosses platforms"
    if not isinstance(body.get("headers") or {}, dict):
        return "headers must be a JSON object"
    if not any(topic.startswith(prefix) for prefix in prefixes):
        return f"topic {topic[:80]!r} is not one this platform subscribed to"
    return None


def _is_request(text: Any) -> bool:
    """Whether an ``args`` item of an envelope holds a request (not only answers)."""
    try:
        obj = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return False
    items = obj if isinstance(obj, list) else [obj]
    return any(isinstance(item, dict) and "method" in item for item in items)


def _unavailable_answers(requests: Iterable[Any], why: str) -> list[str]:
    """JSON-RPC -32006 answers to every request (with an id) in ``requests`` (texts or objects)."""
    answers = []
    for text in requests:
        try:
            obj = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            continue
        items = obj if isinstance(obj, list) else [obj]
        errors = [json_error(item["id"], UNAVAILABLE_AGENT, "unavailable agent", detail=why)
                  for item in items
                  if isinstance(item, dict) and "method" in item and item.get("id") is not None]
        if errors:
            answers.append(json.dumps(errors if isinstance(obj, list) else errors[0]))
    return answers
