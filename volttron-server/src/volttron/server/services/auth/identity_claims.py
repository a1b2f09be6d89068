"""Which VIP identities an authenticated key may speak as.

ZAP authenticates a CURVE key and names its user id, but the VIP identity is whatever routing id
the peer declares, and the router puts that identity in the user frame that capability checks key
on (docs/protocol.md §1.4, §8.2). Without a rule, any authorized key could connect as
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

Rule 2 compares look-alike forms (:func:`look_alike_form`: NFKC, case folded, with white space,
control and format characters such as NUL and zero-width spaces removed), so a free key cannot
take ``Platform.Control``, ``platform.control `` or ``control.connection\x00`` either.

:class:`IdentityClaims` is the check the router runs, plus what happens to a key caught claiming
someone else's identity: its keys are refused at the handshake for ``ban_seconds`` (through
:attr:`IdentityClaims.zap_policy`, the policy the ZAP handler reads), so that its reconnections
cannot take the identity again before the rightful owner does.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

from volttron.server.identities import CONTROL_CONNECTION, LEGACY_ALIASES, PLATFORM, PLATFORM_SERVICES
from volttron.server.services.auth.authfile import AuthDocument, AuthEntry, is_regex, value_matches
from volttron.server.services.auth.policy import AuthPolicy
from volttron.utils.identities import is_remote_principal

RESERVED_IDENTITIES = frozenset({*PLATFORM_SERVICES, *LEGACY_ALIASES, CONTROL_CONNECTION, PLATFORM})
"""The platform's own names, 9.x aliases included (``control`` may send ``quit``)."""

DEFAULT_BAN_SECONDS = 30.0
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def look_alike_form(identity: str) -> str:
    """The form two identities that look the same share (NFKC, case folded, invisibles removed).

    Identities reach the router as bytes read as ISO-8859-1; UTF-8 text is read back as such first.
    """
    try:
        identity = identity.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    text = unicodedata.normalize("NFKC", identity).casefold()
    text = "".join(c for c in text if unicodedata.category(c) not in _INVISIBLE)
    return unicodedata.normalize("NFKC", text)


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
    if is_remote_principal(identity) or belongs_to_another(document, user_id, identity, reserved):
        return False
    return all(e.identity is None for e in own)


def belongs_to_another(document: AuthDocument, user_id: str, identity: str,
                       reserved: Collection[str] = RESERVED_IDENTITIES) -> bool:
    """True when ``identity`` looks like the platform's or another entry's name (rule 2)."""
    form = look_alike_form(identity)
    if identity in reserved or form in {look_alike_form(name) for name in reserved}:
        return True
    for entry in document.allow:
        if entry.user_id == user_id:
            continue
        names = (entry.user_id, entry.identity)
        if any(name and not is_regex(name) and look_alike_form(name) == form for name in names):
            return True
    return False


class IdentityClaims:
    """The router's identity check against the live ``auth.json``, with a short ban on squatters.

    ``check(user_id, identity)`` answers as :func:`identity_allowed`; when the refused identity is
    someone else's (:func:`belongs_to_another`) the user's keys are refused at the handshake for
    ``ban_seconds`` (see the module docstring). Other refusals are not banned: an identity nobody
    owns is also what libzmq makes of a client that reconnected before its old connection was gone.
    """

    def __init__(self, policy: AuthPolicy, ban_seconds: float = DEFAULT_BAN_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._ban_seconds = ban_seconds
        self._clock = clock
        self._banned: dict[str, float] = {}  # user id -> until
        self.zap_policy = _BanningPolicy(policy, self)
        """The policy to give the ZAP handler: ``auth.json`` plus deny entries for banned keys."""

    def check(self, user_id: str, identity: str) -> bool:
        """True when ``user_id``'s key may use ``identity``; squatting bans the user's keys for a while."""
        document = self._policy.current()
        if identity_allowed(document, user_id, identity):
            return True
        if user_id and belongs_to_another(document, user_id, identity):
            self._banned[user_id] = self._clock() + self._ban_seconds
        return False

    def banned(self) -> list[str]:
        """User ids whose keys are refused at the handshake now."""
        now = self._clock()
        for user_id in [u for u, until in self._banned.items() if until <= now]:
            del self._banned[user_id]
        return sorted(self._banned)


class _BanningPolicy:
    """An :class:`AuthPolicy` view whose document denies the keys of banned users."""

    def __init__(self, policy: AuthPolicy, claims: IdentityClaims) -> None:
        self._policy = policy
        self._claims = claims

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)

    def current(self) -> AuthDocument:
        """The policy in force, with a deny entry for each literal key of a banned user."""
        document = self._policy.current()
        banned = set(self._claims.banned())
        if not banned:
            return document
        extra = [AuthEntry(credentials=e.credentials, user_id=e.user_id, comments="identity claim refused")
                 for e in document.allow
                 if e.user_id in banned and e.credentials and not is_regex(e.credentials)]
        return replace(document, deny=[*document.deny, *extra])
