"""The ZAP decision as a plain function of the request and auth.json (reference §8.2, §8.4)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from volttron.server.services.auth.authfile import (
    AuthDocument,
    AuthEntry,
    ensure_entries,
    load_auth_file,
    parse_auth_document,
    save_auth_file,
)
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.auth.zap import ZapRequest, decide, parse_request, reply_frames
from volttron.utils.errors import ConfigError, CorruptFileError, FrameError
from volttron.utils.keys import decode_key, generate_keypair

ALICE = generate_keypair()
BOB = generate_keypair()


def curve_request(keys=ALICE, domain: str = "vip", address: str = "127.0.0.1") -> ZapRequest:
    return ZapRequest(b"req", domain, address, b"alice", "CURVE", (decode_key(keys.public),))


def entry(**fields) -> AuthEntry:
    fields.setdefault("credentials", ALICE.public)
    return AuthEntry.from_dict(fields)


def test_parse_request_and_reply() -> None:
    frames = [b"1.0", b"7", b"vip", b"127.0.0.1", b"alice", b"CURVE", decode_key(ALICE.public)]
    request = parse_request(frames)
    assert request.credential_text() == ALICE.public and request.mechanism == "CURVE"
    decision = decide(request, [entry(user_id="alice-user")])
    assert decision.accepted and decision.user_id == "alice-user"
    assert reply_frames(request.request_id, decision) == [b"1.0", b"7", b"200", b"OK", b"alice-user", b""]
    refused = decide(request, [])
    assert reply_frames(b"7", refused) == [b"1.0", b"7", b"400", b"FAIL", b"", b""]
    assert ALICE.public in refused.reason


@pytest.mark.parametrize("frames", [[b"1.0", b"7"], [b"2.0", b"7", b"vip", b"a", b"i", b"NULL"]])
def test_malformed_requests(frames: list[bytes]) -> None:
    with pytest.raises(FrameError):
        parse_request(frames)


@pytest.mark.parametrize("fields,accepted", [
    ({}, True),
    ({"credentials": BOB.public}, False),
    ({"credentials": "/.*/"}, True),
    ({"credentials": "/^x.*/"}, ALICE.public.startswith("x")),
    ({"domain": "vip"}, True),
    ({"domain": "other"}, False),
    ({"domain": "/v.p/"}, True),
    ({"address": "127.0.0.1"}, True),
    ({"address": "10.0.0.1"}, False),
    ({"address": "/127\\.0\\.0\\.[0-9]+/"}, True),
    ({"address": ["10.0.0.1", "127.0.0.1"]}, True),
    ({"address": "/127/"}, False),  # a regex must match the whole value
    ({"enabled": False}, False),
    ({"mechanism": "NULL", "credentials": None}, False),
])
def test_allow_entry_matching(fields: dict, accepted: bool) -> None:
    assert decide(curve_request(), [entry(**fields)]).accepted is accepted


def test_literal_credentials_win_over_regex_and_deny_wins() -> None:
    entries = [entry(credentials="/.*/", user_id="anyone"), entry(user_id="alice")]
    assert decide(curve_request(), entries).user_id == "alice"
    assert decide(curve_request(BOB), entries).user_id == "anyone"
    assert not decide(curve_request(), entries, deny=[entry(user_id="banned")]).accepted


def test_null_and_plain_mechanisms() -> None:
    null = ZapRequest(b"r", "vip", "127.0.0.1", b"", "NULL", ())
    assert decide(null, [entry(mechanism="NULL", credentials=None, address="127.0.0.1")]).accepted
    assert not decide(null, [entry()]).accepted
    plain = ZapRequest(b"r", "vip", "h", b"", "PLAIN", (b"user", b"pw"))
    assert decide(plain, [entry(mechanism="PLAIN", credentials="user:pw")]).accepted
    assert not decide(plain, [entry(mechanism="PLAIN", credentials="user:other")]).accepted


def test_unreadable_curve_key_is_refused() -> None:
    request = ZapRequest(b"r", "vip", "h", b"", "CURVE", (b"short",))
    assert not decide(request, [entry(credentials="/.*/")]).accepted


@pytest.mark.parametrize("bad", [
    {"credentials": "tooshort"}, {"mechanism": "KERBEROS"}, {"address": 5}, {"enabled": "yes"},
    {"capabilities": 5}, {"groups": "admin"}, "not an object",
])
def test_bad_entries_are_rejected(bad) -> None:
    with pytest.raises(ConfigError):
        AuthEntry.from_dict(bad if isinstance(bad, str) else {"credentials": ALICE.public, **bad})


def test_file_with_comments_roles_and_a_bad_entry(caplog) -> None:
    text = """{
      // the administrator's notes
      "allow": [
        {"credentials": "ALICE", "user_id": "alice", "roles": ["admin"],
         "capabilities": ["x", {"y": {"p": 1}}]},
        {"credentials": "nonsense", "user_id": "broken"}  /* skipped with a warning */
      ],
      "roles": {"admin": ["edit_config_store", "allow_auth_modifications"]},
      "groups": {}
    }""".replace("ALICE", ALICE.public)
    document = parse_auth_document(text)
    assert [e.user_id for e in document.allow] == ["alice"]
    assert "skipping allow entry 1" in caplog.text
    assert document.capabilities_by_user()["alice"] == {
        "edit_config_store": None, "allow_auth_modifications": None, "x": None, "y": {"p": 1}}


def test_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    document = AuthDocument(allow=[entry(user_id="alice", identity="alice")])
    save_auth_file(path, document)
    assert os.stat(path).st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert list(data["allow"][0]) == ["domain", "address", "mechanism", "credentials", "groups", "roles",
                                      "capabilities", "rpc_method_authorizations", "comments", "user_id",
                                      "identity", "enabled"]
    assert load_auth_file(path).allow[0].to_dict() == document.allow[0].to_dict()


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"allow": 5}', b"\xff\xfe"])
def test_corrupt_file_is_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "auth.json"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError) as info:
        load_auth_file(path)
    assert not path.exists()
    kept = Path(info.value.kept_as)
    assert kept.name.startswith("auth.json.corrupt-") and kept.read_bytes() == content


def test_missing_file_is_an_empty_policy(tmp_path: Path) -> None:
    assert load_auth_file(tmp_path / "auth.json").allow == []


def test_ensure_entries_keeps_other_entries_and_admin_edits(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    save_auth_file(path, AuthDocument(allow=[
        entry(user_id="someone"),
        entry(user_id="platform", credentials=BOB.public, comments="admin note", address="/.*/",
              enabled=False),
    ]))
    ensure_entries(path, [AuthEntry(credentials=ALICE.public, user_id="platform", identity="platform",
                                    capabilities={"c": None})])
    document = load_auth_file(path)
    platform = document.find("platform")
    assert platform is not None and platform.credentials == ALICE.public and platform.enabled
    assert platform.comments == "admin note" and platform.address == "/.*/"
    assert document.find("someone") is not None
    before = path.stat().st_mtime_ns, path.stat().st_ino
    ensure_entries(path, [AuthEntry(credentials=ALICE.public, user_id="platform", identity="platform",
                                    capabilities={"c": None})])
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before, "no change, no write"


def test_policy_rereads_changes_and_keeps_last_good_on_corruption(tmp_path: Path, caplog) -> None:
    path = tmp_path / "auth.json"
    save_auth_file(path, AuthDocument(allow=[entry(user_id="alice")]))
    policy = AuthPolicy(path)
    assert decide(curve_request(), policy.current().allow).accepted
    assert not decide(curve_request(BOB), policy.current().allow).accepted
    ensure_entries(path, [entry(user_id="bob", credentials=BOB.public)])
    assert decide(curve_request(BOB), policy.current().allow).accepted
    assert policy.capabilities().keys() == {"alice", "bob"}
    path.write_text("{broken")
    assert decide(curve_request(BOB), policy.current().allow).accepted
    assert "auth policy not changed" in caplog.text
    assert list(tmp_path.glob("auth.json.corrupt-*"))
    ensure_entries(path, [entry(user_id="carol")])  # a new, valid file is read again
    assert [e.user_id for e in policy.current().allow] == ["carol"]


def test_zap_handler_answers_with_envelope(tmp_path: Path) -> None:
    import zmq

    from volttron.server.services.auth.zap_zmq import ZapHandler

    path = tmp_path / "auth.json"
    save_auth_file(path, AuthDocument(allow=[entry(user_id="alice")]))
    handler = ZapHandler(zmq.Context.instance(), AuthPolicy(path))
    request = [b"1.0", b"9", b"vip", b"127.0.0.1", b"alice", b"CURVE"]
    assert handler.handle([b"peer-id", b"", *request, decode_key(ALICE.public)]) == [
        b"peer-id", b"", b"1.0", b"9", b"200", b"OK", b"alice", b""]
    assert handler.handle([b"peer-id", b"", *request, decode_key(BOB.public)])[4:6] == [b"400", b"FAIL"]
    assert handler.handle([b"peer-id", b"", b"1.0"])[4] == b"400"
    assert handler.handle([b"no-delimiter"]) is None
    assert handler.statistics() == {"accepted": 1, "refused": 1, "auth_reloads": 0,
                                    "refusals_not_recorded": 0}
