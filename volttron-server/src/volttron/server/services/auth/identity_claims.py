"""Which VIP identities an authenticated key may speak as.

ZAP authenticates a CURVE key and names its user id, but the VIP identity is whatever routing id
the peer declares, and the router puts that identity in the user frame that capability checks key
on (reference §1.4, §8.2). Without a rule, any authorized key could connect as
``control.connection`` while vctl is away and gain its capabilities, or as an installed agent while
it is stopped. The rule, for a key authenticated as ``user_id``:

1. its own user id, or an identity one of its allow entries names, is always allowed;
2. an identity that belongs to someone else (another entry's ``user_id`` or ``identity``) or to the
   platform (its services and ``control.connection``) is refused;
3. any other identity is allowed only when none of the key's entries is bound to an identity
   (keys an administrator added without one, e.g. approved pending credentials).

A linked platform's key speaks only as the link: its entry (``vctl auth add-platform``) names the
identity as a ``/regex/`` (``/instance\\.A\\..+/``, the form links to platform A take), and a key
with such an entry may use only identities its entries match, not even its own user id.
A remote principal's name (``B:ops.agent``, :func:`~volttron.utils.identities.remote_principal`)
is never a free identity: a local peer under it would hold what is granted to B's agent.
"""

from __future__ import annotations

from collections.abc import Collection

from volttron.server.identities import CONTROL_CONNECTION, LEGACY_ALIASES, PLATFORM, PLATFORM_SERVICES
from volttron.server.services.auth.authfile import AuthDocument, is_regex, value_matches
from volttron.utils.identities import is_remote_principal

RESERVED_IDENTITIES = frozenset({*PLATFORM_SERVICES, *LEGACY_ALIASES, CONTROL_CONNECTION, PLATFORM})
"""The platform's own names, 9.x aliases included (``control`` may send ``quit``)."""


def identity_allowed(
    document: AuthDocument, user_id: str, identity: str, reserved: Collection[str] = RESERVED_IDENTITIES
) -> bool:
    """True when the key authenticated as ``user_id`` may use the VIP identity ``identity``."""
    if not user_id:
        return False
    own = [e for e in document.allow if e.enabled and e.user_id == user_id]
    if any(is_regex(e.identity) for e in own):  # a link's key: only what its entries match
        return any(e.identity is not None and value_matches(e.identity, identity) for e in own)
    if user_id == identity:
        return True
    if any(e.identity == identity for e in own):
        return True
    if identity in reserved or is_remote_principal(identity):
        return False
    if any(e.user_id == identity or e.identity == identity for e in document.allow if e.user_id != user_id):
        return False
    return all(e.identity is None for e in own)
