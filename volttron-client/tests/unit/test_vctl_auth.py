"""``vctl auth`` without a platform: option parsing, IDENTITY.METHOD, known hosts, one-line failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from volttron.client.commands.auth import (
    entry_changes,
    parse_capabilities,
    parse_credentials,
    parse_names,
    split_target,
)
from volttron.client.commands.cli import EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_USAGE, CommandError
from volttron.client.commands.vctl import main
from volttron.utils.keys import decode_key, generate_keypair, to_z85

KEY = generate_keypair().public


def run(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("VOLTTRON_HOME", str(home))
    monkeypatch.delenv("VOLTTRON_VIP_ADDR", raising=False)
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


# -- parsing ---------------------------------------------------------------------------------------

def test_names_and_capabilities() -> None:
    assert parse_names(None, "roles") is None
    assert parse_names("a, b,a", "roles") == ["a", "b"]
    assert parse_names("", "roles") == []
    with pytest.raises(CommandError, match="--roles: empty name"):
        parse_names("a,,b", "roles")
    assert parse_capabilities("x,y") == {"x": None, "y": None}
    assert parse_capabilities('{"edit_config_store": {"identity": "/a.*/"}}') == {
        "edit_config_store": {"identity": "/a.*/"}}
    assert parse_capabilities('["x", {"y": null}]') == {"x": None, "y": None}


@pytest.mark.parametrize("text,message", [
    ('{"x": ', "invalid JSON"),
    ('{"x": 5}', "object of parameters or null"),
    ("[3]", "object of parameters or null"),
])
def test_bad_capabilities(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message) as info:
        parse_capabilities(text)
    assert info.value.exit_code == EXIT_USAGE


def test_credentials_in_any_encoding_become_43_characters() -> None:
    assert parse_credentials(KEY, "CURVE") == KEY
    assert parse_credentials(to_z85(KEY).decode(), "CURVE") == KEY
    assert parse_credentials(decode_key(KEY).hex(), "CURVE") == KEY
    assert parse_credentials("/.*/", "CURVE") == "/.*/"
    assert parse_credentials("user:secret", "PLAIN") == "user:secret"
    with pytest.raises(CommandError, match=r"not a CURVE public key \(10 characters; expected 43") as info:
        parse_credentials("abcdefghij", "CURVE")
    assert info.value.exit_code == EXIT_USAGE


def test_entry_changes_keep_only_given_options() -> None:
    assert entry_changes({"credentials": KEY, "capabilities": "a", "user_id": None, "enabled": None}) == {
        "credentials": KEY, "capabilities": {"a": None}}
    assert entry_changes({"mechanism": "plain", "credentials": "u:p"}) == {"mechanism": "PLAIN",
                                                                          "credentials": "u:p"}
    assert entry_changes({"enabled": False}) == {"enabled": False}


@pytest.mark.parametrize("target,identities,expected", [
    ("listener-0.1_1.add", ["listener-0.1_1", "other"], ("listener-0.1_1", "add")),
    ("agent.health.get_status", ["agent"], ("agent", "health.get_status")),
    ("a.b.m", ["a", "a.b"], ("a.b", "m")),
])
def test_identity_and_method_split_on_known_identities(target, identities, expected) -> None:
    assert split_target(target, identities) == expected


@pytest.mark.parametrize("target", ["unknown.m", "agent", "agent."])
def test_unknown_identity_is_one_error(target: str) -> None:
    with pytest.raises(CommandError, match="no agent identity in auth.json"):
        split_target(target, ["agent"])


# -- commands --------------------------------------------------------------------------------------

def test_known_hosts_are_kept_in_the_local_file(tmp_path: Path, monkeypatch, capsys) -> None:
    home = tmp_path / "home"
    assert run(home, monkeypatch, capsys, "auth", "add-known-host", "--host", "10.0.0.5:22916",
               "--serverkey", to_z85(KEY).decode())[0] == 0
    assert run(home, monkeypatch, capsys, "auth", "add-known-host", "--host", "tcp://h:1",
               "--serverkey", KEY)[0] == 0
    code, out, err = run(home, monkeypatch, capsys, "auth", "list-known-hosts")
    assert code == 0 and f"10.0.0.5:22916  {KEY}" in out
    assert out.splitlines()[0].split() == ["HOST", "SERVERKEY"]  # vctl's table headers are on stdout
    code, out, _ = run(home, monkeypatch, capsys, "--json", "auth", "list-known-hosts")
    assert json.loads(out) == {"10.0.0.5:22916": KEY, "h:1": KEY}
    assert run(home, monkeypatch, capsys, "auth", "remove-known-host", "tcp://10.0.0.5:22916")[0] == 0
    code, _, err = run(home, monkeypatch, capsys, "auth", "remove-known-host", "10.0.0.5:22916")
    assert code == EXIT_ERROR and err.count("\n") == 1 and "is not a known host" in err
    code, _, err = run(home, monkeypatch, capsys, "auth", "add-known-host", "--host", "h:2",
                       "--serverkey", "bad")
    assert code == EXIT_ERROR and err.count("\n") == 1 and "cannot add h:2" in err
    assert json.loads((home / "known_hosts").read_text()) == {"h:1": KEY}


@pytest.mark.parametrize("args", [
    ["auth", "list"],
    ["auth", "add", "--credentials", KEY],
    ["auth", "remove", "0"],
    ["auth", "remote", "list"],
    ["auth", "rpc", "add", "agent.method", "cap"],
    ["auth", "list-roles"],
])
def test_platform_commands_say_the_platform_is_not_running(tmp_path: Path, monkeypatch, capsys,
                                                           args: list[str]) -> None:
    code, _, err = run(tmp_path, monkeypatch, capsys, *args)
    assert code == EXIT_NOT_RUNNING and err.count("\n") == 1 and "VOLTTRON is not running" in err


@pytest.mark.parametrize("args,message", [
    (["auth", "add", "--user-id", "x"], "--credentials is required"),
    (["auth", "add", "--credentials", "short"], "not a CURVE public key"),
    (["auth", "add", "--credentials", KEY, "--add-known-host"], "--add-known-host needs --address"),
    (["auth", "update", "0"], "nothing to change"),
    (["auth", "update", "x", "--comments", "c"], "is not a valid integer"),
    (["auth", "remove"], "Missing argument"),
    (["auth", "remote", "list", "--status", "maybe"], "Invalid value for '--status'"),
    (["auth", "add", "--credentials", KEY, "--mechanism", "KERBEROS"], "Invalid value for '--mechanism'"),
])
def test_bad_options_are_one_line_before_connecting(tmp_path: Path, monkeypatch, capsys, args,
                                                    message) -> None:
    code, _, err = run(tmp_path, monkeypatch, capsys, *args)
    assert code == EXIT_USAGE and err.count("\n") == 1 and message in err, err


def test_help_lists_every_sub_command(tmp_path: Path, monkeypatch, capsys) -> None:
    code, out, _ = run(tmp_path, monkeypatch, capsys, "auth", "--help")
    assert code == 0
    for name in ("add", "list", "update", "remove", "add-role", "update-role", "remove-role", "list-roles",
                 "add-group", "update-group", "remove-group", "list-groups", "add-known-host",
                 "list-known-hosts", "remove-known-host", "remote", "rpc", "keypair", "publickey",
                 "serverkey"):
        assert f"  {name} " in out, name
    code, out, _ = run(tmp_path, monkeypatch, capsys, "auth", "keypair")
    assert code == 0 and set(json.loads(out)) == {"public", "secret"}
