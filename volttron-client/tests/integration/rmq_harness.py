"""A platform on RabbitMQ for the client's integration tests (loaded by path by the test modules).

:class:`RmqPlatform` is ``volttron --message-bus rmq`` in a temporary home prepared by
``vcfg rabbitmq single`` for one :class:`~volttron.client.messagebus.rmq_testing.BrokerInstance`
(its own instance name and vhost). :class:`RmqBus` connects agents to it over AMQP as their own
broker users, with the passwords derived from their CURVE keys.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent
from volttron.utils.keys import KeyPair, generate_keypair


class RmqPlatform:
    """``volttron --message-bus rmq`` in ``root/home`` for one broker instance."""

    def __init__(self, root: Path, broker) -> None:
        self.root = root
        self.broker = broker
        self.home = root / "home"
        self.home.mkdir(mode=0o700)
        broker.prepare_home(self.home)
        self.keys: dict[str, KeyPair] = {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def serverkey(self) -> str:
        return json.loads((self.home / "keystore").read_text())["public"]

    def start(self) -> RmqPlatform:
        env = {**os.environ, "VOLTTRON_HOME": str(self.home), "HOME": str(self.root)}
        env.pop("VOLTTRON_VIP_ADDR", None)
        with open(self.root / "volttron.stderr", "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "volttron.server", "-v", "-l", str(self.root / "volttron.log"),
                 "--message-bus", "rmq"], env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=self.root)
        poll(self._started, 45, "the platform to start")
        return self

    def _started(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"volttron exited with {self.process.returncode}:\n{self.log_text()}")
        try:
            return int((self.home / "VOLTTRON_PID").read_text()) == self.process.pid
        except (FileNotFoundError, ValueError):
            return False

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("volttron.*")))

    def authorize(self, identity: str) -> KeyPair:
        """Keys and an ``auth.json`` entry; returns once the platform has made the broker user."""
        if identity not in self.keys:
            self.keys[identity] = generate_keypair()
            path = self.home / "auth.json"
            doc = json.loads(path.read_text())
            doc["allow"].append({"mechanism": "CURVE", "credentials": self.keys[identity].public,
                                 "user_id": identity, "identity": identity, "capabilities": {},
                                 "comments": "contract test", "enabled": True})
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            tmp.rename(path)
            poll(lambda: self.provisioned(identity), 30, f"the broker user of {identity}")
        return self.keys[identity]

    def provisioned(self, identity: str) -> bool:
        """Whether the platform has made the broker user (it records what it made in rabbitmq/users.json)."""
        try:
            made = json.loads((self.home / "rabbitmq" / "users.json").read_text())
        except (FileNotFoundError, ValueError):
            return False
        return f"{self.broker.instance}.{identity}" in made.get(self.broker.vhost, {})

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"volttron did not stop:\n{self.log_text()}") from None


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
