"""What agents and links may do on the broker, and what bounds their queues (docs/protocol.md §6.1, §6.5).

* :class:`Permissions` (vhost: configure/write/read) and :class:`TopicPermissions` (routing keys on
  a topic exchange) as the broker holds them; :func:`agent_permissions` is an agent user's;
* :data:`AGENT_LIMITS` (per user) and :func:`queue_limit_policies` (per queue of an instance);
* the queues the platform declares for its agents (:func:`agent_queue_names`): an agent's user may
  declare nothing, so its client asks the platform's router for them with a :data:`QUEUE_REQUEST`
  message and waits until they exist (:func:`requested_queues` is what the router grants).

Pure data and regular expressions: the requests to the broker are :mod:`~.rmq_admin`'s.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from volttron.client.messagebus.rmq_wire import EXCHANGE

if TYPE_CHECKING:
    from volttron.client.messagebus.rmq_admin import BrokerAdmin

NOTHING = "^$"
"""A permission pattern that allows no resource (the broker reads ``^$`` as none)."""


@dataclass(frozen=True)
class Permissions:
    """A user's regular expressions on one vhost."""

    configure: str
    write: str
    read: str


def agent_queue_names(user: str) -> tuple[str, str]:
    """An agent's two queues, which the platform declares for it: its VIP queue and its pub/sub queue."""
    return user, f"{user}.pubsub"


def agent_permissions(user: str) -> Permissions:
    """What an agent's user may do (docs/protocol.md §6.1, anchored): use its two queues and ``volttron``.

    It may *configure* nothing (:data:`NOTHING`): configure permission cannot tell an exchange from
    a queue of the same name, so an agent allowed to declare its queues could declare an exchange of
    such a name, bind it to ``volttron`` as a source (write on ``volttron``, read on its own name)
    and publish through it past the topic permissions, which hold on ``volttron`` only. The
    platform declares an agent's queues for it instead (:data:`QUEUE_REQUEST`). Nothing on
    ``amq.*`` or the default exchange (``amq.default``) either: no ``amq.topic`` bound to
    ``volttron``, no server-named queues (an agent holds at most its two queues, so it cannot fill
    the broker with queues).
    """
    queues = "|".join(re.escape(name) for name in agent_queue_names(user))
    exchange_or_queues = f"^({EXCHANGE}|{queues})$"
    return Permissions(configure=NOTHING, write=exchange_or_queues, read=exchange_or_queues)


AGENT_LIMITS = {"max-connections": 4, "max-channels": 64}
"""Per agent user, broker-wide: an agent uses one connection of three channels (more while relinking)."""
QUEUE_LIMITS = {"max-length": 10_000, "max-length-bytes": 16 * 1024 * 1024, "expires": 60_000}
"""Per queue of an instance: what one queue may hold, and how long it lives unused (ms)."""
QUEUE_POLICY = "volttron-queue-limits"
PUBSUB_POLICY = "volttron-pubsub-limits"


def queue_limit_policies(instance: str) -> dict[str, tuple[str, dict[str, Any], int]]:
    """Policy name -> (pattern, definition, priority) bounding every queue named ``<instance>.…``.

    VIP queues refuse what would overflow them (``reject-publish``: the sender's publish is refused
    and it gets EAGAIN, as from a full ZeroMQ peer); pub/sub queues drop their oldest publications
    (``drop-head``: a slow subscriber loses old news, the publisher is not held up).
    """
    own = f"^{re.escape(instance)}\\."
    return {QUEUE_POLICY: (own, {**QUEUE_LIMITS, "overflow": "reject-publish"}, 0),
            PUBSUB_POLICY: (f"{own}.*\\.pubsub$", {**QUEUE_LIMITS, "overflow": "drop-head"}, 1)}


def apply_queue_limits(admin: BrokerAdmin, vhost: str, instance: str) -> None:
    """Set the policies of :func:`queue_limit_policies` on ``vhost`` (only those that differ)."""
    current = admin.policies(vhost)
    for name, (pattern, definition, priority) in queue_limit_policies(instance).items():
        have = current.get(name) or {}
        wanted = (pattern, definition, "queues")
        if (have.get("pattern"), have.get("definition"), have.get("apply-to")) != wanted:
            admin.set_policy(vhost, name, pattern, definition, apply_to="queues", priority=priority)


ADMIN_PERMISSIONS = Permissions(".*", ".*", ".*")


@dataclass(frozen=True)
class TopicPermissions:
    """Regular expressions over the routing keys a user may publish with (write) and bind to (read)."""

    write: str
    read: str


QUEUE_REQUEST = "volttron.queues"
"""AMQP ``type`` of an agent's request to the router (``<instance>.router``): declare my queues.

Its body is a JSON list of queue names; the router declares those :func:`requested_queues` grants
(the sender is the broker-checked ``user_id``) with :func:`agent_queue_arguments`, and binds the VIP
queue to ``volttron`` with its own name. Nothing is answered: the agent has no queue to hear it in,
so it polls with passive declarations (which need no permission).
"""
MAX_QUEUE_REQUEST = 1024
"""Longest request body the router reads (bytes)."""


def agent_queue_arguments() -> dict[str, Any]:
    """How an agent's queue is declared: non-exclusive (the router asks whether it exists), deleted
    when its consumer goes (so a message for a gone peer is undeliverable, EHOSTUNREACH), or after
    :data:`QUEUE_LIMITS` ``expires`` if nobody consumes it; the agent consumes it exclusively."""
    return {"exclusive": False, "auto_delete": True, "durable": False,
            "arguments": {"x-expires": QUEUE_LIMITS["expires"]}}


def queue_request_body(names: list[str]) -> bytes:
    """The body of a :data:`QUEUE_REQUEST` for ``names``."""
    return json.dumps(names).encode("utf-8")


def requested_queues(instance: str, user: str, body: bytes) -> list[tuple[str, bool]]:
    """(queue, is its VIP queue) for each queue of a :data:`QUEUE_REQUEST` by broker user ``user``
    that the platform declares: the agent queues of a user ``<instance>.<identity>``, nothing else."""
    if not user.startswith(f"{instance}.") or len(body) > MAX_QUEUE_REQUEST:
        return []
    try:
        names = json.loads(body)
    except ValueError:
        return []
    if not isinstance(names, list):
        return []
    own = agent_queue_names(user)
    return [(name, name == own[0]) for name in own if name in names]
