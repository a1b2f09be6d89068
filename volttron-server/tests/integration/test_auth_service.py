"""The auth service's RPC API on a running platform (reference §3.4): reads, edits, errors, live file.

Agents run in this process and connect over ipc with CURVE keys; vctl's identity
(``control.connection``) is the administrator.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as eventually
from volttron.client.vip.agent import RPC, Agent, RemoteError
from volttron.utils.jsonrpc import Error
from volttron.utils.keys import KeyPair, generate_keypair

pytestmark = pytest.mark.integration

AUTH = "platform.auth"


class Declaring(Agent):
    @RPC.export
    @RPC.allow("can_run")
    def run(self) -> str:
        return "ran"


class Agents:
    """Agents of this process connected to ``platform``; all stopped at the end."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.made: list[Agent] = []

    def connect(self, identity: str, capabilities: Any = None, agent_class: type[Agent] = Agent,
                keys: KeyPair | None = None) -> Agent:
        if keys is None:
            keys = self.platform.add_allow_entry(identity, None, capabilities or {})
        agent = build_agent(address=self.platform.local_address, identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=self.platform.serverkey, timeout=10,
                            agent_class=agent_class, enable_auth=True)
        self.made.append(agent)
        return agent

    def admin(self) -> Agent:
        path = self.platform.home / "keystores" / "control.connection" / "keystore.json"
        store = json.loads(path.read_text())
        keys = KeyPair(public=store["public"], secret=store["secret"])
        return self.connect("control.connection", keys=keys)


@pytest.fixture
def agents(running_platform) -> Any:
    made = Agents(running_platform)
    yield made
    for agent in made.made:
        agent.core.stop(timeout=5)


def call(agent: Agent, method: str, *args: Any) -> Any:
    return agent.vip.rpc.call(AUTH, method, *args).get(timeout=10)


def test_reads_and_capabilities_of_users(agents, running_platform) -> None:
    admin = agents.admin()
    call(admin, "auth_file.set_roles", {"reader": ["read"], "writer": ["write"]})
    call(admin, "auth_file.set_groups", {"staff": ["reader", "writer"]})
    key = generate_keypair().public
    call(admin, "auth_file.add", {"credentials": key, "user_id": "carol", "groups": ["staff"],
                                  "roles": ["reader"], "capabilities": {"own": {"identity": "carol"}}})
    document = call(admin, "auth_file.read")
    assert set(document) == {"allow_list", "deny_list", "groups", "roles", "version"}
    assert document["version"] == {"major": 1, "minor": 4}
    assert document["groups"] == {"staff": ["reader", "writer"]}
    caps, groups, roles = call(admin, "get_authorizations", "carol")
    assert caps == {"read": None, "write": None, "own": {"identity": "carol"}}
    assert groups == ["staff"] and roles == ["reader"]
    assert call(admin, "get_capabilities", "carol") == caps
    assert call(admin, "get_groups", "carol") == ["staff"] and call(admin, "get_roles", "carol") == ["reader"]
    assert call(admin, "get_authorizations", "nobody") == [{}, [], []]
    table = call(admin, "get_user_to_capabilities")
    assert table["carol"] == caps and "allow_auth_modifications" in table["control.connection"]
    assert table["platform.control"]["allow_auth_modifications"] is None  # what control's checks expect
    assert "sync_agent_config" in table["platform.config_store"]
    assert [e["user_id"] for e in call(admin, "auth_file.find_by_credentials", key)] == ["carol"]
    assert call(admin, "auth_file.remove_by_credentials", key) == 1
    assert call(admin, "auth_file.find_by_credentials", key) == []


@pytest.mark.parametrize("method,args,message", [
    ("auth_file.add", [{"credentials": "tooshort"}], "43 characters"),
    ("auth_file.add", [{"credentials": "/.*/", "user_id": "platform"}], "already has the user_id 'platform'"),
    ("auth_file.update_by_index", [{"credentials": "/.*/"}, 500], "no allow entry at index 500"),
    ("auth_file.remove_by_indices", [[0, 500]], "no allow entry at index 500"),
    ("auth_file.set_roles", [{"r": "not-a-list"}], "list of non-empty names"),
    ("add_rpc_authorizations", ["no.such.agent", "m", ["c"]], "no allow entry for the identity"),
    ("approve_authorization", ["no-such-user"], "vctl auth remote list"),
])
def test_bad_requests_are_refused_with_the_reason(agents, method: str, args: list, message: str) -> None:
    admin = agents.admin()
    before = call(admin, "auth_file.read")
    with pytest.raises(RemoteError) as info:
        call(admin, method, *args)
    assert message in str(info.value)
    assert call(admin, "auth_file.read") == before, "a refused change leaves auth.json as it was"


def test_agents_report_their_method_authorizations_only_for_themselves(agents, running_platform) -> None:
    agents.connect("declaring", agent_class=Declaring)

    def recorded() -> Any:
        for entry in json.loads(running_platform.auth_file.read_text())["allow"]:
            if entry["user_id"] == "declaring":
                return entry["rpc_method_authorizations"].get("run")
        return None

    assert eventually(recorded, 10, "the agent's report") == ["can_run"]
    other = agents.connect("other")
    with pytest.raises(Error) as info:
        other.vip.rpc.call(AUTH, "update_id_rpc_authorizations", "declaring", {"run": []}).get(timeout=10)
    assert info.value.code == -32001
    assert call(other, "update_id_rpc_authorizations", "other", {"m": ["c"]}) == {"m": ["c"]}
    admin = agents.admin()
    assert call(admin, "add_rpc_authorizations", "declaring", "run", ["extra"]) == ["can_run", "extra"]


def test_a_corrupt_auth_file_keeps_the_last_good_policy(agents, running_platform) -> None:
    admin = agents.admin()
    before = call(admin, "get_user_to_capabilities")
    running_platform.auth_file.write_text("{ this is not json")
    kept = eventually(lambda: list(running_platform.home.glob("auth.json.corrupt*")), 10,
                      "the corrupt file to be moved aside")
    assert kept and call(admin, "get_user_to_capabilities") == before
    assert admin.vip.rpc.call("platform.control", "peerlist").get(timeout=10)  # still serving
    assert "Traceback" not in running_platform.log_text()


def test_auth_disabled_platform_still_serves_the_file(platform_factory) -> None:
    platform = platform_factory(["--auth-disabled"]).start()
    agent = build_agent(address=platform.local_address, identity="anyone", timeout=10, enable_auth=False)
    try:
        document = agent.vip.rpc.call(AUTH, "auth_file.read").get(timeout=10)
        assert set(document) == {"allow_list", "deny_list", "groups", "roles", "version"}
    finally:
        agent.core.stop(timeout=5)
