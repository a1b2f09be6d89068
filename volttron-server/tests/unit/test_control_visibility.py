"""What ``platform.control``'s reading methods show a caller without the control capability: its
own agent only (issue 16 item 5). A real AIP on a scratch home with two installed agent folders;
each call runs as the RPC subsystem runs it, with the caller's request as the call's context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.decorators import collect_annotations
from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.platform_agents import AIPConfig, AIPPlatform
from volttron.server.services.control.agent import CONTROL_CAPABILITY, ControlAgent
from volttron.utils.jsonrpc import Unauthorized

CAPABILITIES = {"alice": {"edit_config_store": {"identity": "alice"}}, "admin": {CONTROL_CAPABILITY: None}}


@pytest.fixture
def control(tmp_path: Path) -> ControlAgent:
    aip = AIPPlatform(AIPConfig(volttron_home=tmp_path, serverkey="K" * 43, base_env={}))
    for identity in ("alice", "bob"):
        AgentDirectory.populate(aip.folder.path / identity, name=f"{identity}-agent", version="1.0")
    agent = ControlAgent(aip, platform_serverkey="K" * 43, request_stop=lambda: None,
                         identity="platform.control", enable_auth=True)
    agent.vip.rpc.on_setup(collect_annotations(agent))
    agent.capabilities = lambda user: CAPABILITIES.get(user, {})
    return agent


def as_caller(agent: ControlAgent, caller: str) -> None:
    agent.vip.rpc.context._set(Message(caller, "RPC", [], "1", caller))  # noqa: SLF001 - the call's context


def identities(agent: ControlAgent) -> dict[str, Any]:
    return {
        "list_agents": sorted(r["identity"] for r in agent.list_agents()),
        "status_agents": sorted(r[-1] for r in agent.status_agents()),
        "agent_status_rows": sorted(r["identity"] for r in agent.agent_status_rows()),
        "agent_versions": sorted(name for name, _ in agent.agent_versions().values()),
        "get_all_agent_publickeys": sorted(agent.get_all_agent_publickeys()),
    }


def test_an_agent_without_the_capability_lists_only_itself(control: ControlAgent) -> None:
    as_caller(control, "alice")
    seen = identities(control)
    assert seen == {"list_agents": ["alice"], "status_agents": ["alice"], "agent_status_rows": ["alice"],
                    "agent_versions": ["alice-agent"], "get_all_agent_publickeys": ["alice"]}, seen
    as_caller(control, "stranger")  # connected, nothing installed under its name
    assert all(not rows for rows in identities(control).values())


def test_the_control_capability_lists_every_agent(control: ControlAgent) -> None:
    as_caller(control, "admin")
    assert identities(control)["list_agents"] == ["alice", "bob"]
    assert identities(control)["get_all_agent_publickeys"] == ["alice", "bob"]


@pytest.mark.parametrize("method", ["agent_status", "agent_name", "agent_version", "agent_priority",
                                    "agent_vip_identity", "agent_uuid"])
def test_a_method_about_one_agent_answers_only_about_the_callers_own(control: ControlAgent,
                                                                    method: str) -> None:
    bob = control.aip.folder.get("bob")
    alice = control.aip.folder.get("alice")
    as_caller(control, "admin")
    expected = getattr(control, method)("alice")
    as_caller(control, "alice")
    assert getattr(control, method)("alice") == expected
    assert getattr(control, method)(alice.uuid[:8]) == expected
    # another agent, by identity, uuid or prefix, and a name nobody has: the same refusal
    for ref in ("bob", bob.uuid, bob.uuid[:4], "nobody"):
        with pytest.raises(Unauthorized, match="its own agent only"):
            getattr(control, method)(ref)


def test_identity_exists_answers_only_about_the_caller(control: ControlAgent) -> None:
    as_caller(control, "alice")
    assert control.identity_exists("alice") == control.aip.folder.get("alice").uuid
    for identity in ("bob", "nobody"):
        with pytest.raises(Unauthorized):
            control.identity_exists(identity)


def test_without_authentication_every_caller_sees_all(control: ControlAgent) -> None:
    control.capabilities = None
    as_caller(control, "alice")
    assert identities(control)["list_agents"] == ["alice", "bob"]
