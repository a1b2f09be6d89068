"""A platform on RabbitMQ for the client's integration tests (loaded by path by the test modules).

:class:`RmqPlatform` is ``volttron --message-bus rmq`` in a temporary home prepared by
``vcfg rabbitmq single`` for one :class:`~volttron.client.messagebus.rmq_testing.BrokerInstance`
(its own instance name and vhost). :class:`RmqBus` connects agents to it over AMQP as their own
broker users, with the passwords derived from their CURVE keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from volttron.client.runner import build_agent
from volttron.client.testing.platform import VolttronPlatform
from volttron.client.vip.agent import Agent


class RmqPlatform(VolttronPlatform):
    """The testing kit's platform on RabbitMQ, in ``root/home`` for the test's broker instance.

    The home is prepared by ``vcfg rabbitmq single`` for that instance (its name and vhost, which
    the test's ``broker_instance`` removes afterwards); the kit's ``authorize`` returns once the
    platform has made the identity's broker user.
    """

    def __init__(self, root: Path, broker) -> None:
        home = root / "home"
        home.mkdir(mode=0o700)
        broker.prepare_home(home)
        super().__init__(root, message_bus="rmq", home=home, instance_name=broker.instance,
                         env={"HOME": str(root)})
        self.broker = broker
        self._vhost = broker  # the kit's vhost: the test's own, prepared above (not made again)

    def provisioned(self, identity: str) -> bool:
        """Whether the platform has made the broker user (it records what it made in rabbitmq/users.json)."""
        try:
            made = json.loads((self.home / "rabbitmq" / "users.json").read_text())
        except (FileNotFoundError, ValueError):
            return False
        return f"{self.broker.instance}.{identity}" in made.get(self.broker.vhost, {})


class RmqBus:
    """Agents of an :class:`RmqPlatform`, connected over AMQP."""

    name = "rmq"

    def __init__(self, platform: RmqPlatform) -> None:
        self.platform = platform
        self.agents: list[Agent] = []

    def agent(self, identity: str, agent_class: type[Agent] = Agent) -> Agent:
        keys = self.platform.authorize(identity)
        agent = build_agent(address=self.platform.broker.url(), identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=self.platform.serverkey, agent_class=agent_class,
                            message_bus="rmq", timeout=10)
        self.agents.append(agent)
        return agent

    def close(self) -> None:
        for agent in self.agents:
            agent.core.stop(timeout=10)
