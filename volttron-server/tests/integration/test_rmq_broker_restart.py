"""The broker itself stops and starts again (``rabbitmqctl stop_app``/``start_app``).

That takes the broker from every test, so this one holds it exclusively: RabbitMQ tests running in
other processes wait for it (``broker_lease``), and it waits for them.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from volttron.client.messagebus.rmq_admin import port_open
from volttron.client.messagebus.rmq_testing import broker_instance
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as wait
from volttron.client.vip.agent import Agent
from volttron.client.vip.agent.errors import VIPError

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq, pytest.mark.slow]


def ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def test_agents_and_the_platform_come_back_after_the_broker_restarts(platform_factory, tmp_path) -> None:
    with broker_instance("restart", exclusive=True) as broker:
        platform = platform_factory(args=["--message-bus", "rmq"])
        broker.prepare_home(platform.home)
        platform.start(timeout=45)
        agents: list[Agent] = []

        def agent(identity: str) -> Agent:
            keys = platform.add_allow_entry(identity)

            def provisioned() -> bool:
                try:
                    made = json.loads((platform.home / "rabbitmq" / "users.json").read_text())
                except (FileNotFoundError, ValueError):
                    return False
                return f"{broker.instance}.{identity}" in made.get(broker.vhost, {})

            wait(provisioned, 30, f"the broker user of {identity}")
            made = build_agent(address=broker.url(), identity=identity, publickey=keys.public,
                               secretkey=keys.secret, serverkey=platform.serverkey, message_bus="rmq",
                               timeout=10)
            agents.append(made)
            return made

        try:
            subscriber, publisher = agent("restart.sub"), agent("restart.pub")
            got = []
            subscriber.vip.pubsub.subscribe("pubsub", "restart/", lambda *a: got.append(a[5])).get(timeout=10)
            welcomes = []
            subscriber.core.onconnected.connect(lambda *a, **k: welcomes.append(1))
            publisher.core.onconnected.connect(lambda *a, **k: welcomes.append(2))

            ctl("stop_app")
            try:
                wait(lambda: not subscriber.core.connected and not publisher.core.connected, 30,
                     "the agents to notice the broker is gone")
                during = publisher.vip.pubsub.publish("pubsub", "restart/during", message="during")
            finally:
                ctl("start_app")
                ctl("await_startup")
            wait(lambda: port_open(broker.host, broker.port), 60, "the broker to listen again")
            wait(lambda: subscriber.core.connected and publisher.core.connected and len(welcomes) >= 2, 60,
                 "both agents to be welcomed again")
            try:
                outcome = during.get(timeout=30)
            except VIPError as exc:  # refused while the broker was down: said so, not lost silently
                outcome = exc
            publisher.vip.pubsub.publish("pubsub", "restart/after", message="after").get(timeout=10)
            wait(lambda: "after" in got, 30, "a publish after the restart")  # subscriptions were made again
            if not isinstance(outcome, Exception):
                assert "during" in got, "a publish confirmed during the restart was lost"
            assert publisher.vip.rpc.call("restart.sub", "agent.version").get(timeout=10) == "0.1"
            wait(lambda: {"restart.sub", "restart.pub"} <= set(publisher.vip.peerlist().get(timeout=10)), 30,
                 "the router to know both agents again")
            assert publisher.vip.rpc.call("platform.control", "peerlist").get(timeout=10)
        finally:
            for made in agents:
                made.core.stop(timeout=10)
            platform.stop()
