"""Identity naming rule, normalisation, fully qualified names and the wire checks."""

from __future__ import annotations

import pytest

from volttron.utils.errors import IdentityError, VolttronError
from volttron.utils.identities import check_identity, get_fq_identity, is_valid_identity, normalize_identity


@pytest.mark.parametrize("identity", ["platform.control", "listeneragent-3.3_1", "A", "a.b-c_d.9", "..."])
def test_valid_identities(identity: str) -> None:
    assert is_valid_identity(identity)


@pytest.mark.parametrize("identity", ["", "has space", "slash/x", "new\nline", "trail\n", "caf\u00e9", "a:b",
                                      None, b"bytes", 5])
def test_invalid_identities(identity) -> None:
    assert not is_valid_identity(identity)


@pytest.mark.parametrize(
    "raw,normalized",
    [("my agent", "my_agent"), ("a/b:c", "a_b_c"), ("caf\u00e9", "caf_"), ("ok.id-1_x", "ok.id-1_x"),
     ("", "")],
)
def test_normalize_identity(raw: str, normalized: str) -> None:
    assert normalize_identity(raw) == normalized
    if raw:
        assert is_valid_identity(normalize_identity(raw))


def test_fq_identity() -> None:
    assert get_fq_identity("listener", "volttron1") == "volttron1.listener"
    with pytest.raises(IdentityError):
        get_fq_identity("", "volttron1")
    with pytest.raises(IdentityError):
        get_fq_identity("listener", "")


@pytest.mark.parametrize("identity,text", [("agent", "agent"), (b"agent", "agent"), ("x" * 255, "x" * 255),
                                           ("caf\u00e9", "caf\u00e9"), (b"caf\xe9", "caf\u00e9"),
                                           ("with space", "with space")])
def test_check_identity_accepts(identity, text: str) -> None:
    assert check_identity(identity) == text


@pytest.mark.parametrize(
    "identity,reason",
    [("", "empty"), (b"", "empty"), ("x" * 256, "256 bytes"), (b"y" * 300, "300 bytes"),
     ("\x00abc", "NUL"), (b"\x00\x01", "NUL"), ("\u20ac", "Latin-1"), (None, "not NoneType"), (7, "not int")],
)
def test_check_identity_rejects(identity, reason: str) -> None:
    with pytest.raises(IdentityError, match=reason) as info:
        check_identity(identity)
    assert isinstance(info.value, VolttronError)


@pytest.mark.parametrize("identity", ["a", "platform.control", "listeneragent-3.3_1", "x..y", "x" * 200])
def test_agent_identities_of_the_naming_rule_are_accepted(identity: str) -> None:
    from volttron.utils.identities import check_agent_identity

    assert check_agent_identity(identity) == identity


@pytest.mark.parametrize("identity,reason", [
    (".", "must not start with '.'"), ("..", "must not start with '.'"), (".x", "must not start with '.'"),
    ("a b", "only letters"), ("../etc", "only letters"), ("", "only letters"), (None, "only letters"),
    ("x" * 201, "longer than 200"),
])
def test_agent_identities_that_name_no_usable_file_are_refused(identity: object, reason: str) -> None:
    from volttron.utils.errors import IdentityError
    from volttron.utils.identities import check_agent_identity

    with pytest.raises(IdentityError, match=reason):
        check_agent_identity(identity)
