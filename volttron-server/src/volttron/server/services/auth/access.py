"""Who may change and who may read the platform's authorizations (docs/protocol.md §3.4).

The auth service's modifying methods (``auth_file.add`` ... ``approve_authorization``) need
``allow_auth_modifications``. The service is the source of every capability table, so it checks
its callers against the live ``auth.json`` with :func:`require_capability` (no RPC round trip to
itself, no cached table a change has not reached yet). This is the one function that decides it.

Reading the whole policy (``auth_file.read``, ``auth_file.find_by_credentials``, every user's
capabilities) needs ``read_auth_file`` or ``allow_auth_modifications``: :func:`may_read_policy`
decides it. Anyone else sees its own row and, of other users, only the capabilities its own
methods check (:func:`visible_capabilities`): what an agent's ``@RPC.allow`` checks need, no more.
The capability names the platform itself uses (docs/protocol.md §8.4) are defined here.
"""

from __future__ import annotations

from collections.abc import Mapping

from volttron.client.known_identities import PROCESS_IDENTITIES
from volttron.server.services.auth.authfile import AuthDocument, Capabilities
from volttron.utils.jsonrpc import UNAUTHORIZED, Unauthorized

ALLOW_AUTH_MODIFICATIONS = "allow_auth_modifications"
"""Edit ``auth.json`` and decide about pending credentials (auth service)."""
MODIFY_RPC_METHOD_ALLOWANCE = "modify_rpc_method_allowance"
"""Change what an agent's methods require (``auth.set_rpc_authorizations`` on every agent)."""
EDIT_CONFIG_STORE = "edit_config_store"
"""Write an agent's configurations (config store; parameter ``identity``, a name or ``/regex/``)."""
SYNC_AGENT_CONFIG = "sync_agent_config"
"""Push configurations into an agent (``config.update``/``config.initial_update``)."""
READ_AUTH_FILE = "read_auth_file"
"""Read the whole ``auth.json`` and every user's capabilities (monitoring without the right to edit)."""
CHECKED_BY_EVERY_AGENT = frozenset({SYNC_AGENT_CONFIG, MODIFY_RPC_METHOD_ALLOWANCE})
"""What every agent's own subsystems check (``config.update``, ``auth.set_rpc_authorizations``),
before the agent has reported its methods."""


def require_capability(document: AuthDocument, user: str | None, capability: str) -> None:
    """Raise :class:`Unauthorized` (JSON-RPC -32001) unless ``user`` holds ``capability`` in ``document``.

    The user is the caller's user id as the router stamps it (the sender's identity); an unknown
    user, a disabled entry or an empty capability set holds nothing.
    """
    if not user:
        raise Unauthorized(UNAUTHORIZED, "unauthorized",
                           {"detail": f"{capability} is required; the caller is unknown"})
    for entry in document.allow:
        if entry.user_id == user and entry.enabled and capability in document.effective_capabilities(entry):
            return
    raise Unauthorized(UNAUTHORIZED, "unauthorized",
                       {"detail": f"user {user!r} lacks the capability {capability!r}"})


def may_read_policy(document: AuthDocument, user: str | None) -> bool:
    """Whether ``user`` may read the whole policy: it holds ``read_auth_file`` or the right to edit it.

    The platform's own services (which run in its process under reserved identities) may too.
    """
    if not user:
        return False
    if user in PROCESS_IDENTITIES:
        return True
    for entry in document.allow:
        if entry.user_id == user and entry.enabled:
            held = document.effective_capabilities(entry)
            return READ_AUTH_FILE in held or ALLOW_AUTH_MODIFICATIONS in held
    return False


def require_policy_reader(document: AuthDocument, user: str | None, what: str) -> None:
    """Raise :class:`Unauthorized` unless ``user`` :func:`may_read_policy`; ``what`` names the method."""
    if not may_read_policy(document, user):
        raise Unauthorized(UNAUTHORIZED, "unauthorized",
                           {"detail": f"{what} needs {READ_AUTH_FILE!r} or {ALLOW_AUTH_MODIFICATIONS!r}; "
                                      f"user {user!r} holds neither"})


def visible_capabilities(document: AuthDocument, user: str | None,
                         table: Mapping[str, Capabilities]) -> dict[str, Capabilities]:
    """The part of ``table`` (``{user_id: capabilities}``) that ``user`` may see.

    A policy reader sees it all. Anyone else: its own row whole, and of every other user only the
    capabilities that its own methods require (its entry's ``rpc_method_authorizations``, which the
    agent reports at start) or that every agent checks (:data:`CHECKED_BY_EVERY_AGENT`).
    """
    if may_read_policy(document, user):
        return dict(table)
    needed = set(CHECKED_BY_EVERY_AGENT)
    own = document.find(user) if user else None
    if own is not None:
        for required in own.rpc_method_authorizations.values():
            needed.update(c for c in required if c)
    view: dict[str, Capabilities] = {}
    for other, capabilities in table.items():
        if other == user:
            view[other] = dict(capabilities)
            continue
        shown = {name: params for name, params in capabilities.items() if name in needed}
        if shown:
            view[other] = shown
    return view
