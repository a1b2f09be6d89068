"""The message-bus contract (``bus_contract.py``) on a platform running ZeroMQ."""

from __future__ import annotations

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.modules import load_beside
from volttron.client.vip.agent import Agent

pytestmark = pytest.mark.integration


def load(name: str):
    """A helper module of this folder, imported once by path."""
    return load_beside(__file__, name, f"volttron_client_tests_{name}")


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
