"""One broker user per agent, kept in step with ``auth.json`` (reference §6.1, §6.2).

Every enabled allow entry of ``auth.json`` that names an ``identity`` and one CURVE key gets the
broker user ``<instance>.<identity>`` on the platform's vhost, with the anchored permissions of
:func:`~volttron.client.messagebus.rmq_admin.agent_permissions`, tagged ``volttron-agent``:

* plain logins: the password both sides derive from the CURVE keys
  (:mod:`~volttron.client.messagebus.rmq_credentials`), so an agent the AIP installed, or one run
  by hand with its key store, logs in without anyone handing it a password;
* TLS: no password, and a client certificate ``<instance>.<identity>`` signed by the instance's
  CA (EXTERNAL authentication maps its common name to the user).

Users of this instance tagged ``volttron-agent`` whose entry went away are deleted. The in-process
services (entries with the platform's own key) and vctl (``control.connection``) connect over
ZeroMQ and need no user. Requests for several users go to the broker side by side.

:meth:`BrokerUsers.sync` runs once before the platform is ready, then whenever ``auth.json``
changes (checked every :attr:`BrokerUsers.POLL_INTERVAL` seconds). What was set is remembered in
``$VOLTTRON_HOME/rabbitmq/users.json`` (digests, not passwords), so a restart touches only what
changed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import gevent

from volttron.client.known_identities import CONTROL_CONNECTION
from volttron.client.messagebus.rmq_admin import AGENT_TAG, BrokerAdmin, BrokerAdminError, agent_permissions
from volttron.client.messagebus.rmq_credentials import derive_password
from volttron.client.messagebus.rmq_wire import ROUTER, fq_identity
from volttron.server.services.auth.authfile import AuthDocument, is_regex
from volttron.server.services.auth.policy import AuthPolicy
from volttron.utils.errors import VolttronError
from volttron.utils.files import read_json_file, write_json_file
from volttron.utils.home import certificates_dir

_log = logging.getLogger(__name__)

_OVER_ZEROMQ = frozenset({ROUTER, CONTROL_CONNECTION})
"""Identities that never log in to the broker (vctl talks to the platform over its ipc address)."""


class BrokerUsers:
    """Keeps the broker's agent users in step with ``auth.json``; see the module docstring."""

    POLL_INTERVAL = 0.5

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
        self._state_path = home / "rabbitmq" / "users.json"
        self._greenlet: gevent.Greenlet | None = None
        self.syncs = 0
        self.failures = 0

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

    # -- applying it ----------------------------------------------------------------------------
    def sync(self) -> None:
        """Make the broker's agent users what ``auth.json`` says (raises :class:`BrokerAdminError`)."""
        wanted = self.wanted(self._policy.current())
        state = read_json_file(self._state_path, {}, expect=dict)
        known = state.get(self.vhost, {}) if isinstance(state.get(self.vhost), dict) else {}
        existing = gevent.spawn(self.admin.users)
        permissions = gevent.spawn(self.admin.permissions, self.vhost)
        gevent.joinall([existing, permissions], raise_error=True)
        changes = [gevent.spawn(self._put, user, password, existing.value, permissions.value, known)
                   for user, password in sorted(wanted.items())]
        prefix = f"{self.instance}."
        changes += [gevent.spawn(self._delete, user, known) for user, tags in sorted(existing.value.items())
                    if user.startswith(prefix) and AGENT_TAG in tags and user not in wanted]
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

    def _put(self, user: str, password: str | None, existing: dict[str, list[str]],
             permissions: dict[str, Any], known: dict[str, str]) -> bool:
        """Make ``user`` as wanted (the broker's requests for several users run side by side)."""
        changed = False
        digest = _digest(user, password)
        expected = agent_permissions(user)
        grant = (self.vhost, expected) if permissions.get(user) != expected else None
        if user not in existing or known.get(user) != digest or AGENT_TAG not in existing[user]:
            tags = None if AGENT_TAG in existing.get(user, []) else [AGENT_TAG]
            self.admin.put_user(user, password, tags, exists=user in existing, grant=grant)
            known[user] = digest
            changed = True
            _log.info("broker user %s ready", user)
        elif grant is not None:
            self.admin.set_permissions(self.vhost, user, expected)
        if self.tls:
            self._ensure_certificate(user)
        return changed

    def _delete(self, user: str, known: dict[str, str]) -> bool:
        self.admin.delete_user(user)
        known.pop(user, None)
        _log.info("broker user %s removed (no longer in auth.json)", user)
        return True

    def _ensure_certificate(self, user: str) -> None:
        from volttron.utils.certs import Certs

        certs = Certs(certificates_dir(self.home), self.instance)
        if certs.ca_exists() and not certs.cert_exists(user):
            certs.create_client_cert(user)
            _log.info("client certificate %s made", user)

    # -- running --------------------------------------------------------------------------------
    def start(self) -> None:
        """Sync now (errors are raised), then whenever ``auth.json`` changes."""
        self.sync()
        self._greenlet = gevent.spawn(self._watch)

    def _watch(self) -> None:
        seen = self._policy.reloads
        while True:
            gevent.sleep(self.POLL_INTERVAL)
            self._policy.current()
            if self._policy.reloads == seen and self.failures == 0:
                continue
            seen = self._policy.reloads
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
        return {"syncs": self.syncs, "failures": self.failures}


def _digest(user: str, password: str | None) -> str:
    return hashlib.sha256(f"{user}\0{password or ''}".encode()).hexdigest()
