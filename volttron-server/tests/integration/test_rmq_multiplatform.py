"""Two RabbitMQ platforms linked by the broker plugins (reference §6.5), as docs/multi-platform.md says.

Two vhosts of the local broker stand in for two hosts: platforms A and B each have an instance
name, a home and a vhost of their own (all removed at the end). Each side lets the other's link
user in with ``vcfg rabbitmq link-user``; ``vcfg rabbitmq federation`` and ``vcfg rabbitmq shovel``
make the links. Agents are the client's ``build_agent`` agents on RabbitMQ; every wait polls with a
deadline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.messagebus.rmq_testing import BrokerInstance, broker_instance
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import WaitTimeout
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.errors import Unreachable
from volttron.utils import jsonrpc

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

PASSWORD = "link-secret"


def vcfg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from volttron.client.commands.vcfg import main; main()",
               "--vhome", str(home), "rabbitmq", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                          check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


class Side:
    """One platform with its broker instance, and the agents connected to it."""

    def __init__(self, broker: BrokerInstance, platform: Any) -> None:
        self.broker = broker
        self.platform = platform
        self.agents: list[Agent] = []

    @property
    def name(self) -> str:
        return self.broker.instance

    def agent(self, identity: str, agent_class: type[Agent] = Agent) -> Agent:
        keys = self.platform.add_allow_entry(identity)

        def provisioned() -> bool:
            try:
                made = json.loads((self.platform.home / "rabbitmq" / "users.json").read_text())
            except (FileNotFoundError, ValueError):
                return False
            return f"{self.name}.{identity}" in made.get(self.broker.vhost, {})

        poll(provisioned, 60, f"the broker user of {identity} on {self.name}")
        agent = build_agent(address=self.broker.url(), message_bus="rmq", identity=identity,
                            publickey=keys.public, secretkey=keys.secret, serverkey=self.platform.serverkey,
                            agent_class=agent_class, timeout=10)
        self.agents.append(agent)
        return agent


@pytest.fixture
def brokers() -> Iterator[tuple[BrokerInstance, BrokerInstance]]:
    with broker_instance("mpa") as a, broker_instance("mpb") as b:
        yield a, b


@pytest.fixture
def sides(brokers, platform_factory) -> Iterator[tuple[Side, Side]]:  # platforms stop before vhosts go
    made = []
    for broker, name in zip(brokers, ("a", "b"), strict=True):
        platform = platform_factory(args=["--message-bus", "rmq"], name=name)
        broker.prepare_home(platform.home)
        made.append(Side(broker, platform))
    for side in made:
        side.platform.start(timeout=45)
    yield made[0], made[1]
    for side in made:
        for agent in side.agents:
            agent.core.stop(timeout=10)


def remote_entry(side: Side, user_key: str, user: str, **more: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": side.broker.port, "virtual-host": side.broker.vhost, user_key: user,
            "password": PASSWORD, **more}


def write_yaml(path: Path, document: dict[str, Any]) -> str:
    import yaml

    path.write_text(yaml.safe_dump(document))
    return str(path)


class Echo(Agent):
    @RPC.export
    def echo(self, value):
        return value


def test_federation_brings_a_publish_of_one_instance_to_all_platforms_subscribers_of_the_other(
        sides, tmp_path: Path) -> None:
    a, b = sides
    user = f"{b.name}-federation"
    ok(vcfg(a.platform.home, "link-user", user, "--federation", "--password", PASSWORD))
    config = write_yaml(tmp_path / "rabbitmq_federation_config.yml",
                        {"federation-upstream": {"instance-a": remote_entry(a, "federation-user", user)}})
    first = ok(vcfg(b.platform.home, "federation", "--config", config))
    assert "federation link(s) running" in first
    ok(vcfg(b.platform.home, "federation", "--config", config))  # twice is safe
    name = f"upstream-127.0.0.1-{a.broker.vhost}"
    assert list(b.broker.admin.parameters("federation-upstream", b.broker.vhost)) == [name]

    got: list[tuple[str, str, Any]] = []
    local_only: list[str] = []
    subscriber = b.agent("fed.subscriber")
    subscriber.vip.pubsub.subscribe("pubsub", "fed/", lambda *m: got.append((m[1], m[3], m[5])),
                                    all_platforms=True).get(timeout=10)
    local = b.agent("fed.local")
    local.vip.pubsub.subscribe("pubsub", "fed/", lambda *m: local_only.append(m[3])).get(timeout=10)
    publisher = a.agent("fed.publisher")

    def arrived() -> bool:  # the subscription's binding reaches the upstream asynchronously
        if not got:
            publisher.vip.pubsub.publish("pubsub", "fed/news", message={"n": 1}).get(timeout=10)
        return poll_briefly(lambda: got)

    poll(arrived, 30, "a publish on A at B's all_platforms subscriber")
    assert got[0] == (f"{a.name}.fed.publisher", "fed/news", {"n": 1})
    assert local_only == []  # a subscription without all_platforms sees its own instance only

    # federated both ways, the brokers also carry RPC: each side's agent queues are bindings too
    back = f"{a.name}-federation"
    ok(vcfg(b.platform.home, "link-user", back, "--federation", "--password", PASSWORD))
    ok(vcfg(a.platform.home, "federation", "--host", "127.0.0.1", "--remote-vhost", b.broker.vhost,
            "--user", back, "--password", PASSWORD))
    b.agent("fed.callee", Echo)
    caller = a.agent("fed.caller")
    assert caller.vip.rpc.call("fed.callee", "echo", {"x": 1}, external_platform=b.name).get(timeout=15) \
        == {"x": 1}

    removed = ok(vcfg(b.platform.home, "federation", "--remove", name))
    # the federation policy goes; the platform's queue limits stay
    assert name in removed and "volttron-federation" not in b.broker.admin.policies(b.broker.vhost)


def poll_briefly(condition: Callable[[], Any], timeout: float = 1.0) -> Any:
    try:
        return bool(poll(condition, timeout, interval=0.05))
    except WaitTimeout:
        return False


def test_shovels_carry_a_topic_and_an_rpc_with_its_answer(sides, tmp_path: Path) -> None:
    a, b = sides
    a_user, b_user = f"{a.name}-shovel", f"{b.name}-shovel"
    ok(vcfg(b.platform.home, "link-user", a_user, "--shovel", "--password", PASSWORD))
    ok(vcfg(a.platform.home, "link-user", b_user, "--shovel", "--password", PASSWORD))
    to_b = {"shovel": {"instance-b": remote_entry(
        b, "shovel-user", a_user, pubsub={"shov.publisher": ["shov/t"]},
        rpc={b.name: [["shov.caller", "shov.callee"], ["shov.caller", "shov.ghost"]]})}}
    to_a = {"shovel": {"instance-a": remote_entry(a, "shovel-user", b_user, rpc={a.name: [["shov.callee",
                                                                                           "shov.caller"]]})}}
    out = ok(vcfg(a.platform.home, "shovel", "--config", write_yaml(tmp_path / "to_b.yml", to_b)))
    assert "shovel(s) running" in out
    ok(vcfg(b.platform.home, "shovel", "--config", write_yaml(tmp_path / "to_a.yml", to_a)))
    ok(vcfg(a.platform.home, "shovel", "--config", str(tmp_path / "to_b.yml")))  # twice is safe
    assert len(a.broker.admin.parameters("shovel", a.broker.vhost)) == 3

    # pub/sub: the shovelled topic reaches B, another topic does not
    got: list[tuple[str, str, Any]] = []
    subscriber = b.agent("shov.subscriber")
    subscriber.vip.pubsub.subscribe("pubsub", "shov/", lambda *m: got.append((m[1], m[3], m[5])),
                                    all_platforms=True).get(timeout=10)
    publisher = a.agent("shov.publisher")
    publisher.vip.pubsub.publish("pubsub", "shov/other", message="not shovelled").get(timeout=10)
    publisher.vip.pubsub.publish("pubsub", "shov/t/x", message={"n": 2}).get(timeout=10)
    poll(lambda: got, 15, "the shovelled publish at B")
    assert got == [(f"{a.name}.shov.publisher", "shov/t/x", {"n": 2})]

    # RPC: a shovel each way
    b.agent("shov.callee", Echo)
    caller = a.agent("shov.caller")
    assert caller.vip.rpc.call("shov.callee", "echo", [1, "two"], external_platform=b.name).get(timeout=15) \
        == [1, "two"]
    with pytest.raises(jsonrpc.Error) as info:  # shovelled, but nobody there: B says so
        caller.vip.rpc.call("shov.ghost", "echo", 1, external_platform=b.name).get(timeout=15)
    assert info.value.code == jsonrpc.UNAVAILABLE_AGENT and "shov.ghost" in str(info.value.data)
    with pytest.raises(Unreachable, match="no federation or shovel carries"):  # not shovelled at all
        caller.vip.rpc.call("shov.nobody", "echo", 1, external_platform=b.name).get(timeout=15)
    with pytest.raises(Unreachable, match="platform 'nowhere'"):
        caller.vip.rpc.call("shov.callee", "echo", 1, external_platform="nowhere").get(timeout=15)

    ok(vcfg(a.platform.home, "shovel", "--remove", f"shovel-127.0.0.1-{b.broker.vhost}"))
    assert a.broker.admin.parameters("shovel", a.broker.vhost) == {}


GUIDE = Path(__file__).resolve().parents[3] / "docs" / "multi-platform.md"


def test_the_rabbitmq_commands_of_the_multi_platform_guide(brokers, tmp_path: Path) -> None:
    import os
    import re

    blocks = [body for kind, body in re.findall(r"^```(\w+)[^\n]*\n(.*?)^```", GUIDE.read_text(), re.S | re.M)
              if kind == "sh"]
    assert len(blocks) >= 4 and "vcfg rabbitmq federation" in "".join(blocks)
    a, b = brokers
    env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", HOME=str(tmp_path),
               A=a.instance, B=b.instance, A_VHOST=a.vhost, B_VHOST=b.vhost)
    done = subprocess.run(["bash", "-c", "set -euxo pipefail\n" + "\n".join(blocks)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "federation link(s) running" in done.stdout and "shovel(s) running" in done.stdout
    assert a.admin.parameters("shovel", a.vhost) == {} == b.admin.parameters("federation-upstream", b.vhost)
