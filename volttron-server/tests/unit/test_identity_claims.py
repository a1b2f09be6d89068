"""Which identities a key may speak as (services/auth/identity_claims.py)."""

from __future__ import annotations

import pytest

from volttron.server.services.auth.authfile import AuthDocument, AuthEntry
from volttron.server.services.auth.identity_claims import identity_allowed


def _document(*entries: AuthEntry) -> AuthDocument:
    return AuthDocument(allow=list(entries))


DOC = _document(
    AuthEntry(credentials="k1", user_id="control.connection", identity="control.connection"),
    AuthEntry(credentials="k2", user_id="listener", identity="listener"),
    AuthEntry(credentials="k3", user_id="3f1c-approved"),
    AuthEntry(credentials="k4", user_id="ops", identity="ops.tool"),
    AuthEntry(credentials="k5", user_id="off", identity="off.agent", enabled=False),
)


@pytest.mark.parametrize(
    "user_id,identity,allowed",
    [
        ("listener", "listener", True),  # its own user id
        ("ops", "ops.tool", True),  # the identity its entry names
        ("ops", "ops", True),  # its user id
        ("listener", "control.connection", False),  # impersonating vctl
        ("3f1c-approved", "control.connection", False),  # free keys cannot take platform identities
        ("3f1c-approved", "platform.control", False),
        ("3f1c-approved", "control", False),  # the 9.x name, which may stop the platform
        ("3f1c-approved", "listener", False),  # ... nor another agent's identity
        ("3f1c-approved", "ops.tool", False),
        ("3f1c-approved", "my.script", True),  # ... but any free one
        ("listener", "my.script", False),  # a key bound to an identity stays on it
        ("off", "off.agent", True),  # a disabled entry never passes ZAP; nothing else claims the name
        ("", "anything", False),  # no user id: not authenticated by ZAP
    ],
)
def test_identity_claims(user_id: str, identity: str, allowed: bool) -> None:
    assert identity_allowed(DOC, user_id, identity) is allowed


LINKED = _document(
    AuthEntry(credentials="kb", user_id="B", identity="/instance\\.A\\..+/"),  # vctl auth add-platform B
    AuthEntry(credentials="k3", user_id="3f1c-approved"),
)


@pytest.mark.parametrize(
    "user_id,identity,allowed",
    [
        ("B", "instance.A.0.8123", True),  # the link, as links to A are named
        ("B", "platform.driver", False),  # squatting an agent not yet started
        ("B", "weather.station", False),
        ("B", "instance.C.1", False),  # a link to another platform
        ("B", "B", False),  # not even its own user id: a link key speaks only as the link
        ("3f1c-approved", "B:ops.agent", False),  # a remote principal is never a free identity
        ("3f1c-approved", "my.script", True),
    ],
)
def test_a_link_key_speaks_only_as_the_link(user_id: str, identity: str, allowed: bool) -> None:
    assert identity_allowed(LINKED, user_id, identity) is allowed


@pytest.mark.parametrize(
    "identity",
    ["Platform.Control", "platform.control ", "control.connection\x00", " platform.auth",
     "platform\u200b.control".encode().decode("iso-8859-1"),  # zero-width space, as the router reads it
     "\uff50latform.control".encode().decode("iso-8859-1"),  # fullwidth p
     "Listener", "OPS.TOOL"],
)
def test_free_keys_cannot_take_look_alikes(identity: str) -> None:
    assert identity_allowed(DOC, "3f1c-approved", identity) is False


class _Policy:
    """The part of AuthPolicy the claims use."""

    def __init__(self, document: AuthDocument) -> None:
        self.document = document
        self.path = "auth.json"

    def current(self) -> AuthDocument:
        return self.document


def test_a_key_squatting_another_identity_is_banned_at_the_handshake_for_a_while() -> None:
    from volttron.server.services.auth.identity_claims import IdentityClaims

    now = [0.0]
    claims = IdentityClaims(_Policy(DOC), ban_seconds=30, clock=lambda: now[0])
    assert claims.zap_policy.current().deny == []
    assert claims.check("listener", "listener")
    assert not claims.check("listener", "x7\x00\x01garbled")  # nobody's name: refused, not banned
    assert claims.banned() == []
    assert not claims.check("listener", "control.connection")  # squatting: banned
    assert claims.banned() == ["listener"]
    deny = claims.zap_policy.current().deny
    assert [(e.credentials, e.user_id) for e in deny] == [("k2", "listener")]
    assert claims.zap_policy.path == "auth.json"  # the rest of the policy passes through
    now[0] = 31.0
    assert claims.banned() == [] and claims.zap_policy.current().deny == []
