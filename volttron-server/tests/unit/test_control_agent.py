"""``platform.control`` without a platform: which methods need the admin capability, and the small
decisions it makes itself (package names, clearing statuses). The AIP is a recording fake."""

from __future__ import annotations

from typing import Any

import pytest

from volttron.client.vip.agent.decorators import collect_annotations
from volttron.server.aip.supervisor import AgentState
from volttron.server.services.control.agent import CONTROL_CAPABILITY, ControlAgent, ControlError

CHANGING = {
    "shutdown",
    "stop_platform",
    "start_agent",
    "stop_agent",
    "restart_agent",
    "clear_status",
    "tag_agent",
    "prioritize_agent",
    "enable_agent",
    "disable_agent",
    "remove_agent",
    "install_agent",
    "install",
}
READING = {
    "peerlist",
    "serverkey",
    "list_agents",
    "status_agents",
    "agent_status_rows",
    "agent_status",
    "agent_name",
    "agent_version",
    "agent_versions",
    "agent_priority",
    "agent_vip_identity",
    "agent_uuid",
    "get_all_agent_publickeys",
    "identity_exists",
}


class FakeSupervisor:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states
        self.forgotten: list[str] = []

    def statistics(self) -> dict[str, dict[str, Any]]:
        return {i: {"state": s} for i, s in self.states.items()}

    def forget(self, identity: str) -> None:
        self.forgotten.append(identity)


class FakeFolder:
    def __init__(self, installed: set[str]) -> None:
        self.installed = installed

    def get(self, identity: str) -> object | None:
        return object() if identity in self.installed else None


class FakeAIP:
    def __init__(self, states: dict[str, str] | None = None, installed: set[str] = frozenset()) -> None:
        self.supervisor = FakeSupervisor(states or {})
        self.folder = FakeFolder(set(installed))
        self.installs: list[tuple[str, dict[str, Any]]] = []

    def install(self, source: str, **kwargs: Any) -> dict[str, Any]:
        self.installs.append((source, kwargs))
        return {"agent_uuid": "u-1", "identity": kwargs.get("vip_identity") or "x"}


def make_agent(aip: FakeAIP | None = None) -> ControlAgent:
    agent = ControlAgent(
        aip or FakeAIP(),
        platform_serverkey="K" * 43,
        request_stop=lambda: None,
        identity="platform.control",
        enable_auth=True,
    )
    agent.vip.rpc.on_setup(collect_annotations(agent))
    return agent


def test_every_changing_method_requires_the_control_capability() -> None:
    rpc = make_agent().vip.rpc
    for name in CHANGING:
        assert name in rpc.exports, name
        assert rpc.get_allowed(name) == [CONTROL_CAPABILITY], name


def test_reading_methods_are_open_to_every_peer() -> None:
    rpc = make_agent().vip.rpc
    for name in READING:
        assert name in rpc.exports, name
        assert rpc.get_allowed(name) == [], name


def test_every_c10_method_is_exported() -> None:
    c10 = {
        "peerlist",
        "serverkey",
        "clear_status",
        "agent_status",
        "agent_name",
        "agent_version",
        "agent_versions",
        "status_agents",
        "start_agent",
        "stop_agent",
        "restart_agent",
        "shutdown",
        "stop_platform",
        "list_agents",
        "tag_agent",
        "remove_agent",
        "prioritize_agent",
        "agent_priority",
        "agent_vip_identity",
        "get_all_agent_publickeys",
        "identity_exists",
        "install_agent",
    }
    assert c10 <= set(make_agent().vip.rpc.exports)


def test_install_by_package_name_passes_it_to_the_aip_with_every_option() -> None:
    aip = FakeAIP()
    result = make_agent(aip).install(
        "volttron-listener-agent",
        vip_identity="l1",
        tag="t",
        agent_config="a: 1",
        priority="20",
        enable=True,
        start=True,
        force=True,
        pre_release=True,
        isolated=True,
    )
    assert result["agent_uuid"] == "u-1"
    source, kwargs = aip.installs[0]
    assert source == "volttron-listener-agent"
    assert kwargs == {
        "vip_identity": "l1",
        "tag": "t",
        "config": "a: 1",
        "priority": "20",
        "enable": True,
        "force": True,
        "pre": True,
        "start": True,
        "progress": None,
        "isolated": True,
    }


def test_install_agent_returns_the_uuid_as_c10_does() -> None:
    assert make_agent().install_agent("volttron-listener-agent", None) == "u-1"


@pytest.mark.parametrize(
    "agent",
    [
        "/etc/passwd",
        "./agent",
        "~/agent",
        "dir/agent",
        "agent-0.1-py3-none-any.whl",
        "",
        "--index-url=http://elsewhere",
        "-e.",
    ],
)
def test_install_without_a_channel_takes_package_names_only(agent: str) -> None:
    aip = FakeAIP()
    with pytest.raises(ControlError):
        make_agent(aip).install(agent, None)
    assert aip.installs == []


def test_clear_status_forgets_removed_agents_and_with_all_every_stopped_one() -> None:
    states = {
        "gone": AgentState.STOPPED.value,
        "failed": AgentState.FAILED.value,
        "running": AgentState.RUNNING.value,
        "stopping": AgentState.STOPPING.value,
    }
    aip = FakeAIP(states, installed={"failed", "running", "stopping"})
    assert make_agent(aip).clear_status() == ["gone"]
    aip = FakeAIP(states, installed={"failed", "running", "stopping"})
    assert sorted(make_agent(aip).clear_status(True)) == ["failed", "gone"]
    assert "running" not in aip.supervisor.forgotten and "stopping" not in aip.supervisor.forgotten


def test_serverkey_is_the_platform_key() -> None:
    assert make_agent().serverkey() == "K" * 43
