"""Protected topics hold for agents publishing straight to RabbitMQ (``--message-bus rmq``).

The platform gives each agent's broker user topic permissions (``router/rmq/topic_permissions.py``), so the
broker refuses a publish to a protected topic from an agent lacking the capability: it never
reaches a subscriber, the publisher gets the ``-32001`` refusal it would get on ZeroMQ, and its
connection carries on. Granting the capability in ``auth.json``, or protecting another topic in
``protected_topics.json``, applies while the platform runs. Every refusal that fails to happen
fails with ``NOT ENFORCED:``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest

from volttron.client.messagebus.rmq_credentials import derive_password
from volttron.client.messagebus.rmq_testing import BrokerInstance, broker_instance
from volttron.client.messagebus.rmq_wire import EXCHANGE, publish_routing_key
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import WaitTimeout
from volttron.client.testing.waiting import wait_until as eventually
from volttron.client.vip.agent import Agent
from volttron.client.vip.agent.errors import VIPError
from volttron.server.platform_home import platform_keystore
from volttron.utils.jsonrpc import Error

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

NOT_ENFORCED = "NOT ENFORCED: "
CALL_TIMEOUT = 10.0
SECURE = {"write-protect": [{"topic": "devices/secure", "capabilities": ["can_publish_secure"]}]}


@pytest.fixture
def broker() -> Iterator[BrokerInstance]:
    with broker_instance("prot") as instance:
        yield instance


SWITCHED_OFF = """
from gevent import monkey

monkey.patch_all()

import sys

from volttron.server.router.rmq import topic_permissions as rmq_topic_permissions


def no_topic_permissions(*args, **kwargs):
    return None


rmq_topic_permissions.agent_topic_permissions.__code__ = no_topic_permissions.__code__

from volttron.server.main import main

sys.exit(main())
"""
"""A platform launcher that gives agents' broker users no topic permissions (the check switched off)."""


def start_platform(broker: BrokerInstance, platform_factory: Any, launcher: Any = None) -> Any:
    """A platform on ``broker`` protecting :data:`SECURE`; run by ``launcher`` (a script) if given."""
    platform = platform_factory(args=["--message-bus", "rmq"])
    if launcher is not None:
        command = platform.command

        def switched() -> list[str]:
            python, *rest = command()
            assert rest[:2] == ["-m", "volttron.server"], rest
            return [python, str(launcher), *rest[2:]]

        platform.command = switched
    broker.prepare_home(platform.home)
    (platform.home / "protected_topics.json").write_text(json.dumps(SECURE))
    return platform.start(timeout=45)


@pytest.fixture
def rmq_platform(broker: BrokerInstance, platform_factory: Any) -> Any:  # stops before its vhost goes
    return start_platform(broker, platform_factory)


def publishes_everything(granted: Any) -> bool:
    """A user's topic permission lets it publish with every key (it still binds only its own keys)."""
    return granted is not None and granted.write == ".*"


def topic_permission_of(broker: BrokerInstance, identity: str) -> Any:
    listed = broker.admin.topic_permissions(broker.vhost)
    return listed.get(f"{broker.instance}.{identity}", {}).get("volttron")


class Agents:
    """Agents on RabbitMQ connected by a test (each once its broker user is ready), stopped at the end."""

    def __init__(self, platform: Any, broker: BrokerInstance) -> None:
        self.platform = platform
        self.broker = broker
        self.keys: dict[str, Any] = {}
        self.made: list[Agent] = []

    def connect(self, identity: str, capabilities: dict[str, Any] | None = None) -> Agent:
        keys = self.authorize(identity, capabilities)
        user = f"{self.broker.instance}.{identity}"
        vhost = self.broker.vhost
        eventually(lambda: user in self.broker.admin.permissions(vhost), 60, f"the broker user {user}")
        agent = build_agent(address=self.broker.url(), message_bus="rmq", identity=identity,
                            publickey=keys.public, secretkey=keys.secret, serverkey=self.platform.serverkey,
                            timeout=15)
        self.made.append(agent)
        return agent

    def authorize(self, identity: str, capabilities: dict[str, Any] | None = None) -> Any:
        """Allow ``identity`` in auth.json with ``capabilities`` (replacing those it had)."""
        self.keys[identity] = self.platform.add_allow_entry(identity, self.keys.get(identity), capabilities)
        return self.keys[identity]


@pytest.fixture
def agents(rmq_platform: Any, broker: BrokerInstance) -> Iterator[Agents]:
    made = Agents(rmq_platform, broker)
    yield made
    for agent in made.made:
        agent.core.stop(timeout=10)


class Heard:
    """The topics a subscriber to every topic has heard."""

    def __init__(self, agent: Agent) -> None:
        self.topics: list[str] = []
        subscribed = agent.vip.pubsub.subscribe("pubsub", "", lambda *a: self.topics.append(a[3]))
        subscribed.get(timeout=CALL_TIMEOUT)


def publish_outcome(agent: Agent, topic: str) -> str:
    """``"sent"``, ``"refused"`` (-32001) or ``"failed"`` (another error: a link coming back)."""
    try:
        agent.vip.pubsub.publish("pubsub", topic, message={"topic": topic}).get(timeout=CALL_TIMEOUT)
    except Error as exc:
        assert exc.code == -32001 and "protected" in str(exc.data), exc
        return "refused"
    except (VIPError, gevent.Timeout):
        return "failed"
    return "sent"


def delivered(agent: Agent, heard: Heard, topic: str) -> bool:
    """Publish on ``topic``; True once it was sent and heard (waiting up to 5 s for it).

    False when it was not heard: a subscriber whose permissions tightened is linking again (the
    platform closes its connection, and its queue goes with it), so the caller publishes again.
    """
    if publish_outcome(agent, topic) != "sent":
        return False
    try:
        return eventually(lambda: topic in heard.topics, 5, f"{topic} heard", interval=0.05)
    except WaitTimeout:
        return False


def assert_not_delivered(agent: Agent, heard: Heard, topic: str, control: str) -> None:
    """``topic`` was refused: a control publish sent after it arrives, ``topic`` never does."""
    eventually(lambda: delivered(agent, heard, control), 20, f"the control publish on {control}")
    assert topic not in heard.topics, f"{NOT_ENFORCED}{topic} was delivered"


def numbered(prefix: str) -> Callable[[], str]:
    """A new topic below ``prefix`` at each call."""
    counter = itertools.count()
    return lambda: f"{prefix}/{next(counter)}"


def test_a_protected_topic_holds_for_a_rabbitmq_publisher_until_it_gets_the_capability(
        broker: BrokerInstance, agents: Agents) -> None:
    heard = Heard(agents.connect("listener"))
    writer = agents.connect("writer")
    outcome = publish_outcome(writer, "devices/secure/x")
    assert outcome == "refused", f"{NOT_ENFORCED}publish to devices/secure/x by writer: {outcome}"
    assert topic_permission_of(broker, "writer") is not None
    assert_not_delivered(writer, heard, "devices/secure/x", "devices/open/1")
    # the connection carries on: RPC, and publishes on a new channel
    assert "writer" in writer.vip.rpc.call("platform.control", "peerlist").get(timeout=CALL_TIMEOUT)
    outcome = publish_outcome(writer, "devices/secure2")  # a string prefix, as on ZeroMQ
    assert outcome == "refused", f"{NOT_ENFORCED}publish to devices/secure2 by writer: {outcome}"
    assert_not_delivered(writer, heard, "devices/secure2", "devices/open/2")
    # granting the capability in auth.json lets publishes through, without a restart
    agents.authorize("writer", {"can_publish_secure": None})
    topic = numbered("devices/secure/granted")
    eventually(lambda: delivered(writer, heard, topic()), 30, "the granted capability to apply")
    eventually(lambda: publishes_everything(topic_permission_of(broker, "writer")), 10,
               "its topic permission to allow every key")


def test_protecting_another_topic_applies_while_the_platform_runs(
        broker: BrokerInstance, rmq_platform: Any, agents: Agents) -> None:
    heard = Heard(agents.connect("listener"))
    writer = agents.connect("writer", {"can_publish_secure": None})
    assert publishes_everything(topic_permission_of(broker, "writer"))
    eventually(lambda: delivered(writer, heard, "alerts/before"), 20, "a publish on alerts/before")
    (rmq_platform.home / "protected_topics.json").write_text(json.dumps({"write-protect": [
        *SECURE["write-protect"], {"topic": "/^alerts/[^/]+$/", "capabilities": ["can_alert"]}]}))
    topic = numbered("alerts")

    def refused() -> str | None:
        attempt = topic()
        return attempt if publish_outcome(writer, attempt) == "refused" else None

    # the writer's connection, which published on alerts/ before, is closed and comes back
    first = eventually(refused, 30, "the new protected topic to apply")
    assert_not_delivered(writer, heard, first, "devices/secure/after")
    assert_not_delivered(writer, heard, first, "alerts/x/deeper")  # the regex ends after one level


def test_a_topic_header_cannot_pass_a_publish_off_as_one_on_a_protected_topic(
        broker: BrokerInstance, rmq_platform: Any, agents: Agents) -> None:
    import pika

    heard = Heard(agents.connect("listener"))
    keys = agents.authorize("forger")
    user = f"{broker.instance}.forger"
    eventually(lambda: user in broker.admin.permissions(broker.vhost), 60, f"the broker user {user}")
    password = derive_password(platform_keystore(rmq_platform.home).keypair.secret, keys.public, user)
    connection = pika.BlockingConnection(pika.ConnectionParameters(
        broker.host, broker.port, broker.vhost, pika.PlainCredentials(user, password), connection_attempts=1))
    try:
        channel = connection.channel()
        channel.confirm_delivery()

        def publish(key_topic: str, header_topic: str) -> None:
            properties = pika.BasicProperties(app_id=user, user_id=user, message_id=header_topic,
                                              headers={"topic": header_topic, "bus": ""})
            channel.basic_publish(EXCHANGE, publish_routing_key(broker.instance, key_topic),
                                  json.dumps({"message": 1}).encode(), properties)

        publish("devices/open/x", "devices/secure/forged")

        def control_heard() -> bool:
            publish("devices/open/control", "devices/open/control")
            return "devices/open/control" in heard.topics

        eventually(control_heard, 20, "the control publish")
    finally:
        connection.close()
    assert "devices/secure/forged" not in heard.topics, f"{NOT_ENFORCED}a forged topic header was believed"


def test_the_first_test_fails_with_the_topic_permissions_switched_off(
        broker: BrokerInstance, platform_factory: Any, tmp_path: Any) -> None:
    launcher = tmp_path / "no_topic_permissions.py"
    launcher.write_text(SWITCHED_OFF)
    platform = start_platform(broker, platform_factory, launcher)
    made = Agents(platform, broker)
    try:
        with pytest.raises(AssertionError, match=NOT_ENFORCED) as failure:
            test_a_protected_topic_holds_for_a_rabbitmq_publisher_until_it_gets_the_capability(broker, made)
        assert "devices/secure/x" in str(failure.value)
    finally:
        for agent in made.made:
            agent.core.stop(timeout=10)
