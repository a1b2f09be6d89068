"""Refused CURVE keys: recorded by the ZAP handler, bounded, and decided about by an administrator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zmq

from volttron.server.services.auth.authfile import AuthDocument, AuthEntry, save_auth_file
from volttron.server.services.auth.pending import CredentialRequests, Refusal, pending_path
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.auth.zap_zmq import ZapHandler
from volttron.utils.errors import ConfigError, CorruptFileError
from volttron.utils.keys import decode_key, generate_keypair


def refusal(key: str, seen: str = "2024-01-01T00:00:00.000000+00:00", count: int = 1) -> Refusal:
    return Refusal("vip", "127.0.0.1", "CURVE", key, count, seen)


def test_refusals_are_counted_per_key(tmp_path: Path) -> None:
    requests = CredentialRequests(tmp_path / "pending.json")
    key = generate_keypair().public
    requests.add_refusals([refusal(key)])
    requests.add_refusals([refusal(key, "2024-01-02T00:00:00.000000+00:00", count=3)])
    [record] = requests.records("pending")
    assert record.credentials == key and record.retries == 4
    assert record.last_seen.startswith("2024-01-02") and record.first_seen.startswith("2024-01-01")
    assert requests.find(record.user_id) == record
    assert oct((tmp_path / "pending.json").stat().st_mode & 0o777) == "0o600"


def test_decisions_and_a_refused_approved_key_is_pending_again(tmp_path: Path) -> None:
    requests = CredentialRequests(tmp_path / "pending.json")
    key = generate_keypair().public
    requests.add_refusals([refusal(key)])
    user_id = requests.records()[0].user_id
    assert requests.set_status(user_id, "approved").status == "approved"
    assert requests.records("pending") == []
    requests.add_refusals([refusal(key)])  # its allow entry was removed since
    assert [r.user_id for r in requests.records("pending")] == [user_id]
    requests.set_status(user_id, "denied")
    requests.add_refusals([refusal(key)])
    assert requests.records("denied")[0].retries == 3, "a denied key stays denied"
    assert requests.delete(user_id).user_id == user_id and requests.records() == []
    for call in (lambda: requests.set_status("nope", "approved"), lambda: requests.delete("nope")):
        with pytest.raises(ConfigError, match="vctl auth remote list"):
            call()
    with pytest.raises(ConfigError, match="unknown status"):
        requests.records("maybe")


def test_the_limit_evicts_pending_records_seen_longest_ago(tmp_path: Path) -> None:
    requests = CredentialRequests(tmp_path / "pending.json", limit=3)
    keys = [generate_keypair().public for _ in range(6)]
    requests.add_refusals([refusal(keys[0], "2024-01-01T00:00:00.000000+00:00")])
    decided = requests.records()[0].user_id
    requests.set_status(decided, "denied")
    for i, key in enumerate(keys[1:], start=2):
        requests.add_refusals([refusal(key, f"2024-01-0{i}T00:00:00.000000+00:00")])
    records = requests.records()
    assert len(records) == 3
    assert decided in {r.user_id for r in records}, "the administrator's decision is kept"
    assert {r.credentials for r in records if r.status == "pending"} == {keys[4], keys[5]}


def test_corrupt_records_are_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "pending.json"
    path.write_text("{not json")
    requests = CredentialRequests(path)
    with pytest.raises(CorruptFileError):
        requests.records()
    assert not path.exists() and list(tmp_path.glob("pending.json.corrupt*"))
    assert requests.records() == []


def test_zap_handler_records_refused_curve_keys_within_a_bound(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    known = generate_keypair().public
    save_auth_file(auth, AuthDocument(allow=[AuthEntry(credentials=known, user_id="known")]))
    handler = ZapHandler(zmq.Context.instance(), AuthPolicy(auth),
                         CredentialRequests(pending_path(auth), limit=2))

    def ask(key: str, mechanism: bytes = b"CURVE") -> bytes:
        credentials = [decode_key(key)] if mechanism == b"CURVE" else []
        request = [b"1.0", b"1", b"vip", b"10.0.0.9", b"", mechanism, *credentials]
        return handler.handle([b"peer", b"", *request])[4]

    strangers = [generate_keypair().public for _ in range(3)]
    assert ask(known) == b"200"
    assert [ask(strangers[0]), ask(strangers[0]), ask(strangers[1]), ask(strangers[2])] == [b"400"] * 4
    assert ask(strangers[0], b"NULL") == b"400"  # not a key: not recorded
    assert handler.unrecorded == 1
    handler.flush()
    data = json.loads(pending_path(auth).read_text())
    retries = {r["credentials"]: r["retries"] for r in data["records"]}
    assert retries == {strangers[0]: 2, strangers[1]: 1}
    assert all(r["address"] == "10.0.0.9" and r["status"] == "pending" for r in data["records"])
    assert ask(strangers[2]) == b"400"  # room again after the flush; the file keeps its own bound
    handler.flush()
    kept = {r.credentials for r in CredentialRequests(pending_path(auth)).records()}
    assert kept == {strangers[1], strangers[2]}
    assert handler.statistics()["refusals_not_recorded"] == 1
