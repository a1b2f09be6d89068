"""VIP messages as AMQP messages on the ``volttron`` topic exchange (docs/protocol.md §6.3).

Every VIP endpoint has a queue ``<instance>.<identity>`` bound with the same routing key; the
router's is ``<instance>.router`` (peer ``""``). A VIP message becomes one AMQP publish:

===============  ==========================================================================
routing key      ``<instance>.<peer>`` (``<instance>.router`` for the router)
body             JSON list of the argument frames, each as Latin-1 text (byte exact)
``app_id``       ``<instance>.<sender identity>``
``user_id``      the sender's broker user name, which the broker checks
``headers``      ``{"recipient": <routing key>, "proto": "VIP", "user": <user id>}``
``message_id``   the VIP message id;  ``type``: the subsystem
===============  ==========================================================================

Who sent a message is decided from ``user_id``, the one property the broker vouches for: an
agent's user ``<instance>.<identity>`` makes ``peer`` and ``user`` that identity; a platform user
(``<instance>-admin``, or our own user) is trusted to name the peer and user it speaks for, as the
ZeroMQ router is. Messages from a user of another instance keep that full name as their user id.

Another instance's messages arrive through a federation link (header ``x-received-from``; the
link keeps the user id the upstream broker checked, ``trust-user-id``) or a shovel (header
``x-shovelled``; the user id is the shovel's login on our broker, which our broker checked). Such a
message may not claim one of our own users - ``<instance>-...`` or ``<instance>.<identity>`` - and is
dropped if it does: an upstream's word is taken for its own users only. Nor may its ``app_id``
(which no broker checks) name one of our peers or our router: a message from another instance's
user comes from ``<other instance>.<identity>`` (the full name is its peer, as over a ZeroMQ link),
and one whose ``app_id`` says ``<instance>.<peer>`` of ours, or names no instance, is dropped. A
message nobody vouches for (no user id, e.g. a federation link without ``trust-user-id``) is dropped
too.

Pub/sub goes through the broker: a publish on ``devices/a/b`` uses routing key
``__pubsub__.<instance>.devices.a.b.#`` (the literal ``.#`` of the original), a subscription to
``devices/a`` binds ``__pubsub__.<instance>.devices.a.#`` (``*`` for the instance with
``all_platforms``), so prefixes match whole topic words (``devices/ca`` does not match
``devices/campus``, unlike on ZeroMQ). The exact topic and bus travel in the headers.

Nothing here imports pika: these are plain functions of text and bytes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from volttron.utils.frames import TEXT_ENCODING

EXCHANGE = "volttron"
ALTERNATE_EXCHANGE = "undeliverable"
ROUTER = "router"
PUBSUB_KEY = "__pubsub__"
PROTOCOL = "VIP"
PUBSUB_TYPE = "pubsub"
CONTENT_TYPE = "application/json"
LINK_HEADERS = ("x-received-from", "x-shovelled")
"""Headers the federation and shovel plugins add to what they deliver."""


def fq_identity(instance: str, identity: str) -> str:
    """``<instance>.<identity>``: queue name, routing key and broker user of a peer."""
    return f"{instance}.{identity}"


def admin_user(instance: str) -> str:
    """The platform's broker user, ``<instance>-admin`` (docs/protocol.md §6.1)."""
    return f"{instance}-admin"


def peer_routing_key(instance: str, peer: str) -> str:
    """Routing key of a VIP message for ``peer`` (``""`` is the router)."""
    return fq_identity(instance, peer or ROUTER)


def encode_args(args: Sequence[bytes | str]) -> bytes:
    """The AMQP body of a VIP message: its frames as a JSON list of Latin-1 strings.

    A text argument is taken as the frame it encodes to in Latin-1, as on ZeroMQ (a character beyond
    Latin-1 raises ``UnicodeEncodeError``).
    """
    return json.dumps([_frame_text(a) for a in args], ensure_ascii=False).encode("utf-8")


def _frame_text(arg: bytes | str) -> str:
    if isinstance(arg, str):
        arg.encode(TEXT_ENCODING)
        return arg
    return bytes(arg).decode(TEXT_ENCODING)


def decode_args(body: bytes) -> list[bytes]:
    """The frames of an AMQP body; ValueError when it is not a JSON list.

    Strings become Latin-1 frames (characters beyond Latin-1, which our own peers never send,
    become UTF-8); other JSON values (what the original's agents put there) become JSON text.
    """
    value = json.loads(body.decode("utf-8"))
    if not isinstance(value, list):
        raise ValueError("the body of a VIP message must be a JSON list")
    frames = []
    for item in value:
        if isinstance(item, str):
            try:
                frames.append(item.encode(TEXT_ENCODING))
            except UnicodeEncodeError:
                frames.append(item.encode("utf-8"))
        elif item is None:
            frames.append(b"")
        else:
            frames.append(json.dumps(item).encode("ascii"))
    return frames


def message_headers(routing_key: str, user: str) -> dict[str, str]:
    """The ``headers`` property of a VIP message."""
    return {"recipient": routing_key, "proto": PROTOCOL, "user": user}


@dataclass(frozen=True)
class Origin:
    """Who sent a message, as far as the broker's ``user_id`` check allows us to say."""

    peer: str
    user: str


def message_origin(
    instance: str,
    app_id: str | None,
    user_id: str | None,
    headers: Mapping[str, Any] | None,
    trusted_users: frozenset[str],
) -> Origin | None:
    """The sending peer and user id of a received message, or None when it claims to be someone else.

    See the module docstring for the rules.
    """
    app_id = app_id or ""
    local_prefix = f"{instance}."
    claimed = app_id[len(local_prefix):] if app_id.startswith(local_prefix) else app_id
    peer = "" if claimed == ROUTER else claimed
    if headers and any(key in headers for key in LINK_HEADERS) and user_id and (
            user_id in trusted_users or user_id.startswith((local_prefix, f"{instance}-"))):
        return None  # a linked broker speaking for one of our users
    if user_id and user_id in trusted_users:
        header_user = (headers or {}).get("user")
        return Origin(peer, header_user if isinstance(header_user, str) else peer)
    if user_id and user_id.startswith(local_prefix):
        identity = user_id[len(local_prefix):]
        if identity != claimed or identity == ROUTER:
            return None  # an agent speaking for another identity (or for the router)
        return Origin(identity, identity)
    if not user_id:
        return None  # nobody vouches for it
    if not speaks_for_its_own_platform(instance, app_id):
        return None  # another instance's user (a link) speaking for one of our peers, or for our router
    return Origin(app_id, user_id)


def speaks_for_its_own_platform(instance: str, app_id: str) -> bool:
    """Whether a message from another instance's user names a peer of another platform
    (``<other instance>.<identity>``) as its sender, not one of ours (``<instance>.<peer>``) nor a
    bare name (which would be taken for one of ours, ``router`` for our router)."""
    return "." in app_id and not app_id.startswith(f"{instance}.")


# -- pub/sub -------------------------------------------------------------------------------------

def topic_words(topic: str) -> str:
    """The dotted form of a ``/``-separated topic."""
    return topic.replace("/", ".")


def publish_routing_key(instance: str, topic: str) -> str:
    """``__pubsub__.<instance>.<topic words>.#`` - the key a publish on ``topic`` goes out with."""
    return f"{PUBSUB_KEY}.{instance}.{topic_words(topic)}.#"


def binding_key(instance: str, prefix: str, all_platforms: bool = False) -> str:
    """The binding that receives publishes on ``prefix`` and the topics below it."""
    where = "*" if all_platforms else instance
    words = topic_words(prefix.rstrip("/"))
    return f"{PUBSUB_KEY}.{where}.{words}.#" if words else f"{PUBSUB_KEY}.{where}.#"


def topic_from_routing_key(routing_key: str) -> str:
    """The topic of a publish whose headers do not carry it: the words between instance and ``#``."""
    words = routing_key.split(".")
    if len(words) < 3 or words[0] != PUBSUB_KEY:
        return ""
    inner = words[2:-1] if words[-1] == "#" else words[2:]
    return "/".join(inner)


def prefix_matches(prefix: str, topic: str) -> bool:
    """Word-based prefix match, as the broker's bindings do it (``''`` matches every topic)."""
    if not prefix:
        return True
    if prefix.endswith("/"):
        return topic.startswith(prefix)
    return topic == prefix or topic.startswith(prefix + "/")


def with_sender(body: bytes, sender: str) -> bytes:
    """The publish body with ``"sender"`` set to ``sender`` (the publisher cannot choose it).

    The common case is spliced into the bytes; a body that already names a sender is re-encoded.
    """
    stripped = body.strip()
    if b'"sender"' not in stripped and stripped.startswith(b"{"):
        rest = stripped[1:].lstrip()
        return _sender_head(sender) + (b"}" if rest == b"}" else b", " + rest)
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError:
        return body
    if not isinstance(value, dict):
        return body
    value["sender"] = sender
    return json.dumps(value).encode("ascii")


@functools.lru_cache(maxsize=256)
def _sender_head(sender: str) -> bytes:
    """``{"sender": <sender>`` (a subscriber hears from few senders, each many times)."""
    return b'{"sender": ' + json.dumps(sender).encode("ascii")
