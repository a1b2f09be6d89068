"""Changes to auth.json as the auth service makes them, the file lock, and the admin capability check."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from volttron.server.services.auth import edits
from volttron.server.services.auth.access import require_capability
from volttron.server.services.auth.authfile import (
    AuthDocument,
    AuthEntry,
    edit_auth_file,
    ensure_entries,
    load_auth_file,
    lock_path,
    save_auth_file,
)
from volttron.utils.errors import ConfigError
from volttron.utils.files import FileLock
from volttron.utils.jsonrpc import Unauthorized
from volttron.utils.keys import generate_keypair

ALICE = generate_keypair().public
BOB = generate_keypair().public


def doc(*entries: AuthEntry) -> AuthDocument:
    return AuthDocument(allow=list(entries))


# -- entries from requests -------------------------------------------------------------------------

@pytest.mark.parametrize("data,message", [
    ({"credentials": "short", "user_id": "x"}, "43 characters"),
    ({"credentials": ALICE, "colour": "red"}, "unknown auth entry fields: colour"),
    ({"user_id": "x"}, "needs credentials"),
    ([1, 2], "JSON object"),
    ({"credentials": ALICE, "mechanism": "KERBEROS"}, "unknown mechanism"),
    ({"credentials": ALICE, "capabilities": 5}, "capabilities must be"),
    ({"credentials": ALICE, "rpc_method_authorizations": {"m": "cap"}}, "list of text"),
    ({"credentials": ALICE, "enabled": "yes"}, "enabled must be"),
])
def test_bad_entries_are_refused_with_a_reason(data, message: str) -> None:
    with pytest.raises(edits.AuthEditError, match=message):
        edits.entry_from_request(data)


def test_entry_from_request_accepts_every_field_and_capability_forms() -> None:
    entry = edits.entry_from_request({
        "credentials": ALICE, "user_id": "a", "identity": "a", "groups": ["g"], "roles": ["r"],
        "capabilities": ["x", {"edit_config_store": {"identity": "/a.*/"}}], "comments": "c",
        "rpc_method_authorizations": {"m": ["x"]}, "enabled": False, "domain": "vip", "address": None,
        "mechanism": "curve"})
    assert entry.capabilities == {"x": None, "edit_config_store": {"identity": "/a.*/"}}
    assert entry.mechanism == "CURVE" and not entry.enabled
    assert edits.entry_from_request({"credentials": "/.*/"}).user_id  # a uuid4 by default


# -- adding, updating, removing --------------------------------------------------------------------

def test_add_refuses_duplicates_and_overwrite_replaces() -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="alice"))
    with pytest.raises(edits.AuthEditError, match="index 0 already has the user_id 'alice'"):
        edits.add_entry(document, AuthEntry(credentials=BOB, user_id="alice"))
    with pytest.raises(edits.AuthEditError, match="already describes these credentials"):
        edits.add_entry(document, AuthEntry(credentials=ALICE, user_id="other"))
    assert edits.add_entry(document, AuthEntry(credentials=ALICE, user_id="new"), overwrite=True) == 0
    assert [e.user_id for e in document.allow] == ["new"]
    assert edits.add_entry(document, AuthEntry(credentials=BOB, user_id="bob")) == 1
    assert edits.add_entry(document, AuthEntry(credentials=BOB, user_id="bob"), is_allow=False) == 0


@pytest.mark.parametrize("index,message", [
    (5, r"no allow entry at index 5 \(valid: 0-1\)"),
    (-1, "no allow entry at index -1"),
    (True, "whole number"),
    ("0", "whole number"),
])
def test_unknown_index_is_one_clear_error(index, message: str) -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="a"), AuthEntry(credentials=BOB, user_id="b"))
    with pytest.raises(edits.AuthEditError, match=message):
        edits.update_entry(document, index, AuthEntry(credentials=ALICE, user_id="c"))
    with pytest.raises(edits.AuthEditError, match=message):
        edits.remove_entries(document, [0, index])
    assert len(document.allow) == 2, "nothing is removed when one index is bad"


def test_update_and_remove() -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="a"), AuthEntry(credentials=BOB, user_id="b"))
    with pytest.raises(edits.AuthEditError, match="already has the user_id 'b'"):
        edits.update_entry(document, 0, AuthEntry(credentials=ALICE, user_id="b"))
    edits.update_entry(document, 0, AuthEntry(credentials=ALICE, user_id="a2"))
    assert document.allow[0].user_id == "a2"
    with pytest.raises(edits.AuthEditError, match="the list is empty"):
        edits.remove_entries(document, [0], is_allow=False)
    with pytest.raises(edits.AuthEditError, match="no entry index"):
        edits.remove_entries(document, [])
    removed = edits.remove_entries(document, [1, 0, 1])
    assert [e.user_id for e in removed] == ["a2", "b"] and document.allow == []


def test_find_and_remove_by_credentials() -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="a"), AuthEntry(credentials="/.*/", user_id="any"))
    assert [e.user_id for e in edits.find_by_credentials(document, ALICE)] == ["a"]
    assert edits.remove_by_credentials(document, BOB) == 0
    assert edits.remove_by_credentials(document, "/.*/") == 1 and len(document.allow) == 1


@pytest.mark.parametrize("value,message", [
    ([], "must map names"),
    ({"": ["r"]}, "non-empty"),
    ({"g": "r"}, "list of non-empty names"),
    ({"g": ["r", 3]}, "list of non-empty names"),
])
def test_groups_and_roles_are_validated(value, message: str) -> None:
    document = doc()
    with pytest.raises(edits.AuthEditError, match=message):
        edits.set_groups(document, value)
    with pytest.raises(edits.AuthEditError, match=message):
        edits.set_roles(document, value)


def test_roles_and_groups_expand_into_capabilities() -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="a", groups=["admins"]),
                   AuthEntry(credentials=BOB, user_id="b", roles=["reader"], capabilities={"own": None}))
    edits.set_roles(document, {"reader": ["read"], "writer": ["write", "write"]})
    edits.set_groups(document, {"admins": ["reader", "writer"]})
    assert document.roles["writer"] == ["write"]
    assert document.capabilities_by_user() == {"a": {"read": None, "write": None},
                                               "b": {"read": None, "own": None}}


# -- RPC method authorizations ---------------------------------------------------------------------

def test_rpc_authorizations_add_delete_and_lift() -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="u-1", identity="agent.a"))
    assert edits.add_rpc_authorizations(document, "agent.a", "run", ["x", "y"]) == ["x", "y"]
    assert edits.add_rpc_authorizations(document, "agent.a", "run", "z") == ["x", "y", "z"]
    assert edits.delete_rpc_authorizations(document, "agent.a", "run", ["x", "z"]) == ["y"]
    with pytest.raises(edits.AuthEditError, match=r"does not require q \(it requires y\)"):
        edits.delete_rpc_authorizations(document, "agent.a", "run", ["q"])
    assert edits.delete_rpc_authorizations(document, "agent.a", "run", ["y"]) == [""]  # no restriction
    assert edits.add_rpc_authorizations(document, "agent.a", "run", ["w"]) == ["w"]
    with pytest.raises(edits.AuthEditError, match="no allow entry for the identity 'nobody'"):
        edits.add_rpc_authorizations(document, "nobody", "run", ["x"])
    with pytest.raises(edits.AuthEditError, match="no capability given"):
        edits.add_rpc_authorizations(document, "agent.a", "run", [])
    with pytest.raises(edits.AuthEditError, match="has no recorded authorizations"):
        edits.delete_rpc_authorizations(document, "agent.a", "other", ["x"])


def test_merge_keeps_the_administrators_choice() -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="agent.a", identity="agent.a",
                             rpc_method_authorizations={"run": ["admin_said"]}))
    declared = {"run": ["code_said"], "new": ["n"], "shut": []}
    merged = edits.merge_rpc_authorizations(document, "agent.a", declared)
    assert merged == {"run": ["admin_said"], "new": ["n"], "shut": []}
    assert edits.merge_rpc_authorizations(document, "unknown", {"run": []}) is None
    with pytest.raises(edits.AuthEditError, match="must be a list"):
        edits.merge_rpc_authorizations(document, "agent.a", {"run": "x"})


# -- the file and its lock -------------------------------------------------------------------------

def test_edit_writes_only_changes_and_nothing_on_error(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    with edit_auth_file(path) as document:
        document.allow.append(AuthEntry(credentials=ALICE, user_id="a"))
    first = path.stat()
    assert oct(first.st_mode & 0o777) == "0o600"
    with edit_auth_file(path):
        pass
    assert path.stat().st_ino == first.st_ino, "an unchanged document is not rewritten"
    with pytest.raises(edits.AuthEditError), edit_auth_file(path) as document:
        document.allow.clear()
        raise edits.AuthEditError("refused halfway")
    assert [e.user_id for e in load_auth_file(path).allow] == ["a"]


def test_writers_wait_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    save_auth_file(path, doc())
    holder = FileLock(lock_path(path))
    assert holder.acquire()
    with pytest.raises(ConfigError, match="stayed locked"), edit_auth_file(path, timeout=0.1):
        pass
    done = threading.Event()

    def write() -> None:
        ensure_entries(path, [AuthEntry(credentials=ALICE, user_id="late")])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert not done.wait(0.3), "ensure_entries wrote while another writer held the lock"
    holder.release()
    assert done.wait(10)
    thread.join(10)
    assert load_auth_file(path).find("late") is not None


# -- the admin-method capability check -------------------------------------------------------------

def test_require_capability() -> None:
    admin = {"allow_auth_modifications": None}
    document = doc(AuthEntry(credentials=ALICE, user_id="admin", capabilities=admin),
                   AuthEntry(credentials=BOB, user_id="via.role", roles=["auth-admin"]),
                   AuthEntry(credentials="/x.*/", user_id="off", enabled=False,
                             capabilities={"allow_auth_modifications": None}),
                   AuthEntry(credentials="/y.*/", user_id="plain"))
    document.roles = {"auth-admin": ["allow_auth_modifications"]}
    require_capability(document, "admin", "allow_auth_modifications")
    require_capability(document, "via.role", "allow_auth_modifications")
    for user in ("off", "plain", "stranger", "", None):
        with pytest.raises(Unauthorized) as info:
            require_capability(document, user, "allow_auth_modifications")
        assert info.value.code == -32001


def test_added_capabilities_join_what_the_code_requires() -> None:
    document = doc(AuthEntry(credentials=ALICE, user_id="agent.a", identity="agent.a"))
    assert edits.add_rpc_authorizations(document, "agent.a", "run", ["extra"], in_code=["from_code"]) == [
        "from_code", "extra"]
    assert edits.add_rpc_authorizations(document, "agent.a", "run", ["more"], in_code=["ignored"]) == [
        "from_code", "extra", "more"]


# -- bounds on what one entry and the file may hold --------------------------------------------------

def test_a_self_report_is_bounded_in_methods_names_and_bytes() -> None:
    entry = AuthEntry(credentials=ALICE, user_id="agent", identity="agent")
    document = doc(entry)
    too_many = {f"m{i}": ["c"] for i in range(edits.MAX_METHODS_PER_ENTRY + 1)}
    with pytest.raises(edits.AuthEditError, match="at most 1000 per entry"):
        edits.merge_rpc_authorizations(document, "agent", too_many)
    with pytest.raises(edits.AuthEditError, match="method name is at most 200"):
        edits.merge_rpc_authorizations(document, "agent", {"m" * 201: ["c"]})
    with pytest.raises(edits.AuthEditError, match="at most 32"):
        edits.merge_rpc_authorizations(document, "agent", {"m": [f"c{i}" for i in range(33)]})
    bulky = {f"m{i:04d}" + "x" * 150: ["c" * 150] for i in range(300)}
    with pytest.raises(edits.AuthEditError, match="bytes, at most 65536"):
        edits.merge_rpc_authorizations(document, "agent", bulky)
    assert edits.merge_rpc_authorizations(document, "agent", {"run": ["can_run"]}) == {"run": ["can_run"]}


def test_entries_with_identities_that_name_no_usable_file_are_refused() -> None:
    for identity in (".", "..", ".x"):
        with pytest.raises(edits.AuthEditError, match="must not start with '.'"):
            edits.entry_from_request({"credentials": ALICE, "user_id": "u", "identity": identity})


def test_auth_json_is_never_written_beyond_its_bound(tmp_path: Path) -> None:
    from volttron.server.services.auth.authfile import MAX_AUTH_FILE_BYTES

    path = tmp_path / "auth.json"
    save_auth_file(path, doc(AuthEntry(credentials=ALICE, user_id="a")))
    before = path.read_bytes()
    huge = doc(*[AuthEntry(credentials=ALICE, user_id=f"u{i}", comments="x" * 4000)
                 for i in range(MAX_AUTH_FILE_BYTES // 4000 + 1)])
    with pytest.raises(ConfigError, match="more than the 4194304 allowed"):
        save_auth_file(path, huge)
    assert path.read_bytes() == before


def test_the_capability_table_an_agent_sees() -> None:
    from volttron.server.services.auth.access import may_read_policy, visible_capabilities

    agent = AuthEntry(credentials=ALICE, user_id="agent", capabilities={"mine": None},
                      rpc_method_authorizations={"run": ["can_run"], "open": [""]})
    reader = AuthEntry(credentials=BOB, user_id="reader", capabilities={"read_auth_file": None})
    caller = AuthEntry(credentials="/.*/", user_id="caller",
                       capabilities={"can_run": {"x": 1}, "secret": None, "sync_agent_config": None})
    document = doc(agent, reader, caller)
    table = document.capabilities_by_user()
    assert may_read_policy(document, "reader") and not may_read_policy(document, "agent")
    assert may_read_policy(document, "platform.control")  # the platform's own services
    assert visible_capabilities(document, "reader", table) == table
    assert visible_capabilities(document, "agent", table) == {
        "agent": {"mine": None},
        "caller": {"can_run": {"x": 1}, "sync_agent_config": None},  # what its checks need, no more
    }
    assert visible_capabilities(document, "stranger", table) == {"caller": {"sync_agent_config": None}}
