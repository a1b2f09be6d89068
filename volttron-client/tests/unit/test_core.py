"""The agent core over the in-memory router: life cycle, handshake, reconnection, timers, errors."""

from __future__ import annotations

import threading
import time

import gevent
import gevent.event
import pytest

from volttron.client.messagebus.base import BusEvent, ConnectionParams, Message
from volttron.client.vip.agent import RPC, Agent, Core, PubSub
from volttron.client.vip.agent.errors import ConnectError, UnknownSubsystem, VIPError
from volttron.utils.scheduling import periodic


class Recorder(Agent):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.events: list[str] = []

    @Core.receiver("onsetup")
    def setup(self, sender, **kwargs):
        self.events.append("onsetup")

    @Core.receiver("onstart")
    def start(self, sender, **kwargs):
        self.events.append("onstart")

    @Core.receiver("onstop")
    def stopping(self, sender, **kwargs):
        self.events.append("onstop")

    @Core.receiver("onfinish")
    def finish(self, sender, **kwargs):
        self.events.append("onfinish")


def test_life_cycle_order_and_wire_messages(start_agent, router, wait_until) -> None:
    agent = start_agent("rec", Recorder)
    agent.core.onconnected.connect(lambda sender, **kw: agent.events.append("onconnected"))
    assert agent.core.connected
    hello = router.messages("hello", "rec")[0]
    assert (hello.peer, hello.id, hello.args, hello.user) == ("", "connect.hello.0", [b"hello"], "")
    wait_until(lambda: "onstart" in agent.events)
    agent.core.stop(timeout=5)
    assert agent.events == ["onsetup", "onstart", "onstop", "onfinish"]
    stop = router.messages("agentstop", "rec")
    assert [(m.peer, m.args, m.id) for m in stop] == [("", [b"rec"], "")]
    assert not agent.core.connected and agent.core.failure is None


def test_onstop_runs_before_agentstop(start_agent, router) -> None:
    class Farewell(Agent):
        @Core.receiver("onstop")
        def bye(self, sender, **kwargs):
            self.vip.pubsub.publish("pubsub", "bye", message=1)

    start_agent("fw", Farewell).core.stop(timeout=5)
    subsystems = [m.subsystem for m in router.messages(sender="fw")]
    assert subsystems.index("pubsub") < subsystems.index("agentstop") == len(subsystems) - 1


def test_decorators_have_no_effect_until_an_agent_runs(router) -> None:
    class Exporter(Agent):
        @RPC.export
        def hidden(self):
            return 1

    agent = Exporter(identity="x", connection_factory=router.factory, enable_auth=False)
    assert "hidden" not in agent.vip.rpc.exports  # nothing registered at class definition or construction
    assert router.log == []


def test_unknown_signal_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown core signal"):
        Core.receiver("onbogus")


def test_welcome_timeout_names_identity_and_both_causes(router) -> None:
    router.refuse.add("dup")
    agent = Agent(
        identity="dup",
        connection_factory=router.factory,
        enable_auth=False,
        enable_store=False,
        heartbeat_autostart=False,
        address="inproc://memory",
    )
    agent.core.welcome_timeout = 0.3
    started = time.monotonic()
    gevent.spawn(agent.core.run).join(5)
    assert time.monotonic() - started < 3
    error = agent.core.failure
    assert isinstance(error, ConnectError)
    text = str(error)
    assert "'dup'" in text and "already be connected" in text and "authorize" in text


@pytest.mark.parametrize("handshake_fails,expected", [(False, "could not reach"), (True, "refused")])
def test_unreachable_or_refused_platform_is_explained(memory, handshake_fails: bool, expected: str) -> None:
    class SilentConnection(memory.MemoryConnection):
        """Never reports the link up (platform not running), or reports a failed handshake."""

        def open(self, on_event):
            self.on_event = on_event
            if self.handshake_fails:
                gevent.spawn(on_event, BusEvent.HANDSHAKE_FAILED, "tcp://127.0.0.1:1")

    router = memory.MemoryRouter()

    def factory(params: ConnectionParams) -> SilentConnection:
        conn = SilentConnection(params, router)
        conn.handshake_fails = handshake_fails
        return conn

    agent = Agent(identity="lonely", connection_factory=factory, enable_auth=False, address="inproc://x")
    agent.core.welcome_timeout = 0.2
    gevent.spawn(agent.core.run).join(5)
    assert expected in str(agent.core.failure) and "'lonely'" in str(agent.core.failure)


def test_reconnect_says_hello_again_and_resynchronizes(start_agent, router, wait_until) -> None:
    class Sub(Recorder):
        @PubSub.subscribe("pubsub", "devices")
        def on_devices(self, *args):
            pass

    agent = start_agent("sub", Sub)
    connected, disconnected = [], []
    agent.core.onconnected.connect(lambda sender, **kw: connected.append(1))
    agent.core.ondisconnected.connect(lambda sender, **kw: disconnected.append(1))
    wait_until(lambda: router.subscriptions.get("sub"))
    router.bounce("sub")
    assert "sub" not in router.subscriptions
    wait_until(lambda: connected)
    assert disconnected == [1]
    hellos = [m.id for m in router.messages("hello", "sub")]
    assert hellos == ["connect.hello.0", "connect.hello.1"]
    wait_until(lambda: router.subscriptions.get("sub") == {"": {"devices"}})
    syncs = [m for m in router.messages("pubsub", "sub") if m.args[0] == b"synchronize"]
    assert len(syncs) == 2
    assert agent.events.count("onstart") == 1  # onstart is not repeated on reconnection


def _unstarted(router, identity: str) -> tuple[Agent, gevent.event.Event]:
    agent = Agent(identity=identity, connection_factory=router.factory, enable_auth=False, enable_store=False,
                  heartbeat_autostart=False, address="inproc://memory")
    agent.core.welcome_timeout = 30.0
    running = gevent.event.Event()
    gevent.spawn(agent.core.run, running)
    return agent, running


def test_a_link_lost_before_the_welcome_says_hello_again_at_once(router, wait_until) -> None:
    """The router may forget a connection between our hello and its welcome (it closed the connection,
    or the platform restarted); when the link comes back the hello goes out again at once instead of
    after the hello repeat of a whole welcome timeout."""
    router.refuse.add("early")
    agent, running = _unstarted(router, "early")
    try:
        wait_until(lambda: router.messages("hello", "early"))
        router.refuse.discard("early")
        router.bounce("early")
        assert running.wait(3), "no second hello after the link came back"
        assert [m.id for m in router.messages("hello", "early")] == ["connect.hello.0", "connect.hello.1"]
    finally:
        agent.core.stop(timeout=5)


def test_an_unanswered_hello_is_repeated_well_before_the_welcome_timeout(router, wait_until) -> None:
    """A router that dropped the peer without the link going down (the welcome was lost) still gets
    a new hello within a few seconds, so the agent connects long before its 30 s welcome timeout."""
    router.refuse.add("patient")
    agent, running = _unstarted(router, "patient")
    try:
        wait_until(lambda: router.messages("hello", "patient"))
        router.refuse.discard("patient")
        assert running.wait(5), "the hello was not repeated within 5 s"
    finally:
        agent.core.stop(timeout=5)


def test_link_down_too_long_stops_the_agent(start_agent, router) -> None:
    agent = start_agent("fragile")
    agent.core.reconnect_timeout = 0.2
    conn = router.connections["fragile"]
    conn.on_event(BusEvent.DISCONNECTED, "memory")
    assert agent.core.wait_finished(5)
    assert "unreachable for" in str(agent.core.failure)


def test_schedule_and_periodic_decorators_run_from_onstart(start_agent, wait_until) -> None:
    class Timed(Agent):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.ticks = 0
            self.periods = 0
            self.once = []

        @Core.schedule(periodic(0.01))
        def tick(self):
            self.ticks += 1

        @Core.periodic(0.01)
        def period(self):
            self.periods += 1

        @Core.schedule(time.time() - 5, "past")
        def overdue(self, what):
            self.once.append(what)

    agent = start_agent("timed", Timed)
    wait_until(lambda: agent.ticks >= 3 and agent.periods >= 3 and agent.once == ["past"])


def test_runtime_schedule_cancel_and_periodic_wait(start_agent, wait_until) -> None:
    agent = start_agent("sched")
    calls = []
    event = agent.core.schedule(time.time() + 60, calls.append, "late")
    event.cancel()
    assert event.finished
    later = agent.core.schedule(time.time() + 0.01, calls.append, "soon")
    waited = agent.core.periodic(0.05, calls.append, args=["p"], wait=None)
    wait_until(lambda: "soon" in calls)
    assert "p" not in calls  # wait=None: first call after one period
    wait_until(lambda: "p" in calls)
    waited.cancel()
    assert later.finished and "late" not in calls


def test_stop_from_inside_the_agent_does_not_deadlock(start_agent) -> None:
    class Quitter(Recorder):
        @Core.receiver("onstart")
        def start(self, sender, **kwargs):
            self.core.stop()
            self.events.append("after-stop")

    agent = start_agent("quitter", Quitter, wait=False)
    assert agent.core.wait_finished(5)
    assert "onfinish" in agent.events


def test_stop_from_a_scheduled_call(start_agent) -> None:
    agent = start_agent("sched-stop")
    agent.core.schedule(time.time() + 0.01, agent.core.stop)
    assert agent.core.wait_finished(5)


def test_spawned_greenlets_are_killed_at_stop(start_agent) -> None:
    agent = start_agent("spawner")
    forever = agent.core.spawn(gevent.sleep, 60)
    later = agent.core.spawn_later(60, lambda: None)
    agent.core.stop(timeout=5)
    assert forever.dead and later.dead


def test_send_async_from_a_thread(start_agent, wait_until) -> None:
    agent = start_agent("threads")
    seen = []
    thread = threading.Thread(target=agent.core.send_async, args=(seen.append, "from-thread"))
    thread.start()
    thread.join(5)
    wait_until(lambda: seen == ["from-thread"])


def test_unknown_subsystem_from_a_peer_gets_error_93(start_agent, router, wait_until) -> None:
    start_agent("target")
    asker = start_agent("asker")
    errors = []
    asker.core.onviperror.connect(lambda sender, error, message: errors.append(error))
    asker.core.send_vip("target", "weird", [b"x"], "m-1")
    wait_until(lambda: errors)
    reply = router.messages("error", "target")[0]
    assert reply.peer == "asker" and reply.id == "m-1" and reply.user == ""
    assert reply.args == [b"93", b"Protocol not supported", b"", b"weird"]
    assert isinstance(errors[0], UnknownSubsystem)


def test_error_frames_map_by_errno(start_agent, wait_until) -> None:
    agent = start_agent("errs")
    seen = []
    agent.core.onviperror.connect(lambda sender, error, message: seen.append(error))
    conn = agent.core.connection
    conn.deliver(Message("", "error", [b"11", b"Resource temporarily unavailable", b"x", b"RPC"], "1", ""))
    conn.deliver(Message("", "error", [b"-32001", b"protected", b"", b"pubsub"], "2", ""))
    conn.deliver(Message("", "error", [b"\x71\x00\x00\x00", b"packed", b"x", b"RPC"], "3", ""))
    wait_until(lambda: len(seen) == 3)
    assert [type(e).__name__ for e in seen] == ["Again", "VIPError", "Unreachable"]
    assert seen[1].errno == -32001 and isinstance(seen[1], VIPError)


def test_peers_answer_hello_and_core_properties(start_agent, router, wait_until) -> None:
    bob = start_agent("bob", version="2.5")
    alice = start_agent("alice")
    assert alice.vip.hello("bob").get(timeout=2) == [1.0, "bob", "alice"]
    assert alice.vip.hello().get(timeout=2) == [1.0, "memory-router", "alice"]
    assert bob.core.version() == "2.5"
    assert alice.vip.rpc.call("bob", "agent.version").get(timeout=2) == "2.5"
    assert bob.core.identity == "bob" and bob.core.router_identity == "memory-router"
    wait_until(lambda: bob.core.instance_name == "testplatform")


def test_connection_statistics(start_agent) -> None:
    agent = start_agent("stats")
    stats = agent.core.statistics()
    assert stats["identity"] == "stats" and stats["connected"] is True


def test_a_bus_without_curve_keys_gets_the_address_as_given(router) -> None:
    seen = []

    def factory(params):
        seen.append(params)
        return router.factory(params)

    factory.uses_curve_keys = False
    agent = Agent(
        identity="amqp",
        address="amqps://broker:5671/volttron",
        connection_factory=factory,
        enable_auth=False,
        enable_store=False,
        heartbeat_autostart=False,
    )
    event = gevent.event.Event()
    gevent.spawn(agent.core.run, event)
    assert event.wait(5)
    agent.core.stop(timeout=5)
    assert seen[0].address == "amqps://broker:5671/volttron" and seen[0].serverkey is None


def test_unknown_bus_is_a_clear_failure() -> None:
    agent = Agent(identity="x", message_bus="zqm", enable_auth=False)
    gevent.spawn(agent.core.run).join(5)
    assert isinstance(agent.core.failure, ConnectError) and "did you mean 'zmq'" in str(agent.core.failure)


def test_agent_signature_keeps_the_original_order() -> None:
    import inspect

    names = list(inspect.signature(Agent.__init__).parameters)[1:22]
    assert names == [
        "identity",
        "address",
        "context",
        "publickey",
        "secretkey",
        "serverkey",
        "heartbeat_autostart",
        "heartbeat_period",
        "volttron_home",
        "agent_uuid",
        "enable_store",
        "enable_web",
        "enable_channel",
        "reconnect_interval",
        "version",
        "enable_fncs",
        "instance_name",
        "message_bus",
        "volttron_central_address",
        "volttron_central_instance_name",
        "enable_auth",
    ]  # reference §4.1
    agent = Agent("positional", None, None, None, None, None, False, 30, enable_auth=False)
    assert agent.core.identity == "positional" and agent.vip.heartbeat.period == 30
