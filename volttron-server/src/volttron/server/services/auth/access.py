"""Who may change the platform's authorizations: the admin-method capability check (reference §3.4).

The auth service's modifying methods (``auth_file.add`` ... ``approve_authorization``) need
``allow_auth_modifications``. The service is the source of every capability table, so it checks
its callers against the live ``auth.json`` with :func:`require_capability` (no RPC round trip to
itself, no cached table a change has not reached yet). This is the one function that decides it.
The capability names the platform itself uses (reference §8.4) are defined here.
"""

from __future__ import annotations

from volttron.server.services.auth.authfile import AuthDocument
from volttron.utils.jsonrpc import UNAUTHORIZED, Unauthorized

ALLOW_AUTH_MODIFICATIONS = "allow_auth_modifications"
"""Edit ``auth.json`` and decide about pending credentials (auth service)."""
MODIFY_RPC_METHOD_ALLOWANCE = "modify_rpc_method_allowance"
"""Change what an agent's methods require (``auth.set_rpc_authorizations`` on every agent)."""
EDIT_CONFIG_STORE = "edit_config_store"
"""Write an agent's configurations (config store; parameter ``identity``, a name or ``/regex/``)."""
SYNC_AGENT_CONFIG = "sync_agent_config"
"""Push configurations into an agent (``config.update``/``config.initial_update``)."""


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
