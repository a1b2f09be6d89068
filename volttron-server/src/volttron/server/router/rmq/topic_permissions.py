"""Protected topics held by the broker: topic permissions of agents' broker users.

See docs/protocol.md §2.6, §6.3.

On ZeroMQ the pub/sub service refuses a publish to a protected topic (``protected_topics.json``)
from a peer lacking a capability the topic needs. RabbitMQ agents publish straight to the
``volttron`` topic exchange with routing key ``__pubsub__.<instance>.<topic words>.#``, so there
the broker refuses it: every agent's user gets, on exchange ``volttron``, a *write* pattern (the
routing keys it may publish with) that refuses the keys of the protected topics whose capabilities
it lacks and allows everything else, its VIP messages ``<instance>.<peer>`` too::

    ^(?:(?!__pubsub__\\.)|__pubsub__\\.(?!(?:<instance>|[^.]+)\\.(?:<refused>|...)<within>)[\\s\\S]*\\.#$)

The instance word may be any, so an agent cannot publish another instance's key either; a pub/sub
key must end with ``.#`` as every publisher's does, and ``<within>`` keeps a refused pattern from
matching into that ``.#`` (``alerts/`` must not refuse the topic ``alerts``). Its *read*
pattern (the keys it may bind its queues with) is its own routing key and pub/sub keys only::

    ^(?:<instance>\\.<identity>|__pubsub__\\.[\\s\\S]*)$

so an agent cannot bind another agent's (or a platform service's) routing key, nor ``#``, and never
sees their RPC calls and replies: as on ZeroMQ, it receives what is addressed to it and what it
subscribes to. Every agent gets these permissions (with nothing to refuse, the write pattern is
``.*``); protected topics limit publishing only.

How entries become key patterns, mirroring the pub/sub service's look-up (exact topic, then the
longest literal prefix, then the first ``/regex/`` matching the topic's start):

* a literal entry refuses the keys whose topic words *start with* its words (a string prefix, as
  on ZeroMQ: ``devices/secure`` also covers ``devices/secure2/x``), except where a longer literal
  entry the agent may publish to takes over (``devices(?!\\.secure)``);
* a ``/regex/`` entry is translated into the key form: ``/`` (also ``\\/``) becomes ``\\.`` (also in
  character classes, so ``[^/]+`` is one topic level), ``^`` and ``\\A`` are dropped (an entry is
  matched at the topic's start anyway), ``$`` and ``\\Z`` become the end of the topic words. It
  refuses the keys it matches that no literal entry governs and that no earlier regex entry the
  agent may use matches (PCRE lookaheads, which the broker's Erlang ``re`` supports).

Limits (the broker sees routing keys, not topics):

* ``/`` and ``.`` are the same in a key: an entry protecting ``devices/secure`` also refuses the
  topic ``devices.secure``, and an allowed longer literal entry ``a/b`` under a refused ``a`` also
  lets ``a.b`` through;
* the broker's regular expressions are PCRE on bytes: a ``.`` or a character class meets a
  non-ASCII character as its UTF-8 bytes; Python-only syntax (``(?x)`` comments, ...) and
  ``{username}``/``{vhost}`` (which the broker expands) do not belong in a ``/regex/`` entry;
* the broker caches a channel's allowed keys: a connection that published on a key keeps it until
  it reconnects, so :class:`~.users.BrokerUsers` closes the connections of a user whose
  permissions it tightens (the agent links again by itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from volttron.client.messagebus.rmq_permissions import TopicPermissions
from volttron.client.messagebus.rmq_wire import PUBSUB_KEY, fq_identity
from volttron.server.services.pubsub.protected import is_allowed

ANY_KEY = ".*"
END_OF_TOPIC = r"(?=\.#$)"
"""Where a key's topic words end: before the ``.#`` every publish key ends with."""
WITHIN_TOPIC = r"(?=[\s\S]*\.#$)"
"""After a topic pattern's match: it did not reach into the ``.#`` (``alerts/`` does not cover ``alerts``)."""


def literal_key_pattern(topic: str) -> str:
    """``topic`` (a literal entry, or a piece of one) as a pattern over topic words."""
    return re.escape(topic).replace("/", r"\.")


def regex_key_pattern(regex: str) -> str:
    """A ``/regex/`` entry's pattern over topics as a pattern over topic words (see the module docstring)."""
    out: list[str] = []
    i, n = 0, len(regex)
    class_start = -1  # index of the '[' of the character class we are in, -1 outside
    while i < n:
        c = regex[i]
        if c == "\\" and i + 1 < n:
            nxt = regex[i + 1]
            if nxt == "/":
                out.append(r"\.")
            elif class_start < 0 and nxt == "Z":
                out.append(END_OF_TOPIC)
            elif class_start >= 0 or nxt != "A":
                out.append(c + nxt)
            i += 2
            continue
        if class_start >= 0:
            # ']' right after '[' or '[^' is a literal bracket
            opening = i == class_start + 1 or (i == class_start + 2 and regex[class_start + 1] == "^")
            if c == "]" and not opening:
                class_start = -1
            out.append(r"\." if c == "/" else c)
        elif c == "[":
            class_start = i
            out.append(c)
        elif c == "/":
            out.append(r"\.")
        elif c == "$":
            out.append(END_OF_TOPIC)
        elif c != "^":
            out.append(c)
        i += 1
    return "".join(out)


def refused_patterns(literal: Mapping[str, Sequence[str]], regexes: Sequence[tuple[str, Sequence[str]]],
                     capabilities: Mapping[str, Any] | None) -> list[str]:
    """Patterns over topic words of what a holder of ``capabilities`` may not publish to.

    ``literal`` and ``regexes`` are :meth:`ProtectedTopics.entries
    <volttron.server.services.pubsub.protected.ProtectedTopics.entries>`.
    """
    allowed = sorted(topic for topic, caps in literal.items() if is_allowed(caps, capabilities))
    refused: list[str] = []
    for topic in sorted(literal):
        if topic in allowed:
            continue
        pattern = literal_key_pattern(topic)
        longer = [literal_key_pattern(t[len(topic):]) for t in allowed if t.startswith(topic) and t != topic]
        refused.append(f"{pattern}(?!{_within(longer)})" if longer else pattern)
    guards = [f"(?!{_within(literal_key_pattern(t) for t in sorted(literal))})"] if literal else []
    for source, caps in regexes:
        translated = regex_key_pattern(source)
        if is_allowed(caps, capabilities):
            guards.append(f"(?!{_within([translated])})")
        else:
            refused.append(f"{''.join(guards)}(?:{translated})")
    return refused


def _within(alternatives: Iterable[str]) -> str:
    return f"(?:{'|'.join(alternatives)}){WITHIN_TOPIC}"


def write_pattern(instance: str, refused: Iterable[str]) -> str | None:
    """The routing keys allowed on the ``volttron`` exchange, or None when nothing is refused.

    A pub/sub key must end with ``.#`` (as every publisher's does), and its topic words must not
    start with a refused pattern; other keys are not limited.
    """
    alternatives = list(refused)
    if not alternatives:
        return None
    where = f"(?:{re.escape(instance)}|[^.]+)" if instance else "[^.]+"
    pubsub = re.escape(PUBSUB_KEY)
    return rf"^(?:(?!{pubsub}\.)|{pubsub}\.(?!{where}\.{_within(alternatives)})[\s\S]*\.#$)"


def read_pattern(instance: str, identity: str) -> str:
    """The binding keys an agent may use on ``volttron``: its own routing key and pub/sub keys."""
    return rf"^(?:{re.escape(fq_identity(instance, identity))}|{re.escape(PUBSUB_KEY)}\.[\s\S]*)$"


def agent_topic_permissions(instance: str, literal: Mapping[str, Sequence[str]],
                            regexes: Sequence[tuple[str, Sequence[str]]],
                            capabilities: Mapping[str, Any] | None, identity: str) -> TopicPermissions | None:
    """The topic permissions of agent ``identity`` holding ``capabilities`` (None: none to set, which
    the broker reads as no restriction at all)."""
    write = write_pattern(instance, refused_patterns(literal, regexes, capabilities))
    return TopicPermissions(write=write or ANY_KEY, read=read_pattern(instance, identity))
