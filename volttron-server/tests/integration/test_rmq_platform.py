"""``volttron --message-bus rmq`` against the local broker, each test in a vhost of its own.

The platform keeps its ZeroMQ router for the in-process services and vctl and joins the broker
with the same router: RabbitMQ agents reach the services, ZeroMQ peers reach RabbitMQ agents,
publishes cross in both directions, a RabbitMQ agent that dies is dropped, and agents in
``auth.json`` get broker users. The listener runs on RabbitMQ both through ``vip_main`` and
launched by the platform.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from volttron.client.messagebus.rmq_testing import broker_instance
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as wait
from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.errors import Unreachable

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


@pytest.fixture
def broker():
    with broker_instance("srv") as instance:
        yield instance


@pytest.fixture
def rmq_platform(broker, platform_factory):  # the platform stops before its vhost goes
    platform = platform_factory(args=["--message-bus", "rmq"])
    broker.prepare_home(platform.home)
    return platform.start(timeout=45)


def provisioned(platform, broker, identity: str) -> bool:
    """Whether the platform has made the broker user of ``identity`` (it records them)."""
    try:
        made = json.loads((platform.home / "rabbitmq" / "users.json").read_text())
    except (FileNotFoundError, ValueError):
        return False
    return f"{broker.instance}.{identity}" in made.get(broker.vhost, {})


@pytest.fixture
def agents(rmq_platform, broker):
    """``agents(identity, bus="rmq"|"zmq", agent_class=Agent)``: connected agents, stopped at the end."""
    made: list[Agent] = []

    def connect(identity: str, bus: str = "rmq", agent_class: type[Agent] = Agent) -> Agent:
        keys = rmq_platform.add_allow_entry(identity)
        common = dict(identity=identity, publickey=keys.public, secretkey=keys.secret,
                      agent_class=agent_class, serverkey=rmq_platform.serverkey, timeout=10)
        if bus == "rmq":
            wait(lambda: provisioned(rmq_platform, broker, identity), 60, f"the broker user of {identity}")
            agent = build_agent(address=broker.url(), message_bus="rmq", **common)
        else:
            agent = build_agent(address=rmq_platform.local_address, volttron_home=str(rmq_platform.home),
                                **common)
        made.append(agent)
        return agent

    yield connect
    for agent in made:
        agent.core.stop(timeout=10)


class Echo(Agent):
    @RPC.export
    def echo(self, value):
        return value


@pytest.mark.parametrize("caller_bus,callee_bus", [("rmq", "zmq"), ("zmq", "rmq")])
def test_rpc_and_pubsub_cross_between_zeromq_and_rabbitmq_peers(agents, caller_bus, callee_bus) -> None:
    callee = agents("cross.callee", callee_bus, Echo)
    caller = agents("cross.caller", caller_bus)
    assert caller.vip.rpc.call("cross.callee", "echo", [1, "two"]).get(timeout=10) == [1, "two"]
    with pytest.raises(Unreachable):
        caller.vip.rpc.call("cross.ghost", "echo", 1).get(timeout=10)
    got = []
    callee.vip.pubsub.subscribe("pubsub", "cross/", lambda *a: got.append((a[1], a[3], a[5]))).get(timeout=10)
    caller.vip.pubsub.publish("pubsub", "cross/news", message={"n": 1}).get(timeout=10)
    wait(lambda: got, 10, "the publish across buses")
    assert got == [("cross.caller", "cross/news", {"n": 1})]
    peers = caller.vip.peerlist().get(timeout=10)
    assert {"cross.callee", "cross.caller", "platform.control"} <= set(peers)
    buses = caller.vip.peerlist.list_with_messagebus().get(timeout=10)
    assert [buses["cross.callee"], buses["cross.caller"], buses["platform.control"]] == [
        callee_bus, caller_bus, "zmq"]


def test_rabbitmq_agents_call_the_in_process_services(agents) -> None:
    agent = agents("svc.user")
    assert "svc.user" in agent.vip.rpc.call("platform.control", "peerlist").get(timeout=10)
    assert agent.vip.rpc.call("platform.config_store", "agent.version").get(timeout=10)
    assert isinstance(agent.vip.rpc.call("platform.health", "get_platform_health").get(timeout=10), dict)


def listener_env(platform, keys, identity: str, config_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "VOLTTRON_"))}
    env.update(VOLTTRON_HOME=str(platform.home), MESSAGEBUS="rmq", AGENT_VIP_IDENTITY=identity,
               AGENT_PUBLICKEY=keys.public, AGENT_SECRETKEY=keys.secret,
               VOLTTRON_SERVERKEY=platform.serverkey, AGENT_CONFIG=str(config_path))
    env.pop("_LAUNCHED_BY_PLATFORM", None)
    return env


def test_the_listener_runs_on_rabbitmq_with_vip_main_and_is_dropped_when_killed(
        rmq_platform, broker, agents, tmp_path) -> None:
    heard = []
    watcher = agents("watch.rmq")
    topic = "heartbeat/listen.rmq"
    watcher.vip.pubsub.subscribe("pubsub", topic, lambda *a: heard.append(a[5])).get(timeout=10)
    zmq_heard = []
    zmq_watcher = agents("watch.zmq", "zmq")
    zmq_watcher.vip.pubsub.subscribe("pubsub", topic, lambda *a: zmq_heard.append(a[5])).get(timeout=10)
    dropped = []
    watcher.vip.peerlist.ondrop.connect(lambda sender, peer, **kw: dropped.append(peer))

    keys = rmq_platform.add_allow_entry("listen.rmq")
    wait(lambda: provisioned(rmq_platform, broker, "listen.rmq"), 30, "the listener's broker user")
    config = tmp_path / "listener.json"
    config.write_text(json.dumps({"heartbeat_period": 1}))
    with open(tmp_path / "listener.stderr", "wb") as err:
        listener = subprocess.Popen([sys.executable, "-m", "volttron_listener_agent.agent"],
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    env=listener_env(rmq_platform, keys, "listen.rmq", config))
    try:
        wait(lambda: heard and zmq_heard, 30, "the listener's heartbeat on both buses")
        assert heard[0] == "GOOD" and "listen.rmq" in watcher.vip.peerlist().get(timeout=10)
        listener.send_signal(signal.SIGKILL)  # no agentstop: the router notices its queue is gone
        listener.wait(10)
        wait(lambda: "listen.rmq" in dropped, 15, "the dead listener to be dropped")
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(10)
    assert "listen.rmq" not in watcher.vip.peerlist().get(timeout=10)


def test_the_platform_launches_the_listener_on_rabbitmq(rmq_platform, broker, agents) -> None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("volttron-listener-agent")
    except PackageNotFoundError:  # scripts/bootstrap installs it: its absence is a broken set-up
        pytest.fail("volttron-listener-agent is not installed in this environment (run scripts/bootstrap)")
    keystore = rmq_platform.home / "keystores" / "control.connection" / "keystore.json"
    control = json.loads(keystore.read_text())
    admin = build_agent(address=rmq_platform.local_address, identity="control.connection",
                        publickey=control["public"], secretkey=control["secret"],
                        serverkey=rmq_platform.serverkey, timeout=10, volttron_home=str(rmq_platform.home))
    heard = []
    try:
        watcher = agents("watch.launch")
        topic = "heartbeat/listen.aip"
        watcher.vip.pubsub.subscribe("pubsub", topic, lambda *a: heard.append(a)).get(timeout=10)
        result = admin.vip.rpc.call("platform.control", "install", "volttron-listener-agent",
                                    vip_identity="listen.aip", agent_config={"heartbeat_period": 1},
                                    start=True).get(timeout=120)
        assert result["identity"] == "listen.aip"
        wait(lambda: heard, 60, "the heartbeat of the listener the platform started")
        sender = heard[0][1]
        assert sender == "listen.aip"
        # the platform records the broker users it made after making them: poll, the agent may be faster
        wait(lambda: provisioned(rmq_platform, broker, "listen.aip"), 30, "the listener's broker user")
        wait(lambda: any(c["name"] == f"{broker.instance}.listen.aip" for c in broker.connections()), 30,
             "the listener's broker connection")
    finally:
        try:
            admin.vip.rpc.call("platform.control", "remove_agent", "listen.aip").get(timeout=60)
        finally:
            admin.core.stop(timeout=10)


def test_removing_an_agent_from_auth_json_removes_its_broker_user(rmq_platform, broker, agents) -> None:
    from volttron.server.services.auth.authfile import edit_auth_file

    agents("short.lived").core.stop(timeout=10)
    user = f"{broker.instance}.short.lived"
    assert user in broker.admin.users()
    with edit_auth_file(rmq_platform.auth_file) as document:
        document.allow = [e for e in document.allow if e.identity != "short.lived"]
    wait(lambda: user not in broker.admin.users(), 30, "the broker user to go")


def test_a_second_platform_with_the_same_name_on_the_vhost_is_refused(broker, platform_factory,
                                                                        rmq_platform) -> None:
    second = platform_factory(args=["--message-bus", "rmq"], name="second")
    broker.prepare_home(second.home)
    second.expect_clean_exit = False
    second.launch()
    code = second.wait(60)
    stderr = second.stderr_path.read_text()
    assert code == 1 and stderr.startswith("volttron: error:") and "already routes" in stderr
    assert stderr.strip().count("\n") == 0


def test_a_broker_that_is_not_there_is_one_line(broker, platform_factory) -> None:
    platform = platform_factory(args=["--message-bus", "rmq"])
    broker.prepare_home(platform.home)
    config = platform.home / "rabbitmq_config.yml"
    config.write_text(config.read_text().replace("amqp-port: 5672", "amqp-port: 9"))
    platform.expect_clean_exit = False
    platform.launch()
    code = platform.wait(60)
    stderr = platform.stderr_path.read_text()
    assert code == 1 and "cannot join the RabbitMQ broker" in stderr and stderr.strip().count("\n") == 0
