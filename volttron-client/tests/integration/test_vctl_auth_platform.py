"""``vctl auth`` against a real platform: entries, roles and groups, refused keys, method authorizations.

vctl runs in this process (``main([...])``), so agents of this process keep running meanwhile; what
it changes is checked by its effect (an agent connects, a call is refused) as well as by its output.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from volttron.client.commands.cli import EXIT_ERROR, EXIT_REMOTE
from volttron.client.commands.vctl import main
from volttron.client.runner import build_agent
from volttron.client.vip.agent import RPC, Agent, ConnectError, Unauthorized
from volttron.utils.jsonrpc import UNAUTHORIZED
from volttron.utils.keys import KeyPair, generate_keypair

pytestmark = pytest.mark.integration


class Guarded(Agent):
    @RPC.export
    @RPC.allow("can_add")
    def add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture
def vctl(platform, monkeypatch, capsys) -> Any:
    """``vctl(*args)`` -> (exit code, stdout, stderr) against the (started) ``platform``."""
    monkeypatch.setenv("VOLTTRON_HOME", str(platform.home))
    monkeypatch.delenv("VOLTTRON_VIP_ADDR", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["-t", "20", *args])
        out, err = capsys.readouterr()
        return info.value.code, out, err

    return run


def ok(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert code == 0, f"vctl failed ({code}): {err}"
    return out


def one_line_error(result: tuple[int, str, str], code: int, text: str) -> None:
    assert result[0] == code, result
    assert result[2].count("\n") == 1 and text in result[2], result[2]


def connect(platform: Any, identity: str, keys: KeyPair, agent_class: type[Agent] = Agent,
            timeout: float = 10) -> Agent:
    agent = build_agent(address=platform.ipc_address, identity=identity, publickey=keys.public,
                        secretkey=keys.secret, serverkey=platform.serverkey, timeout=timeout,
                        volttron_home=str(platform.home), agent_class=agent_class, enable_auth=True)
    platform.observers.append(agent)
    return agent


def allow_list(vctl: Any) -> list[dict[str, Any]]:
    return json.loads(ok(vctl("--json", "auth", "list")))


def test_entries_add_list_update_remove(vctl, platform) -> None:
    keys = generate_keypair()
    out = ok(vctl("auth", "add", "--credentials", keys.public, "--user-id", "agent.one", "--identity",
                  "agent.one", "--capabilities", "a,b", "--roles", "r1", "--comments", "by vctl"))
    index = int(out.split()[-1])
    assert f"INDEX: {index}" in ok(vctl("auth", "list"))
    entry = allow_list(vctl)[index]
    assert entry["user_id"] == "agent.one" and entry["capabilities"] == {"a": None, "b": None}
    assert entry["roles"] == ["r1"] and entry["credentials"] == keys.public and entry["enabled"]
    connect(platform, "agent.one", keys).core.stop(timeout=5)  # the new entry lets it in

    own_store = '{"edit_config_store": {"identity": "agent.one"}}'
    ok(vctl("auth", "update", str(index), "--capabilities", own_store, "--disabled"))
    entry = allow_list(vctl)[index]
    assert entry["capabilities"] == {"edit_config_store": {"identity": "agent.one"}} and not entry["enabled"]
    assert entry["comments"] == "by vctl", "options not given keep their value"
    with pytest.raises(ConnectError):
        connect(platform, "agent.one", keys, timeout=3)  # a disabled entry lets nobody in

    one_line_error(vctl("auth", "add", "--credentials", generate_keypair().public, "--user-id", "agent.one"),
                   EXIT_REMOTE, "already has the user_id 'agent.one'")
    one_line_error(vctl("auth", "update", "999", "--comments", "x"), EXIT_ERROR,
                   "no allow entry at index 999")
    count = len(allow_list(vctl))
    one_line_error(vctl("auth", "remove", str(index), "999"), EXIT_REMOTE,
                   f"no allow entry at index 999 (valid: 0-{count - 1})")
    ok(vctl("auth", "remove", str(index)))
    assert all(e["user_id"] != "agent.one" for e in allow_list(vctl))


def test_roles_and_groups(vctl) -> None:
    ok(vctl("auth", "add-role", "operator", "start", "stop"))
    one_line_error(vctl("auth", "add-role", "operator", "x"), EXIT_ERROR, "exists already")
    ok(vctl("auth", "update-role", "operator", "restart"))
    ok(vctl("auth", "update-role", "operator", "stop", "--remove"))
    assert json.loads(ok(vctl("--json", "auth", "list-roles"))) == {"operator": ["start", "restart"]}
    ok(vctl("auth", "add-group", "ops", "operator"))
    assert "ops" in ok(vctl("auth", "list-groups"))
    ok(vctl("auth", "remove-group", "ops"))
    one_line_error(vctl("auth", "remove-group", "ops"), EXIT_ERROR, "no group 'ops'")
    ok(vctl("auth", "remove-role", "operator"))
    assert json.loads(ok(vctl("--json", "auth", "list-roles"))) == {}


def test_refused_key_is_listed_and_approved(vctl, platform, poll) -> None:
    stranger = generate_keypair()
    with pytest.raises(ConnectError):
        connect(platform, "stranger", stranger, timeout=3)

    def pending() -> list[dict[str, Any]]:
        records = json.loads(ok(vctl("--json", "auth", "remote", "list", "--status", "pending")))
        return [r for r in records if r["credentials"] == stranger.public]

    [record] = poll(pending, 10, "the refused key in 'vctl auth remote list'")
    assert stranger.public in ok(vctl("auth", "remote", "list"))
    ok(vctl("auth", "remote", "approve", record["user_id"]))
    connect(platform, "stranger.approved", stranger)  # the key decides, not the identity
    approved = json.loads(ok(vctl("--json", "auth", "remote", "list", "--status", "approved")))
    assert [r["user_id"] for r in approved] == [record["user_id"]]
    one_line_error(vctl("auth", "remote", "deny", "no-such-user"), EXIT_REMOTE,
                   "no pending, approved or denied")


def test_method_authorizations(vctl, platform) -> None:
    connect(platform, "guarded.agent", platform.authorize("guarded.agent"), Guarded)
    caller_keys = platform.authorize("caller")
    # give the caller can_add through auth.json, as an administrator would
    entries = allow_list(vctl)
    index = next(i for i, e in enumerate(entries) if e["user_id"] == "caller")
    ok(vctl("auth", "update", str(index), "--capabilities", "can_add"))
    caller = connect(platform, "caller", caller_keys)
    assert caller.vip.rpc.call("guarded.agent", "add", 1, 2).get(timeout=10) == 3

    out = ok(vctl("auth", "rpc", "add", "guarded.agent.add", "extra"))
    assert out.strip() == "guarded.agent.add requires can_add, extra"
    with pytest.raises(Unauthorized) as info:
        caller.vip.rpc.call("guarded.agent", "add", 1, 2).get(timeout=10)
    assert info.value.code == UNAUTHORIZED
    assert ok(vctl("auth", "rpc", "remove", "guarded.agent.add", "extra")).strip() == \
        "guarded.agent.add requires can_add"
    assert caller.vip.rpc.call("guarded.agent", "add", 2, 2).get(timeout=10) == 4
    one_line_error(vctl("auth", "rpc", "remove", "guarded.agent.add", "never"), EXIT_REMOTE,
                   "does not require never")
    one_line_error(vctl("auth", "rpc", "add", "nobody.method", "cap"), EXIT_ERROR,
                   "no agent identity in auth.json")
