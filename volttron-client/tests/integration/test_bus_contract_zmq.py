"""The message-bus contract (``bus_contract.py``) on a platform running ZeroMQ."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from volttron.client.runner import build_agent
from volttron.client.vip.agent import Agent

pytestmark = pytest.mark.integration


def load(name: str):
    """A helper module of this folder (test modules are imported by path: --import-mode=importlib)."""
    key = f"volttron_client_tests_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


class ZmqBus:
    """Agents on the client tests' ZeroMQ platform (``platform`` fixture of conftest.py)."""

    name = "zmq"

    def __init__(self, platform) -> None:
        self.platform = platform
        self.agents: list[Agent] = []

    def agent(self, identity: str, agent_class: type[Agent] = Agent) -> Agent:
        keys = self.platform.authorize(identity)
        agent = build_agent(address=self.platform.ipc_address, identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=self.platform.serverkey, agent_class=agent_class,
                            timeout=10, volttron_home=str(self.platform.home))
        self.agents.append(agent)
        return agent

    def close(self) -> None:
        for agent in self.agents:
            agent.core.stop(timeout=10)


class TestZmqBusContract(load("bus_contract").BusContract):
    @pytest.fixture
    def bus(self, platform):
        harness = ZmqBus(platform)
        yield harness
        harness.close()
