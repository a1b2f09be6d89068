"""The auth service, ``platform.auth`` (docs/protocol.md §3.4, §2.11, §8.4).

An agent inside the platform process, connected to ``inproc://vip``. It serves ``auth.json`` over
RPC and keeps everyone's view of it current:

* it polls ``auth.json`` and ``protected_topics.json`` (modification time, size, inode) every
  ``poll_interval`` seconds, and right after its own edits;
* on a change of ``auth.json`` it RPC-calls ``auth.update(user_to_capabilities)`` on the peers
  that hold a table (those that fetched one with ``get_user_to_capabilities`` since they
  connected; never itself or ``control.connection``), so their ``@RPC.allow`` checks use the new
  table at once. Agents that never fetched one have nothing to update and fetch the current table
  when they first need it; an agent that reconnects forgets its table and fetches again;
* on a change of ``protected_topics.json`` it sends the router pub/sub ``protected_update``, so a
  change applies without waiting for the router's own once-a-second look at the file.

The router's pub/sub service and the ZAP handler read ``auth.json`` themselves on every decision
(they run in this process, see :mod:`~volttron.server.services.auth.policy`). So the service does
not send the router ``auth_update`` (docs/protocol.md §2.6): the router would then use the pushed table
instead of the file, and lag behind every change by up to a poll interval.

RPC methods (modifying ones need ``allow_auth_modifications``, checked by
:func:`~volttron.server.services.auth.access.require_capability`; reading the whole policy needs
``read_auth_file`` or ``allow_auth_modifications``, else a caller sees its own row and what its
methods check, :func:`~volttron.server.services.auth.access.visible_capabilities`)::

    auth_file.read() -> {"allow_list", "deny_list", "groups", "roles", "version"}     (reads)
    auth_file.add(entry, overwrite=False, is_allow=True) -> index                    (modifies)
    auth_file.update_by_index(auth_entry, index, is_allow=True)                      (modifies)
    auth_file.remove_by_index(index, is_allow=True) / remove_by_indices(indices, is_allow=True)
    auth_file.find_by_credentials(credentials, is_allow=True) -> [entry]            (reads)
    auth_file.remove_by_credentials(credentials, is_allow=True) -> count             (modifies)
    auth_file.set_groups(groups) / auth_file.set_roles(roles)                        (modifies)
    get_user_to_capabilities() -> {user_id: {capability: parameters or null}}      (a reader: all rows)
    get_authorizations(user_id) -> [capabilities, groups, roles]
    get_capabilities(user_id) / get_groups(user_id) / get_roles(user_id)
    update_id_rpc_authorizations(identity, rpc_methods) -> {method: [caps]} or null (the agent itself)
    add_rpc_authorizations(identity, method, capabilities)                           (modifies)
    delete_rpc_authorizations(identity, method, capabilities)                        (modifies)
    get_pending_authorizations() / get_approved_authorizations() / get_denied_authorizations()
    approve_authorization(user_id) / deny_authorization(user_id) / delete_authorization(user_id)
    get_authorization(user_id) / get_authorization_status(user_id)                   (modifies)

The published VOLTTRON's clients ask per decision instead (:mod:`.published`, one policy for both)::

    get_protected_rpcs(identity) -> [method]                                         (the agent itself)
    check_rpc_authorization(identity, method_name, method_args) -> true, or -32001   (the callee)
    check_pubsub_authorization(identity, topic_pattern, access) -> bool              (the agent itself)
    is_protected_topic(topic_name_pattern) -> bool
    get_agent_capabilities(identity) -> {"capabilities", "protected_rpcs"}           (the agent itself)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent.lock import Semaphore

from volttron.client.known_identities import CONTROL_CONNECTION
from volttron.client.vip.agent import RPC, Agent, VIPError
from volttron.server.context import PlatformContext
from volttron.server.identities import AUTH
from volttron.server.services.auth import edits, published
from volttron.server.services.auth.access import (
    ALLOW_AUTH_MODIFICATIONS,
    may_read_policy,
    require_capability,
    require_policy_reader,
    visible_capabilities,
)
from volttron.server.services.auth.authfile import AuthDocument, AuthEntry, edit_auth_file
from volttron.server.services.auth.pending import CredentialRecord, CredentialRequests, pending_path
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.base import InProcessService
from volttron.server.services.pubsub.protected import (
    PROTECTED_TOPICS_FILE,
    ProtectedTopics,
    read_protected_topics,
)
from volttron.utils.errors import ConfigError, VolttronError
from volttron.utils.files import file_signature
from volttron.utils.home import auth_file_path
from volttron.utils.jsonrpc import MethodNotFound

_log = logging.getLogger(__name__)

NOT_PUSHED_TO = frozenset({AUTH, CONTROL_CONNECTION})
APPROVED_COMMENT = "Approved by an administrator after the platform refused it"


class AuthServiceError(VolttronError):
    """The auth service could not join the platform."""


@dataclass(frozen=True)
class AuthSettings:
    """Where the service's files are and how it behaves."""

    auth_file: Path
    protected_file: Path
    auth_enabled: bool = True
    """Off (``--auth-disabled``): callers are not checked, as agents skip ``@RPC.allow`` then."""
    poll_interval: float = 0.5
    push_timeout: float = 10.0


class AuthAgent(Agent):
    """The ``platform.auth`` agent; see the module docstring."""

    def __init__(self, settings: AuthSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.policy = AuthPolicy(settings.auth_file)
        self.requests = CredentialRequests(pending_path(settings.auth_file))
        self._seen_reloads = -1
        self._protected_signature: tuple[int, int, int] | None | bool = False
        self._push_lock = Semaphore()
        self._check_lock = Semaphore()
        self._holders: dict[str, str] = {}
        """Peers holding a capability table (they fetched one since they connected), and their users."""
        self._protected: ProtectedTopics | None = None
        self.counts = {"protected_updates": 0, "peer_pushes": 0, "peer_push_failures": 0}
        self.core.periodic(settings.poll_interval, self.check_files, wait=0)
        self.vip.peerlist.ondrop.connect(self._peer_dropped, self)

    def _peer_dropped(self, sender: Any, peer: str = "", **kwargs: Any) -> None:
        self._holders.pop(peer, None)

    # -- watching and pushing ------------------------------------------------------------------
    def check_files(self) -> None:
        """Push ``auth.json`` / ``protected_topics.json`` to the router and agents if they changed."""
        with self._check_lock:
            self.policy.current()
            if self.policy.reloads != self._seen_reloads:
                first = self._seen_reloads < 0
                self._seen_reloads = self.policy.reloads
                if not first:
                    self.core.spawn(self._push_to_peers)
            signature = file_signature(self.settings.protected_file)
            if signature != self._protected_signature:
                self._protected_signature = signature
                self._push_protected_topics()

    def _push_protected_topics(self) -> None:
        try:
            document = read_protected_topics(self.settings.protected_file)
        except ConfigError as exc:
            _log.error("protected topics not updated: %s", exc)
            return
        self._send_router(b"protected_update", document)
        self.counts["protected_updates"] += 1

    def _send_router(self, operation: bytes, body: Mapping[str, Any]) -> None:
        try:
            self.core.send_vip("", "pubsub", [operation, json.dumps(body).encode("ascii")])
        except VIPError as exc:
            _log.error("could not send %s to the router: %s", operation.decode(), exc)

    def _push_to_peers(self) -> None:
        with self._push_lock:  # one push at a time, each with the newest table
            document, table = self.policy.current(), self.policy.capabilities()
            calls = {}
            for peer, user in sorted(self._holders.items()):
                if peer not in NOT_PUSHED_TO:
                    view = visible_capabilities(document, user, table)
                    calls[peer] = self.vip.rpc.call(peer, "auth.update", view)
                    gevent.sleep(0)  # one view per holder: let others run between them
            gevent.wait(list(calls.values()), timeout=self.settings.push_timeout)
            for peer, result in calls.items():
                if result.ready() and result.successful():
                    self.counts["peer_pushes"] += 1
                else:
                    self.counts["peer_push_failures"] += 1
                    _log.debug("auth.update not accepted by %s: %s", peer,
                               result.exception if result.ready() else "no answer")

    # -- checks --------------------------------------------------------------------------------
    def _caller(self) -> str | None:
        message = self.vip.rpc.context.vip_message
        return None if message is None else message.user

    def _require(self, capability: str = ALLOW_AUTH_MODIFICATIONS) -> None:
        if self.settings.auth_enabled:
            require_capability(self.policy.current(), self._caller(), capability)

    def _require_reader(self, document: AuthDocument, what: str) -> None:
        if self.settings.auth_enabled:
            require_policy_reader(document, self._caller(), what)

    @contextmanager
    def _editing(self) -> Iterator[AuthDocument]:
        """Change ``auth.json`` under its lock, then push the result without waiting for the poll."""
        with edit_auth_file(self.settings.auth_file) as document:
            yield document
        self.core.spawn(self.check_files)

    # -- auth_file.* ---------------------------------------------------------------------------
    @RPC.export("auth_file.read")
    def read_auth_file(self) -> dict[str, Any]:
        """The whole file: allow and deny entries, groups, roles, version (needs ``read_auth_file``)."""
        document = self.policy.current()
        self._require_reader(document, "auth_file.read")
        return {"allow_list": [e.to_dict() for e in document.allow],
                "deny_list": [e.to_dict() for e in document.deny],
                "groups": document.groups, "roles": document.roles, "version": document.version}

    @RPC.export("auth_file.add")
    def add_entry(self, entry: Mapping[str, Any], overwrite: bool = False, is_allow: bool = True) -> int:
        """Add an entry (with ``overwrite``, replace the one for the same credentials); returns its index."""
        self._require()
        new = edits.entry_from_request(entry)
        with self._editing() as document:
            return edits.add_entry(document, new, is_allow=is_allow, overwrite=overwrite)

    @RPC.export("auth_file.update_by_index")
    def update_by_index(self, auth_entry: Mapping[str, Any], index: int, is_allow: bool = True) -> None:
        """Replace the entry at ``index``."""
        self._require()
        new = edits.entry_from_request(auth_entry)
        with self._editing() as document:
            edits.update_entry(document, index, new, is_allow)

    @RPC.export("auth_file.remove_by_index")
    def remove_by_index(self, index: int, is_allow: bool = True) -> None:
        """Remove the entry at ``index``."""
        self.remove_by_indices([index], is_allow)

    @RPC.export("auth_file.remove_by_indices")
    def remove_by_indices(self, indices: list[int], is_allow: bool = True) -> None:
        """Remove the entries at ``indices`` (all or none)."""
        self._require()
        if not isinstance(indices, (list, tuple)):
            raise edits.AuthEditError("indices must be a list of entry indices")
        with self._editing() as document:
            edits.remove_entries(document, indices, is_allow)

    @RPC.export("auth_file.find_by_credentials")
    def find_by_credentials(self, credentials: str, is_allow: bool = True) -> list[dict[str, Any]]:
        """The entries with exactly these credentials (needs ``read_auth_file``)."""
        document = self.policy.current()
        self._require_reader(document, "auth_file.find_by_credentials")
        return [e.to_dict() for e in edits.find_by_credentials(document, credentials, is_allow)]

    @RPC.export("auth_file.remove_by_credentials")
    def remove_by_credentials(self, credentials: str, is_allow: bool = True) -> int:
        """Remove the entries with exactly these credentials; returns how many."""
        self._require()
        with self._editing() as document:
            return edits.remove_by_credentials(document, credentials, is_allow)

    @RPC.export("auth_file.set_groups")
    def set_groups(self, groups: Mapping[str, list[str]]) -> None:
        """Replace the groups map (group -> roles)."""
        self._require()
        with self._editing() as document:
            edits.set_groups(document, groups)

    @RPC.export("auth_file.set_roles")
    def set_roles(self, roles: Mapping[str, list[str]]) -> None:
        """Replace the roles map (role -> capabilities)."""
        self._require()
        with self._editing() as document:
            edits.set_roles(document, roles)

    # -- capabilities --------------------------------------------------------------------------
    @RPC.export
    def get_user_to_capabilities(self) -> dict[str, Any]:
        """``{user_id: {capability: parameters or null}}`` of the enabled allow entries the caller may see.

        A holder of ``read_auth_file`` (or ``allow_auth_modifications``) sees every row; another
        caller its own row and, of others, the capabilities its methods check (see
        :func:`~volttron.server.services.auth.access.visible_capabilities`). The caller is sent
        every later change (``auth.update``, the same view) until it disconnects.
        """
        message = self.vip.rpc.context.vip_message
        user = self._caller()
        if message is not None and message.peer:
            self._holders[message.peer] = user or ""
        table = self.policy.capabilities()
        if not self.settings.auth_enabled:
            return dict(table)
        return visible_capabilities(self.policy.current(), user, table)

    @RPC.export
    def get_authorizations(self, user_id: str) -> list[Any]:
        """``[capabilities, groups, roles]`` of ``user_id`` (empty for an unknown user).

        Of another user than itself, a caller without ``read_auth_file`` learns only what
        ``get_user_to_capabilities`` shows it, and no groups or roles.
        """
        document = self.policy.current()
        entry = document.find(user_id)
        if entry is None or not entry.enabled:
            return [{}, [], []]
        capabilities = document.effective_capabilities(entry)
        caller = self._caller()
        if self.settings.auth_enabled and caller != user_id and not may_read_policy(document, caller):
            return [visible_capabilities(document, caller, {user_id: capabilities}).get(user_id, {}), [], []]
        return [capabilities, list(entry.groups), list(entry.roles)]

    @RPC.export
    def get_capabilities(self, user_id: str) -> dict[str, Any]:
        """The capabilities of ``user_id``, roles and groups included."""
        return self.get_authorizations(user_id)[0]

    @RPC.export
    def get_groups(self, user_id: str) -> list[str]:
        """The groups of ``user_id``."""
        return self.get_authorizations(user_id)[1]

    @RPC.export
    def get_roles(self, user_id: str) -> list[str]:
        """The roles of ``user_id``."""
        return self.get_authorizations(user_id)[2]

    # -- RPC method authorizations -------------------------------------------------------------
    @RPC.export
    def update_id_rpc_authorizations(self, identity: str, rpc_methods: Mapping[str, list[str]]
                                     ) -> dict[str, list[str]] | None:
        """An agent reports what its methods require; returns the entry's map (administrator's wins).

        Only the agent itself (or a holder of ``allow_auth_modifications``) may report for an identity.
        """
        if self._caller() != identity:
            self._require()
        with self._editing() as document:
            return edits.merge_rpc_authorizations(document, identity, rpc_methods)

    @RPC.export
    def add_rpc_authorizations(self, identity: str, method: str, capabilities: list[str]) -> list[str]:
        """Require ``capabilities`` for ``identity.method`` too; tells the agent if it is connected."""
        self._require()
        in_code = None
        entry = edits.entry_for_identity(self.policy.current(), identity)
        if method not in entry.rpc_method_authorizations:
            in_code = self._ask_agent(identity, method)
        with self._editing() as document:
            required = edits.add_rpc_authorizations(document, identity, method, capabilities, in_code)
        self._tell_agent(identity, method, required)
        return required

    @RPC.export
    def delete_rpc_authorizations(self, identity: str, method: str, capabilities: list[str]) -> list[str]:
        """Stop requiring ``capabilities`` for ``identity.method``; tells the agent if it is connected."""
        self._require()
        with self._editing() as document:
            required = edits.delete_rpc_authorizations(document, identity, method, capabilities)
        self._tell_agent(identity, method, required)
        return required

    def _ask_agent(self, identity: str, method: str) -> list[str] | None:
        """What ``identity``'s code requires for ``method`` (None when it cannot be asked)."""
        try:
            required = self.vip.rpc.call(identity, "auth.get_rpc_authorizations", method).get(
                timeout=self.settings.push_timeout)
        except (VIPError, gevent.Timeout, VolttronError) as exc:
            _log.info("cannot ask %s what %s requires (%s)", identity, method, exc)
            return None
        return [str(c) for c in required] if isinstance(required, list) else None

    def _tell_agent(self, identity: str, method: str, required: list[str]) -> None:
        try:
            try:
                self.vip.rpc.call(identity, "auth.set_rpc_authorizations", method, required).get(
                    timeout=self.settings.push_timeout)
            except MethodNotFound:  # an agent of the published VOLTTRON: it asks us on every call
                names = published.protected_rpcs(self.policy.current(), identity)
                self.vip.rpc.call(identity, "rpc.add_protected_rpcs", names).get(
                    timeout=self.settings.push_timeout)
        except (VIPError, gevent.Timeout, VolttronError) as exc:
            # recorded in auth.json: the agent applies it when it next reports its methods
            _log.info("%s not told about %s now (%s); it applies the change when it restarts",
                      identity, method, exc)

    # -- the published VOLTTRON's dialect (see .published) ---------------------------------------
    def _require_self_or_reader(self, identity: str, what: str) -> AuthDocument:
        """The policy, once the caller is ``identity`` itself or may read the whole policy."""
        document = self.policy.current()
        caller = self._caller()
        if self.settings.auth_enabled and caller != identity and not may_read_policy(document, caller):
            raise published.unauthorized(f"{what} of {identity!r} may be asked by that agent only, "
                                         f"not by {caller!r}")
        return document

    def _protected_topics(self) -> ProtectedTopics:
        if self._protected is None:
            self._protected = ProtectedTopics(self.settings.protected_file, check_interval=0.0)
        self._protected.refresh()
        return self._protected

    @RPC.export
    def get_protected_rpcs(self, identity: str) -> list[str]:
        """The methods of ``identity`` that need a check (asked by that agent); none with auth off."""
        document = self._require_self_or_reader(identity, "get_protected_rpcs")
        return published.protected_rpcs(document, identity) if self.settings.auth_enabled else []

    @RPC.export
    def check_rpc_authorization(self, identity: str, method_name: str,
                                method_args: Mapping[str, Any] | None = None, **kwargs: Any) -> bool:
        """True if ``identity`` may call ``method_name`` (``"<the asking agent>.<method>"``), else -32001."""
        if not self.settings.auth_enabled:
            return True
        callee = self._caller() or ""
        method = published.split_method_name(method_name, callee)
        published.check_rpc_call(self.policy.current(), str(identity), callee, method, method_args or {})
        return True

    @RPC.export
    def check_pubsub_authorization(self, identity: str, topic_pattern: str, access: str,
                                   **kwargs: Any) -> bool:
        """Whether ``identity`` (the asking agent) may ``access`` (publish, subscribe, pubsub) the topic."""
        document = self._require_self_or_reader(identity, "check_pubsub_authorization")
        if not self.settings.auth_enabled:
            return True
        return published.pubsub_allowed(document, self._protected_topics(), identity, topic_pattern, access)

    @RPC.export
    def is_protected_topic(self, topic_name_pattern: str) -> bool:
        """Whether publishing to ``topic_name_pattern`` needs capabilities."""
        return self._protected_topics().required(str(topic_name_pattern)) is not None

    @RPC.export
    def get_agent_capabilities(self, identity: str) -> dict[str, Any]:
        """The capabilities ``identity`` holds and the methods of its own that need a check."""
        return published.capabilities_view(self._require_self_or_reader(identity, "get_agent_capabilities"),
                                           identity)

    # -- pending credentials -------------------------------------------------------------------
    @RPC.export
    def get_pending_authorizations(self) -> list[dict[str, Any]]:
        """Refused keys nobody has decided about yet."""
        return [r.to_dict() for r in self.requests.records("pending")]

    @RPC.export
    def get_approved_authorizations(self) -> list[dict[str, Any]]:
        """Refused keys an administrator approved."""
        return [r.to_dict() for r in self.requests.records("approved")]

    @RPC.export
    def get_denied_authorizations(self) -> list[dict[str, Any]]:
        """Refused keys an administrator denied."""
        return [r.to_dict() for r in self.requests.records("denied")]

    @RPC.export
    def approve_authorization(self, user_id: str) -> dict[str, Any]:
        """Let the key recorded as ``user_id`` connect (an allow entry with that user id)."""
        self._require()
        record = self._record(user_id)
        with self._editing() as document:
            existing = edits.find_by_credentials(document, record.credentials)
            if existing:
                for entry in existing:
                    entry.enabled = True
            else:
                approved = AuthEntry(mechanism=record.mechanism, credentials=record.credentials,
                                     user_id=record.user_id, comments=APPROVED_COMMENT)
                edits.add_entry(document, approved)
        return self.requests.set_status(user_id, "approved").to_dict()

    @RPC.export
    def deny_authorization(self, user_id: str) -> dict[str, Any]:
        """Refuse the key recorded as ``user_id`` (removing any allow entry it had)."""
        self._require()
        record = self._record(user_id)
        with self._editing() as document:
            edits.remove_by_credentials(document, record.credentials)
        return self.requests.set_status(user_id, "denied").to_dict()

    @RPC.export
    def delete_authorization(self, user_id: str) -> dict[str, Any]:
        """Forget the key recorded as ``user_id`` (and remove any allow entry it had)."""
        self._require()
        record = self._record(user_id)
        with self._editing() as document:
            edits.remove_by_credentials(document, record.credentials)
        return self.requests.delete(user_id).to_dict()

    @RPC.export
    def get_authorization(self, user_id: str) -> dict[str, Any] | None:
        """The record of ``user_id``, or null."""
        self._require()
        record = self.requests.find(user_id)
        return None if record is None else record.to_dict()

    @RPC.export
    def get_authorization_status(self, user_id: str) -> str:
        """``PENDING``, ``APPROVED``, ``DENIED`` or ``UNKNOWN``."""
        self._require()
        record = self.requests.find(user_id)
        return "UNKNOWN" if record is None else record.status.upper()

    def _record(self, user_id: str) -> CredentialRecord:
        if not isinstance(user_id, str) or not user_id:
            raise edits.AuthEditError("a user_id is needed; see 'vctl auth remote list'")
        record = self.requests.find(user_id)
        if record is None:
            raise edits.AuthEditError(f"no pending, approved or denied credentials with user_id {user_id!r}; "
                                      "see 'vctl auth remote list'")
        return record

    def statistics(self) -> dict[str, int]:
        """Pushes made and failed, and how often ``auth.json`` was re-read."""
        return {**self.counts, "auth_reloads": self.policy.reloads}


class AuthService(InProcessService):
    """Runs :class:`AuthAgent` in the platform process (a ``PlatformService``)."""

    identity = AUTH
    title = "the auth service"
    error = AuthServiceError

    def __init__(self, context: PlatformContext, settings: AuthSettings | None = None,
                 agent_class: Callable[..., AuthAgent] = AuthAgent) -> None:
        super().__init__(context)
        self.settings = settings or AuthSettings(auth_file=auth_file_path(context.home),
                                                 protected_file=context.home / PROTECTED_TOPICS_FILE,
                                                 auth_enabled=context.auth_enabled)
        self._agent_class = agent_class

    def start(self) -> None:
        """Connect to the router and wait for the welcome; :class:`AuthServiceError` if it fails."""
        # it checks its callers itself, against the live auth.json
        self.connect(self._agent_class, settings=self.settings, enable_auth=False)
        _log.debug("auth service started as %s", AUTH)


def auth_service(context: PlatformContext) -> AuthService:
    """The service factory for :func:`volttron.server.main.default_services`."""
    return AuthService(context)
