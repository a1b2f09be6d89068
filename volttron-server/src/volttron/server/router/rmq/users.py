"""One broker user per agent, kept in step with ``auth.json`` (docs/protocol.md §6.1, §6.2).

Every enabled allow entry of ``auth.json`` that names an ``identity`` and one CURVE key gets the
broker user ``<instance>.<identity>`` on the platform's vhost, with the anchored permissions of
:func:`~volttron.client.messagebus.rmq_permissions.agent_permissions`, tagged ``volttron-agent``:

* plain logins: the password both sides derive from the CURVE keys
  (:mod:`~volttron.client.messagebus.rmq_credentials`), so an agent the AIP installed, or one run
  by hand with its key store, logs in without anyone handing it a password;
* TLS: no password, and a client certificate ``<instance>.<identity>`` signed by the instance's
  CA (EXTERNAL authentication maps its common name to the user).

Each user also gets the topic permissions of :mod:`~.topic_permissions` on the ``volttron``
exchange: it binds only its own routing key and pub/sub keys (it never reads another agent's
messages), and the broker refuses its publishes to the protected topics (``protected_topics.json``)
whose capabilities its ``auth.json`` entry lacks, as the pub/sub service does on ZeroMQ. A new user
gets them before it may use the vhost; when the permissions of an existing user change its
connections are closed (the broker caches allowed keys per channel) and the agent links again by
itself. Each user has the connection and channel limits of
:data:`~volttron.client.messagebus.rmq_permissions.AGENT_LIMITS`, and at start the instance's queues get
the length, size and idle-expiry policies of :func:`~volttron.client.messagebus.rmq_permissions.
queue_limit_policies`.

Other instances' link users on this vhost (tagged ``volttron-link`` by ``vcfg rabbitmq link-user``)
get the topic permissions of an agent of their platform holding no capability
(:func:`~volttron.client.messagebus.rmq_links.link_topic_permissions` with this platform's
protected topics); they are looked at every :attr:`BrokerUsers.RESYNC_INTERVAL` seconds.

Users of this instance tagged ``volttron-agent`` whose entry went away are deleted, and their
queues with them (and so their bindings). The in-process
services (entries with the platform's own key) and vctl (``control.connection``) connect over
ZeroMQ and need no user. Requests for several users go to the broker side by side.

:meth:`BrokerUsers.sync` runs once before the platform is ready, then whenever ``auth.json`` or
``protected_topics.json`` changes (checked every :attr:`BrokerUsers.POLL_INTERVAL` seconds; a
protected-topics file that does not parse is reported and the last good one stays in force). What
was set is remembered in ``$VOLTTRON_HOME/rabbitmq/users.json`` (digests, not passwords), and vhost
and topic permissions are compared with what the broker lists, so a restart touches only what
changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent

from volttron.client.known_identities import CONTROL_CONNECTION
from volttron.client.messagebus.rmq_admin import AGENT_TAG, BrokerAdmin, BrokerAdminError
from volttron.client.messagebus.rmq_credentials import derive_password
from volttron.client.messagebus.rmq_links import LINK_TAG, link_topic_permissions, link_user_permissions
from volttron.client.messagebus.rmq_permissions import (
    AGENT_LIMITS,
    Permissions,
    TopicPermissions,
    agent_permissions,
    agent_queue_names,
    apply_queue_limits,
)
from volttron.client.messagebus.rmq_wire import EXCHANGE, ROUTER, fq_identity
from volttron.server.router.rmq.topic_permissions import (
    agent_topic_permissions,
    refused_patterns,
    write_pattern,
)
from volttron.server.services.auth.authfile import AuthDocument, is_regex
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.pubsub.protected import (
    PROTECTED_TOPICS_FILE,
    ProtectedTopics,
    read_protected_topics,
)
from volttron.utils.errors import ConfigError, VolttronError
from volttron.utils.files import file_signature, read_json_file, write_json_file
from volttron.utils.home import certificates_dir

_log = logging.getLogger(__name__)

_OVER_ZEROMQ = frozenset({ROUTER, CONTROL_CONNECTION})
"""Identities that never log in to the broker (vctl talks to the platform over its ipc address)."""


class BrokerUsers:
    """Keeps the broker's agent users in step with ``auth.json``; see the module docstring."""

    POLL_INTERVAL = 0.5
    RESYNC_INTERVAL = 15.0
    """Seconds between syncs when nothing changed here (link users are made by ``vcfg``, not auth.json)."""

    def __init__(self, admin: BrokerAdmin, home: Path, instance: str, vhost: str, *, secret_key: str,
                 public_key: str, tls: bool = False) -> None:
        self.admin = admin
        self.home = home
        self.instance = instance
        self.vhost = vhost
        self._secret = secret_key
        self._public = public_key
        self.tls = tls
        self._policy = AuthPolicy(home / "auth.json")
        self._protected_path = home / PROTECTED_TOPICS_FILE
        self._protected = ProtectedTopics()
        self._protected_signature: tuple[int, int, int] | None | bool = False
        self._state_path = home / "rabbitmq" / "users.json"
        self._greenlet: gevent.Greenlet | None = None
        self.syncs = 0
        self.failures = 0
        self.topic_updates = 0

    # -- what is wanted -------------------------------------------------------------------------
    def wanted(self, document: AuthDocument) -> dict[str, str | None]:
        """Broker user -> password (None with TLS) for every agent entry of ``document``."""
        users: dict[str, str | None] = {}
        for entry in document.allow:
            key = entry.credentials
            identity = entry.identity
            if (not entry.enabled or entry.mechanism != "CURVE" or not key or is_regex(key) or not identity
                    or key == self._public or identity in _OVER_ZEROMQ):
                continue
            user = fq_identity(self.instance, identity)
            if user in users:
                continue  # the broker keeps one password per user: the first entry wins
            users[user] = None if self.tls else derive_password(self._secret, key, user)
        return users

    def wanted_topic_permissions(self, document: AuthDocument,
                                 users: Iterable[str]) -> dict[str, TopicPermissions | None]:
        """Broker user -> its topic permissions on ``volttron`` (None: none) under the protected topics.

        Capabilities are looked up by identity, as the pub/sub service looks up a publisher's.
        """
        literal, regexes = self._protected.entries()
        table = document.capabilities_by_user() if literal or regexes else {}
        prefix = f"{self.instance}."
        return {user: agent_topic_permissions(self.instance, literal, regexes, table.get(user[len(prefix):]),
                                              user[len(prefix):])
                for user in users}

    def link_topic_permissions(self, kind: str) -> TopicPermissions:
        """The topic permissions of another instance's ``kind`` (shovel, federation) link user here.

        A shovel publishes like an agent of its platform holding no capability: never a key of this
        instance's pub/sub or router, never a protected topic; a federation link binds no key of
        this instance's peers.
        """
        literal, regexes = self._protected.entries()
        refused = write_pattern(self.instance, refused_patterns(literal, regexes, None))
        return link_topic_permissions(kind, self.instance, refused)

    def refresh_protected_topics(self) -> bool:
        """Re-read ``protected_topics.json`` if it changed on disk; True when its entries changed.

        A file that does not parse is reported and the last good entries stay (missing: no entries).
        """
        signature = file_signature(self._protected_path)
        if signature == self._protected_signature:
            return False
        self._protected_signature = signature
        before = self._protected.entries()
        try:
            self._protected.replace(read_protected_topics(self._protected_path), str(self._protected_path))
        except ConfigError as exc:
            _log.error("broker topic permissions not changed: %s", exc)
            return False
        return self._protected.entries() != before

    # -- applying it ----------------------------------------------------------------------------
    def sync(self) -> None:
        """Make the broker's agent users what ``auth.json`` says (raises :class:`BrokerAdminError`)."""
        document = self._policy.current()
        wanted = self.wanted(document)
        topics = self.wanted_topic_permissions(document, wanted)
        state = read_json_file(self._state_path, {}, expect=dict)
        known = state.get(self.vhost, {}) if isinstance(state.get(self.vhost), dict) else {}
        existing = gevent.spawn(self.admin.users)
        permissions = gevent.spawn(self.admin.permissions, self.vhost)
        topic_permissions = gevent.spawn(self.admin.topic_permissions, self.vhost)
        fetches: list[gevent.Greenlet[..., Any]] = [existing, permissions, topic_permissions]
        gevent.joinall(fetches, raise_error=True)
        # all three finished without an exception (joinall raised it): get() returns at once
        current = _Current(existing.get(), permissions.get(), topic_permissions.get())
        changes: list[gevent.Greenlet[..., bool]] = [
            gevent.spawn(self._put, user, password, topics[user], current, known)
            for user, password in sorted(wanted.items())]
        prefix = f"{self.instance}."
        changes += [gevent.spawn(self._delete, user, known) for user, tags in sorted(current.users.items())
                    if user.startswith(prefix) and AGENT_TAG in tags and user not in wanted]
        changes += [gevent.spawn(self._put_link_user, user, current) for user, tags in current.users.items()
                    if LINK_TAG in tags and user in current.permissions]
        gevent.joinall(changes)
        failed = [g.exception for g in changes if g.exception is not None]
        changed = any(g.value for g in changes if g.exception is None)
        if changed or state.get(self.vhost) != known:
            state[self.vhost] = known
            self._state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_json_file(self._state_path, state, 0o600)
        if failed:
            raise failed[0]
        self.syncs += 1

    def _put(self, user: str, password: str | None, topics: TopicPermissions | None, current: _Current,
             known: dict[str, str]) -> bool:
        """Make ``user`` as wanted (the broker's requests for several users run side by side).

        Topic permissions go before the vhost permissions, so a new user is never without them.
        """
        changed = False
        digest = _digest(user, password)
        created = user not in current.users
        expected = agent_permissions(user)
        existing = current.users
        grant = (self.vhost, expected) if current.permissions.get(user) != expected else None
        topics_stale = current.topics.get(user, {}).get(EXCHANGE) != topics
        remade = user not in existing or known.get(user) != digest or AGENT_TAG not in existing[user]
        if remade:
            tags = None if AGENT_TAG in existing.get(user, []) else [AGENT_TAG]
            self.admin.put_user(user, password, tags, exists=user in existing,
                                grant=None if topics_stale else grant)
            known[user] = digest
            changed = True
        # each request may take a second or more (rabbitmqctl): the independent ones run side by side
        steps: list[gevent.Greenlet[..., None]] = (
            [gevent.spawn(self.admin.set_user_limits, user, AGENT_LIMITS)] if remade else [])
        if topics_stale:
            steps.append(gevent.spawn(self._put_topic_permissions, user, topics, not created))
        gevent.joinall(steps, raise_error=True)
        if grant is not None and (topics_stale or not remade):
            self.admin.set_permissions(self.vhost, user, expected)
        if grant is not None and not created and not topics_stale:
            # e.g. a user made when agents could still declare their queues: its channels keep what the
            # broker allowed them, so the agent links again (and asks the platform for its queues)
            self.admin.close_user_connections(user, "permissions changed: link again")
        if remade:
            _log.info("broker user %s ready", user)
        if self.tls:
            self._ensure_certificate(user)
        return changed

    def _put_topic_permissions(self, user: str, topics: TopicPermissions | None, stricter: bool) -> None:
        if topics is None:
            self.admin.clear_topic_permissions(self.vhost, user)
            _log.info("broker user %s: no protected topic refused", user)
        else:
            self.admin.set_topic_permissions(self.vhost, user, EXCHANGE, topics)
            _log.info("broker user %s: publishes allowed by %s, bindings by %s", user, topics.write,
                      topics.read)
            if stricter:
                # a channel keeps the keys the broker allowed it before: make the agent link again
                self.admin.close_user_connections(user, "topic permissions changed: link again")
        self.topic_updates += 1

    def _put_link_user(self, user: str, current: _Current) -> bool:
        """Give a link user (tagged ``volttron-link``) the topic permissions of its kind."""
        granted = current.permissions[user]
        kind = next((k for k in ("shovel", "federation") if granted == link_user_permissions(k)), None)
        if kind is None:
            return False
        wanted = self.link_topic_permissions(kind)
        if current.topics.get(user, {}).get(EXCHANGE) == wanted:
            return False
        self.admin.set_topic_permissions(self.vhost, user, EXCHANGE, wanted)
        self.admin.close_user_connections(user, "topic permissions changed: link again")
        self.topic_updates += 1
        _log.info("link user %s (%s): topic permissions of an agent of its platform", user, kind)
        return False

    def _delete(self, user: str, known: dict[str, str]) -> bool:
        """Delete ``user`` (its connections close), then its queues and with them their bindings."""
        self.admin.delete_user(user)
        known.pop(user, None)
        legacy = re.compile(rf"{re.escape(user)}\.pubsub\.[0-9a-f]{{32}}")  # before fixed queue names
        queues = [q for q in self.admin.queues(self.vhost)
                  if q in agent_queue_names(user) or legacy.fullmatch(q)]
        for queue in queues:
            self.admin.delete_queue(self.vhost, queue)
        _log.info("broker user %s removed (no longer in auth.json) with %d queue(s)", user, len(queues))
        return True

    def _ensure_certificate(self, user: str) -> None:
        from volttron.utils.certs import Certs

        certs = Certs(certificates_dir(self.home), self.instance)
        if certs.ca_exists() and not certs.cert_exists(user):
            certs.create_client_cert(user)
            _log.info("client certificate %s made", user)

    # -- running --------------------------------------------------------------------------------
    def start(self) -> None:
        """Sync now (errors are raised), bound the instance's queues, then sync whenever ``auth.json``
        or ``protected_topics.json`` changes, and every :attr:`RESYNC_INTERVAL` seconds (link users)."""
        self.refresh_protected_topics()
        self.sync()
        self._greenlet = gevent.spawn(self._watch)

    def _bound_queues(self) -> None:
        """The queue policies, once the agents' users are ready (each ``rabbitmqctl`` call costs)."""
        try:
            apply_queue_limits(self.admin, self.vhost, self.instance)
        except (BrokerAdminError, VolttronError) as exc:
            _log.error("queues of %s not bounded: %s", self.instance, exc)

    def _watch(self) -> None:
        gevent.spawn(self._bound_queues)  # beside the syncs: a policy also bounds queues that exist
        seen = self._policy.reloads
        last = time.monotonic()
        while True:
            gevent.sleep(self.POLL_INTERVAL)
            self._policy.current()
            protected_changed = self.refresh_protected_topics()
            waited = time.monotonic() - last
            due = waited >= self.RESYNC_INTERVAL
            # after a failure, retry with a growing pause (each try is 3 broker requests, with
            # rabbitmqctl 3 Erlang VMs): 1, 2, 4, 8 s, then every RESYNC_INTERVAL; a change retries at once
            retry = self.failures > 0 and waited >= min(self.POLL_INTERVAL * 2 ** self.failures,
                                                        self.RESYNC_INTERVAL)
            if self._policy.reloads == seen and not protected_changed and not retry and not due:
                continue
            seen = self._policy.reloads
            last = time.monotonic()
            try:
                self.sync()
                self.failures = 0
            except (BrokerAdminError, VolttronError) as exc:
                self.failures += 1
                if self.failures == 1:
                    _log.error("broker users not updated from auth.json: %s (retrying)", exc)

    def stop(self) -> None:
        """Stop watching ``auth.json``."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def statistics(self) -> dict[str, Any]:
        """Counts for status output."""
        return {"syncs": self.syncs, "failures": self.failures, "topic_updates": self.topic_updates}


@dataclass(frozen=True)
class _Current:
    """What the broker has: users and tags, vhost permissions, topic permissions."""

    users: dict[str, list[str]]
    permissions: dict[str, Permissions]
    topics: dict[str, dict[str, TopicPermissions]]


def _digest(user: str, password: str | None) -> str:
    # the limits are part of it: a user made before they changed is made again with the new ones
    limits = json.dumps(AGENT_LIMITS, sort_keys=True)
    return hashlib.sha256(f"{user}\0{password or ''}\0{limits}".encode()).hexdigest()
