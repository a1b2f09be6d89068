"""Hardening battery, RabbitMQ bus: what an agent (or a linked platform) can do with its broker login.

An attacker here is an agent with an allow entry and no capabilities: its broker user
``<instance>.<identity>`` and the password the client derives (it holds its own secret key and the
platform's public key), talking AMQP to the broker with pika, not through our client. A linked
platform's attacker is an agent of the other platform whose messages a real shovel or federation
link carries, or the link's own login. Each test runs on the real broker in a vhost of its own
(removed afterwards) and reports its figures with the ``report`` fixture; docs/reliability.md
lists them. A refusal that does not happen fails with ``NOT ENFORCED:`` (the enforcement-switch
test in tests/test_enforcement_switches.py switches the broker's topic permissions off and expects
that failure).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from volttron.client.messagebus.rmq_credentials import derive_password
from volttron.client.messagebus.rmq_permissions import QUEUE_REQUEST, agent_queue_names, queue_request_body
from volttron.client.messagebus.rmq_testing import BrokerInstance, broker_instance
from volttron.client.messagebus.rmq_wire import EXCHANGE, ROUTER, peer_routing_key, publish_routing_key
from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as eventually
from volttron.client.vip.agent import RPC, Agent
from volttron.server.platform_home import platform_keystore
from volttron.server.router.rmq.users import BrokerUsers

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

NOT_ENFORCED = "NOT ENFORCED: "
CALL_TIMEOUT = 10.0
SECURE = {"write-protect": [{"topic": "devices/secure", "capabilities": ["can_publish_secure"]}]}
LINK_PASSWORD = "link-secret"


def briefly(condition: Callable[[], Any], timeout: float) -> bool:
    """Whether ``condition`` became true within ``timeout`` seconds."""
    try:
        eventually(condition, timeout, "")
    except AssertionError:
        return False
    return True


class Echo(Agent):
    """Answers ``echo``; remembers who called it."""

    callers: list[str]

    @RPC.export
    def echo(self, value: Any) -> Any:
        self.callers.append(self.vip.rpc.context.vip_message.peer)
        return value


class Side:
    """A platform on RabbitMQ in a vhost of its own, with agents and raw AMQP logins of agents."""

    def __init__(self, broker: BrokerInstance, process: Any) -> None:
        self.broker = broker
        self.process = process
        self.agents: list[Agent] = []
        self.connections: list[Any] = []

    @property
    def name(self) -> str:
        return self.broker.instance

    def start(self, protected: dict[str, Any] | None = None) -> Side:
        self.broker.prepare_home(self.process.home)
        if protected:
            (self.process.home / "protected_topics.json").write_text(json.dumps(protected))
        self.process.start(timeout=45)
        return self

    def _wait_user(self, identity: str) -> str:
        user = f"{self.name}.{identity}"
        vhost = self.broker.vhost
        eventually(lambda: user in self.broker.admin.permissions(vhost), 60, f"broker user {user}")
        return user

    def agent(self, identity: str, agent_class: type[Agent] = Agent,
              capabilities: dict[str, Any] | None = None) -> Agent:
        keys = self.process.add_allow_entry(identity, None, capabilities)
        self._wait_user(identity)
        agent = build_agent(address=self.broker.url(), message_bus="rmq", identity=identity,
                            publickey=keys.public, secretkey=keys.secret, serverkey=self.process.serverkey,
                            agent_class=agent_class, timeout=15)
        self.agents.append(agent)
        return agent

    def login(self, identity: str) -> tuple[str, str]:
        """An allow entry without capabilities for ``identity``; its broker user and password."""
        keys = self.process.add_allow_entry(identity)
        user = self._wait_user(identity)
        return user, derive_password(platform_keystore(self.process.home).keypair.secret, keys.public, user)

    def amqp(self, user: str, password: str) -> Any:
        """A blocking pika connection to this side's vhost."""
        import pika

        connection = pika.BlockingConnection(pika.ConnectionParameters(
            self.broker.host, self.broker.port, self.broker.vhost, pika.PlainCredentials(user, password),
            connection_attempts=1, socket_timeout=10))
        self.connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.connections:
            if connection.is_open:
                connection.close()
        for agent in self.agents:
            agent.core.stop(timeout=10)
        self.process.stop()


def attempt(connection: Any, action: Callable[[Any], Any]) -> str:
    """``"allowed"`` or the broker's refusal (a refusal closes the channel: each attempt has its own)."""
    import pika.exceptions

    channel = connection.channel()
    try:
        action(channel)
    except pika.exceptions.ChannelClosed as exc:
        return f"refused {exc.reply_code}"
    if channel.is_open:
        channel.close()
    return "allowed"


def ask_for_queues(side: Side, connection: Any, user: str | None, names: list[str]) -> None:
    """Ask ``side``'s router to declare ``names`` as our client does (an agent may declare none)."""
    import pika

    channel = connection.channel()
    channel.basic_publish(EXCHANGE, peer_routing_key(side.name, ROUTER), queue_request_body(names),
                          pika.BasicProperties(user_id=user, app_id=user, type=QUEUE_REQUEST))
    channel.close()


def queue_exists(connection: Any, name: str) -> bool:
    return attempt(connection, lambda ch: ch.queue_declare(name, passive=True)) == "allowed"


def own_queues(side: Side, connection: Any, user: str) -> tuple[str, str]:
    """``user``'s two queues, declared by the platform at its request; the VIP queue bound to its key."""
    names = agent_queue_names(user)
    ask_for_queues(side, connection, user, list(names))
    eventually(lambda: all(queue_exists(connection, q) for q in names), 30, f"{names} declared")
    return names


class RmqSides:
    """``sides(name)``: a :class:`Side` (not started) on a broker instance of its own, its platform
    process from ``new_process(args, name=...)``; :meth:`close` stops them, then removes the vhosts.

    Built by the ``sides`` fixture, or by tests/test_enforcement_switches.py with a process factory
    whose platforms run with a check switched off (its ``Switch.platform``).
    """

    def __init__(self, new_process: Callable[..., Any],
                 report: Callable[[str, Any], None] | None = None) -> None:
        self._new_process = new_process
        self.report = report or (lambda name, value: None)
        self._made: list[tuple[Side, Any]] = []
        self.agents: dict[str, Agent] = {}
        """(The switch harness stops these; a side stops its own.)"""

    def __call__(self, name: str = "a") -> Side:
        lease = broker_instance(f"hard{name}")
        broker = lease.__enter__()
        try:
            side = Side(broker, self._new_process(["--message-bus", "rmq"], name=name))
        except BaseException:
            lease.__exit__(None, None, None)
            raise
        self._made.append((side, lease))
        return side

    def stop_agent(self, identity: str) -> None:
        """Nothing to do: each side stops its agents in :meth:`close`."""

    def close(self) -> None:
        """Stop every side's agents and platform, then remove its vhost and users."""
        made, self._made = self._made, []
        for side, lease in reversed(made):
            try:
                side.close()
            finally:
                lease.__exit__(None, None, None)


def closes_sides(test: Callable[[RmqSides], None]) -> Callable[[RmqSides], None]:
    """Run ``test`` and close its sides, however it ends (platforms stop before their vhosts go)."""

    @functools.wraps(test)
    def run(sides: RmqSides) -> None:
        try:
            test(sides)
        finally:
            sides.close()

    return run


@pytest.fixture
def sides(platform_factory: Any, report: Callable[[str, Any], None]) -> RmqSides:
    """Sides whose figures go to the battery's ``report``."""
    return RmqSides(platform_factory, report)


# -- 1. an agent reads only its own traffic -------------------------------------------------------

@closes_sides
def test_an_agent_cannot_read_other_agents_rpc_calls_and_replies(sides: RmqSides) -> None:
    """Mallory binds its own queue to the victim's and the config store's routing keys (and ``#``),
    while a caller talks to both; it must capture nothing, and bind nothing but its own keys."""
    report = sides.report
    side = sides().start()
    victim = side.agent("victim", Echo)
    victim.callers = []
    caller = side.agent("caller")
    user, password = side.login("mallory")
    connection = side.amqp(user, password)
    own_queues(side, connection, user)
    channel = connection.channel()
    keys = [f"{side.name}.victim", f"{side.name}.platform.config_store", f"{side.name}.caller", "#",
            f"*.{'victim'}"]
    accepted = [key for key in keys
                if attempt(connection, lambda ch, k=key: ch.queue_bind(user, EXCHANGE, k)) == "allowed"]
    own = attempt(connection, lambda ch: ch.queue_bind(user, EXCHANGE, user))
    pubsub = attempt(connection, lambda ch: ch.queue_bind(user, EXCHANGE, f"__pubsub__.{side.name}.open.#"))
    for n in range(5):
        assert caller.vip.rpc.call("victim", "echo", n).get(timeout=CALL_TIMEOUT) == n
        try:
            caller.vip.rpc.call("platform.config_store", "list_configs", "caller").get(timeout=CALL_TIMEOUT)
        except Exception:  # noqa: BLE001 - the reply may be a refusal: it still travels
            pass
    captured: list[str] = []

    def drain() -> bool:
        while True:
            method, properties, _body = channel.basic_get(user, auto_ack=True)
            if method is None:
                return len(captured) >= 20
            captured.append(f"{method.routing_key} ({properties.type})")

    briefly(drain, 2.0)
    report("bindings_accepted", len(accepted))
    report("messages_captured", len(captured))
    assert own == "allowed" and pubsub == "allowed", (own, pubsub)
    assert not captured and not accepted, (f"{NOT_ENFORCED}mallory bound {accepted} and read {len(captured)} "
                                           f"messages of other agents: {captured[:4]}")


# -- 2. nothing on amq.* or the default exchange, no exchange-to-exchange bindings ----------------

@closes_sides
def test_an_agent_cannot_publish_a_protected_topic_through_amq_topic(sides: RmqSides) -> None:
    """Mallory binds ``amq.topic`` to ``volttron`` and publishes a protected topic there."""
    import pika

    report = sides.report
    side = sides().start(SECURE)
    heard: list[str] = []
    listener = side.agent("listener")
    listener.vip.pubsub.subscribe("pubsub", "", lambda *m: heard.append(m[3])).get(timeout=CALL_TIMEOUT)
    user, password = side.login("mallory")
    connection = side.amqp(user, password)
    bound = attempt(connection, lambda ch: ch.exchange_bind(EXCHANGE, "amq.topic", "#"))
    sent = 0

    def publish(exchange: str, topic: str) -> str:
        def act(channel: Any) -> None:
            channel.confirm_delivery()
            properties = pika.BasicProperties(app_id=user, user_id=user, headers={"topic": topic, "bus": ""})
            channel.basic_publish(exchange, publish_routing_key(side.name, topic), b'{"message": 1}',
                                  properties)

        return attempt(connection, act)

    outcomes = {"amq.topic": publish("amq.topic", "devices/secure/x"),
                "default exchange": attempt(connection, lambda ch: ch.queue_declare("amq.gen-mallory"))}
    sent = sum(1 for o in outcomes.values() if o == "allowed")
    eventually(lambda: publish(EXCHANGE, "devices/open/control") == "allowed"
               and briefly(lambda: "devices/open/control" in heard, 2), 20, "the control publish")
    report("exchange_bind_amq_topic", bound)
    report("protected_publishes_delivered", heard.count("devices/secure/x"))
    assert bound != "allowed" and "devices/secure/x" not in heard, (
        f"{NOT_ENFORCED}amq.topic bound to volttron ({bound}), publish on it {outcomes['amq.topic']}, "
        f"protected topic delivered {heard.count('devices/secure/x')} time(s); {sent} amq.* action(s) "
        "allowed")


@closes_sides
def test_an_agent_cannot_publish_a_protected_topic_through_an_exchange_of_its_own(sides: RmqSides) -> None:
    """Configure permission cannot tell an exchange from a queue of the same name: mallory declares a
    fanout exchange ``<user>.pubsub``, binds it to ``volttron`` and publishes a protected topic to it.
    (Its user may configure nothing: the platform declares its queues.)"""
    import pika

    side = sides().start(SECURE)
    heard: list[str] = []
    listener = side.agent("listener")
    listener.vip.pubsub.subscribe("pubsub", "", lambda *m: heard.append(m[3])).get(timeout=CALL_TIMEOUT)
    user, password = side.login("mallory")
    connection = side.amqp(user, password)
    own = f"{user}.pubsub"

    def route(channel: Any) -> None:
        channel.exchange_declare(own, "fanout", auto_delete=True)
        channel.exchange_bind(EXCHANGE, own, "any")
        channel.confirm_delivery()
        topic = "devices/secure/own"
        properties = pika.BasicProperties(app_id=user, user_id=user, headers={"topic": topic, "bus": ""})
        channel.basic_publish(own, publish_routing_key(side.name, topic), b'{"message": 1}', properties)

    routed = attempt(connection, route)
    briefly(lambda: "devices/secure/own" in heard, 5)
    sides.report("own_exchange_route", routed)
    sides.report("delivered_through_own_exchange", heard.count("devices/secure/own"))
    assert routed != "allowed" and "devices/secure/own" not in heard, (
        f"{NOT_ENFORCED}an exchange of mallory's own carried a protected publish into volttron")


@closes_sides
def test_an_agent_has_no_permission_on_amq_or_the_default_exchange(sides: RmqSides) -> None:
    report = sides.report
    side = sides().start()
    user, password = side.login("mallory")
    permissions = side.broker.admin.permissions(side.broker.vhost)[user]
    connection = side.amqp(user, password)
    own_queues(side, connection, user)
    tries = {
        "bind amq.topic": lambda ch: ch.queue_bind(user, "amq.topic", "#"),
        "declare its own queue itself": lambda ch: ch.queue_declare(user, auto_delete=True,
                                                                    arguments={"x-expires": 60_000}),
        "declare amq.gen-*": lambda ch: ch.queue_declare("amq.gen-x", exclusive=True),
        "declare a queue of another name": lambda ch: ch.queue_declare(f"{user}.pubsub.extra"),
        "bind amq.fanout as source": lambda ch: ch.exchange_bind(EXCHANGE, "amq.fanout"),
    }
    outcomes = {what: attempt(connection, action) for what, action in tries.items()}
    allowed = [what for what, outcome in outcomes.items() if outcome == "allowed"]
    report("amq_actions_allowed", len(allowed))
    assert "amq" not in permissions.configure + permissions.write + permissions.read, permissions
    assert not allowed, f"{NOT_ENFORCED}mallory may {allowed}"


@closes_sides
def test_the_platform_declares_only_an_agents_own_queues(sides: RmqSides) -> None:
    """Mallory asks the router for another agent's queues, a third queue of its own, the router's, and
    (without a ``user_id``, which the broker checks) for the victim's own queue; only its own two are
    declared."""
    side = sides().start()
    user, password = side.login("mallory")
    connection = side.amqp(user, password)
    foreign = [f"{side.name}.victim", f"{side.name}.victim.pubsub", f"{user}.pubsub.extra",
               f"{side.name}.router.extra"]
    ask_for_queues(side, connection, user, foreign)
    ask_for_queues(side, connection, None, [f"{side.name}.anonymous"])
    own_queues(side, connection, user)  # asked after the others: the router has read them all
    made = [q for q in [*foreign, f"{side.name}.anonymous"] if queue_exists(connection, q)]
    sides.report("foreign_queues_declared", len(made))
    assert not made, f"{NOT_ENFORCED}the platform declared {made} for mallory"


# -- 4. bounded queues, removed with their agent --------------------------------------------------

def queue_info(side: Side) -> dict[str, dict[str, Any]]:
    return side.broker.admin.queues(side.broker.vhost)


@closes_sides
def test_an_agent_cannot_fill_the_broker_or_leave_queues_behind(sides: RmqSides) -> None:
    import pika
    import pika.exceptions

    report = sides.report
    side = sides().start()
    user, password = side.login("mallory")
    connection = side.amqp(user, password)
    names = [f"{user}.pubsub.flood{n}" for n in range(20)]
    made = [n for n in names
            if attempt(connection, lambda ch, q=n: ch.queue_declare(q, durable=True)) == "allowed"]
    report("extra_queues_declared", len(made))
    flood = made[0] if made else own_queues(side, connection, user)[1]  # the platform declares it
    channel = connection.channel()
    channel.queue_bind(flood, EXCHANGE, user)
    body = b"x" * 2048
    properties = pika.BasicProperties(user_id=user, app_id=user)
    count = 12_000
    started = time.monotonic()
    for _ in range(count):
        channel.basic_publish(EXCHANGE, user, body, properties)
    channel.queue_declare(flood, passive=True)  # a round trip: the broker has read every publish
    took = time.monotonic() - started

    def settled() -> dict[str, Any] | None:
        row = queue_info(side).get(flood)
        # the broker lists a queue busy with a flood without its figures (null): ask again
        numbers = row and row.get("messages") is not None and row.get("message_bytes") is not None
        return row if numbers and int(row["messages"]) > 0 else None

    row = eventually(settled, 20, f"{flood} listed")
    held, held_bytes = int(row["messages"]), int(row.get("message_bytes", 0))
    report("messages_held_of_12000", held)
    report("bytes_held_MB", round(held_bytes / 1e6, 1))
    report("publish_seconds", round(took, 2))
    opened = 0
    for _ in range(20):
        try:
            side.amqp(user, password)
            opened += 1
        except pika.exceptions.AMQPError:
            break
    report("connections_opened_of_20", opened + 1)
    connection.close()
    for other in side.connections:
        if other.is_open:
            other.close()
    auth = json.loads(side.process.auth_file.read_text())
    auth["allow"] = [e for e in auth["allow"] if e.get("identity") != "mallory"]
    side.process.auth_file.write_text(json.dumps(auth))
    eventually(lambda: user not in side.broker.admin.users(), 30, f"{user} removed")
    left = briefly(lambda: not [q for q in queue_info(side) if q.startswith(user)], 10)
    remaining = [q for q in queue_info(side) if q.startswith(user)]
    report("queues_left_after_removal", len(remaining))
    problems = []
    if made:
        problems.append(f"declared {len(made)} extra queues")
    if held > 10_000 or held_bytes > 32 * 1024 * 1024:
        problems.append(f"queued {held} messages ({held_bytes / 1e6:.1f} MB)")
    if opened + 1 > 8:
        problems.append(f"opened {opened + 1} connections")
    if not left:
        problems.append(f"left {remaining} behind")
    assert not problems, f"{NOT_ENFORCED}mallory {'; '.join(problems)}"


# -- 3. a linked platform speaks only for itself --------------------------------------------------

def link_settings(side: Side) -> Any:
    from volttron.client.messagebus.rmq_config import admin_settings, load_rabbitmq_config

    return admin_settings(load_rabbitmq_config(side.process.home), side.process.home, side.name)


def remote(side: Side, user: str) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": side.broker.port, "virtual-host": side.broker.vhost, "password":
            LINK_PASSWORD, "user": user}


def forge_publish(side: Side, user: str, password: str, topic: str, app_id: str) -> None:
    """A publish on ``side`` by ``user`` whose ``app_id`` names someone else."""
    import pika

    connection = side.amqp(user, password)
    channel = connection.channel()
    channel.confirm_delivery()
    properties = pika.BasicProperties(app_id=app_id, user_id=user, headers={"topic": topic, "bus": "",
                                                                             "user": app_id.split(".")[-1]})
    body = b'{"message": "forged"}'
    channel.basic_publish(EXCHANGE, publish_routing_key(side.name, topic), body, properties)
    connection.close()


def heard_from_other_side(a: Side, b: Side, prefix: str, report: Callable[[str, Any], None]) -> None:
    """A's mallory publishes on ``prefix`` claiming to be B's ``victim``; B's subscriber must never see it
    as coming from one of B's own agents; a real publish of A arrives as A's."""
    got: list[tuple[str, str]] = []
    subscriber = b.agent("subscriber")
    subscriber.vip.pubsub.subscribe("pubsub", prefix, lambda *m: got.append((m[1], m[3])),
                                    all_platforms=True).get(timeout=CALL_TIMEOUT)
    publisher = a.agent("publisher")
    user, password = a.login("mallory")

    def control() -> bool:
        forge_publish(a, user, password, f"{prefix}forged", f"{b.name}.victim")
        publisher.vip.pubsub.publish("pubsub", f"{prefix}real", message=1).get(timeout=CALL_TIMEOUT)
        return briefly(lambda: (f"{a.name}.publisher", f"{prefix}real") in got, 2)

    eventually(control, 40, f"a publish of A on {prefix} at B")
    local = [sender for sender, _ in got if not sender.startswith(f"{a.name}.")]
    report("messages_as_local_agent", len(local))
    assert not local, f"{NOT_ENFORCED}a message over the link arrived as from B's {local[0]!r}"


@closes_sides
def test_a_shovelled_publish_cannot_claim_a_local_agent(sides: RmqSides) -> None:
    from volttron.client.messagebus import rmq_link_config, rmq_links

    a, b = sides("a").start(), sides("b").start()
    link_user = f"{a.name}-shovel"
    rmq_links.grant_link_user(b.broker.admin, b.broker.vhost, link_user, LINK_PASSWORD, "shovel", b.name)
    entry = {**remote(b, link_user), "shovel-user": link_user, "pubsub": {"publisher": ["shov"]}}
    entry.pop("user")
    shovels = rmq_link_config.parse_shovels({"b": entry}, a.name)
    rmq_links.apply_shovels(a.broker.admin, link_settings(a), shovels, 30)
    heard_from_other_side(a, b, "shov/", sides.report)


@closes_sides
def test_a_federated_publish_cannot_claim_a_local_agent(sides: RmqSides) -> None:
    from volttron.client.messagebus import rmq_link_config, rmq_links

    a, b = sides("a").start(), sides("b").start()
    link_user = f"{b.name}-federation"
    rmq_links.grant_link_user(a.broker.admin, a.broker.vhost, link_user, LINK_PASSWORD, "federation", a.name)
    entry = {**remote(a, link_user), "federation-user": link_user}
    entry.pop("user")
    upstreams = rmq_link_config.parse_federation({"a": entry}, b.name)
    rmq_links.apply_federation(b.broker.admin, link_settings(b), upstreams, 30)
    heard_from_other_side(a, b, "fed/", sides.report)


@closes_sides
def test_link_users_get_topic_permissions_like_agents_of_their_platform(sides: RmqSides) -> None:
    """A shovel's login cannot publish as the receiver's instance, nor on a protected topic; a
    federation's login cannot bind the upstream's agents' routing keys."""
    from volttron.client.messagebus import rmq_links

    side = sides("a").start(SECURE)
    shovel_user, federation_user = f"{side.name}-other-shovel", f"{side.name}-other-federation"
    admin, vhost = side.broker.admin, side.broker.vhost
    rmq_links.grant_link_user(admin, vhost, shovel_user, LINK_PASSWORD, "shovel", side.name)
    rmq_links.grant_link_user(admin, vhost, federation_user, LINK_PASSWORD, "federation", side.name)

    def publish(key: str) -> Callable[[Any], None]:
        def act(channel: Any) -> None:
            import pika

            channel.confirm_delivery()
            channel.basic_publish(EXCHANGE, key, b"{}", pika.BasicProperties(user_id=shovel_user))
        return act

    def federation_bind(key: str) -> Callable[[Any], None]:
        def act(channel: Any) -> None:
            channel.exchange_declare("federation: probe", "topic", auto_delete=True)
            channel.exchange_bind("federation: probe", EXCHANGE, key)
        return act

    def protected_in_force() -> bool:
        """The platform adds its protected topics to a link user's permissions at its next sync (and
        closes the link's connections then: each probe connects anew)."""
        import pika.exceptions

        probe = side.amqp(shovel_user, LINK_PASSWORD)
        try:
            return attempt(probe, publish("__pubsub__.other.devices.secure.x.#")) != "allowed"
        except pika.exceptions.ConnectionClosedByBroker:
            return False  # closed by that sync while probing (fast over the management API): ask again
        finally:
            if probe.is_open:
                try:
                    probe.close()
                except pika.exceptions.AMQPError:
                    pass  # that sync closed it while it was closing: the answer above stands

    eventually(protected_in_force, BrokerUsers.RESYNC_INTERVAL * 3, "protected topics for the shovel user")
    shovel = side.amqp(shovel_user, LINK_PASSWORD)
    federation = side.amqp(federation_user, LINK_PASSWORD)
    outcomes = {
        "shovel publishes as this instance": attempt(shovel, publish(f"__pubsub__.{side.name}.x.#")),
        "shovel publishes a protected topic": attempt(shovel, publish("__pubsub__.other.devices.secure.x.#")),
        "shovel publishes to this router": attempt(shovel, publish(f"{side.name}.router")),
        "federation binds a local agent's key": attempt(federation, federation_bind(
            f"{side.name}.platform.config_store")),
        "federation binds everything": attempt(federation, federation_bind("#")),
    }
    control = {"shovel publishes its own topic": attempt(shovel, publish("__pubsub__.other.open.#")),
               "federation binds publishes": attempt(federation, federation_bind("__pubsub__.*.open.#"))}
    allowed = [what for what, outcome in outcomes.items() if outcome == "allowed"]
    sides.report("link_actions_allowed", len(allowed))
    assert all(o == "allowed" for o in control.values()), control
    assert not allowed, f"{NOT_ENFORCED}{allowed}"
