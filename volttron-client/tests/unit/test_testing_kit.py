"""The unit-test kit (volttron.client.testing): the real agent on an in-memory bus and a manual clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from volttron.client.messaging.health import STATUS_BAD
from volttron.client.testing import AgentCallbackError, AgentHarness, HarnessError
from volttron.client.testing.clock import ClockError
from volttron.client.testing.controls import UnknownMethodError
from volttron.client.vip.agent import RPC, Agent, Core, PubSub, Unreachable
from volttron.client.vip.agent.agent import Subsystems
from volttron.utils.errors import FrameError
from volttron.utils.jsonrpc import MethodNotFound, RemoteError, Unauthorized
from volttron.utils.scheduling import periodic


class Thermostat(Agent):
    """A small agent using the subsystems the kit drives."""

    def __init__(self, config_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[Any] = []
        self.setpoint = None
        with open(config_path) if config_path else _nothing() as f:
            self.file_config = json.load(f) if f else {}
        self.vip.config.set_default("config", {"setpoint": 20, "topic": "devices/zone1"})
        self.vip.config.subscribe(self.configure, actions=["NEW", "UPDATE", "DELETE"], pattern="config")

    def configure(self, name: str, action: str, contents: Any) -> None:
        self.events.append(("config", action, contents))
        if contents is None:
            return
        if contents.get("setpoint") == "explode":
            raise ValueError("bad setpoint")
        self.setpoint = contents["setpoint"]
        self.vip.pubsub.unsubscribe("pubsub", None, None)
        self.vip.pubsub.subscribe("pubsub", contents["topic"], self.on_zone)

    def on_zone(self, peer, sender, bus, topic, headers, message) -> None:
        self.events.append(("zone", sender, topic, message, headers))

    @PubSub.subscribe("pubsub", "alerts/", all_platforms=True)  # survives unsubscribe(None, None)
    def on_alert(self, peer, sender, bus, topic, headers, message) -> None:
        self.events.append(("alert", topic, message))

    @RPC.export
    def set_setpoint(self, value: float) -> str:
        self.setpoint = value
        self.vip.pubsub.publish("pubsub", "record/setpoint", headers={"unit": "C"}, message=value)
        return "ok"

    @RPC.export("caller")
    def who_called(self) -> str:
        return self.vip.rpc.context.vip_message.peer

    @RPC.export
    @RPC.allow("hvac_admin")
    def reset(self) -> None:
        self.setpoint = None

    @RPC.export
    def bad_result(self) -> Any:
        return object()

    @RPC.export
    def ask_weather(self, city: str) -> Any:
        return self.vip.rpc.call("weather", "forecast", city).get(timeout=1)

    @Core.receiver("onsetup")
    def setup(self, sender, **kwargs) -> None:
        self.events.append(("onsetup",))

    @Core.receiver("onstart")
    def started(self, sender, **kwargs) -> None:
        self.events.append(("onstart",))

    @Core.receiver("onstop")
    def stopping(self, sender, **kwargs) -> None:
        self.events.append(("onstop",))

    @Core.periodic(30, wait=None)
    def poll(self) -> None:
        self.events.append(("poll",))


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def kinds(agent: Thermostat) -> list[str]:
    return [e[0] for e in agent.events]


def test_start_runs_setup_start_and_initial_configuration_in_order(agent_harness) -> None:
    harness = agent_harness(Thermostat, config_store={"config": {"setpoint": 22, "topic": "devices/z2"}})
    agent = harness.agent
    assert agent.events == []
    harness.start()
    assert kinds(agent) == ["onsetup", "onstart", "config"]
    assert agent.events[-1] == ("config", "NEW", {"setpoint": 22, "topic": "devices/z2"})
    assert harness.core.connected and harness.core.identity == "test.agent"
    harness.stop()
    assert kinds(agent)[-1] == "onstop" and not harness.core.connected


def test_default_configuration_when_the_store_is_empty(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    assert harness.agent.setpoint == 20
    assert harness.pubsub.prefixes() == ["alerts/", "devices/zone1"]


def test_configuration_file_is_passed_as_config_path(agent_harness) -> None:
    harness = agent_harness(Thermostat, config={"greeting": "hi"})
    assert harness.agent.file_config == {"greeting": "hi"}
    assert agent_harness(Thermostat, config=harness.config_path).agent.file_config == {"greeting": "hi"}


def test_missing_configuration_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(HarnessError, match="does not exist"):
        AgentHarness(Thermostat, config=tmp_path / "nope.json", workdir=tmp_path / "w")


def test_deliver_reaches_prefix_subscribers_only(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    assert harness.pubsub.deliver("devices/zone1/temp", 21.5, headers={"h": 1}, sender="driver") == 1
    assert harness.pubsub.deliver("devices/zone2/temp", 1) == 0
    assert harness.pubsub.deliver("devices/zone1/temp", 1, bus="other") == 0
    assert harness.pubsub.deliver("alerts/x", {"a": 1}) == 1
    assert harness.agent.events[-2] == ("zone", "driver", "devices/zone1/temp", 21.5, {"h": 1})
    assert harness.agent.events[-1] == ("alert", "alerts/x", {"a": 1})
    assert harness.pubsub.is_subscribed("devices/zone1") and not harness.pubsub.is_subscribed("devices")


def test_configuration_update_moves_the_subscription(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    harness.config_store.set("config", {"setpoint": 18, "topic": "devices/zone9"})
    assert harness.agent.events[-1] == ("config", "UPDATE", {"setpoint": 18, "topic": "devices/zone9"})
    assert harness.pubsub.deliver("devices/zone1/t", 1) == 0
    assert harness.pubsub.deliver("devices/zone9/t", 1) == 1
    harness.config_store.delete("config")  # back to the default: an UPDATE, as the platform sends
    assert harness.agent.events[-1][:2] == ("config", "UPDATE") and harness.agent.setpoint == 20


def test_a_failing_configuration_callback_reaches_the_test(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    with pytest.raises(AgentCallbackError, match="bad setpoint"):
        harness.config_store.set("config", {"setpoint": "explode", "topic": "t"})


def test_a_failing_initial_configuration_fails_start(agent_harness) -> None:
    harness = agent_harness(Thermostat, config_store={"config": {"setpoint": "explode"}})
    with pytest.raises(AgentCallbackError, match="bad setpoint"):
        harness.start()


def test_agent_writes_to_its_store_are_recorded_and_pushed_back(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    harness.config.set("config", {"setpoint": 25, "topic": "t"}, trigger_callback=True)
    harness.settle()  # the store's push arrives as on a platform: after set() returned
    assert harness.config_store.writes == [("config", {"setpoint": 25, "topic": "t"})]
    assert harness.agent.setpoint == 25
    assert harness.config.get("config") == {"setpoint": 25, "topic": "t"}
    harness.config.delete("config")
    assert harness.config_store.writes[-1] == ("config", None) and harness.config_store.names() == []


def test_rpc_invoke_as_a_peer(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    assert harness.rpc.invoke("set_setpoint", 23.5) == "ok"
    assert harness.pubsub.published[-1].topic == "record/setpoint"
    assert harness.pubsub.published[-1].headers["unit"] == "C"
    assert harness.rpc.invoke("caller", caller="ui.agent") == "ui.agent"
    assert harness.rpc.invoke("agent.version") == "0.1"


def test_a_served_request_leaves_nothing_to_wait_for(agent_harness) -> None:
    """Requests run in greenlets that wait for the next one once done: such a waiting greenlet is
    not agent code still running."""
    harness = agent_harness(Thermostat).start()
    assert harness.rpc.invoke("set_setpoint", 21.0) == "ok"
    harness.wait_spawned(timeout=1)


def test_rpc_invoke_checks_capabilities(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    with pytest.raises(Unauthorized):
        harness.rpc.invoke("reset")
    with pytest.raises(Unauthorized):
        harness.rpc.invoke("reset", capabilities=["other"])
    harness.rpc.invoke("reset", capabilities=["hvac_admin"])
    assert harness.agent.setpoint is None


def test_rpc_invoke_rejects_unknown_methods_and_unserialisable_results(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    with pytest.raises(UnknownMethodError, match="set_setpoint"):
        harness.rpc.invoke("no_such")
    with pytest.raises(FrameError, match="bad_result"):
        harness.rpc.invoke("bad_result")
    with pytest.raises(FrameError):
        harness.rpc.invoke("set_setpoint", object())


def test_calls_from_the_agent_get_registered_answers(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    harness.rpc.respond("weather", "forecast", lambda city: {"city": city, "t": 3})
    assert harness.rpc.invoke("ask_weather", "Richland") == {"city": "Richland", "t": 3}
    assert harness.rpc.calls_to("weather", "forecast")[-1].args == ("Richland",)
    harness.rpc.respond("weather", "forecast", {"fixed": True})
    assert harness.rpc.invoke("ask_weather", "x") == {"fixed": True}


def test_calls_to_unknown_peers_and_methods_fail_as_on_a_platform(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    rpc = harness.agent.vip.rpc
    with pytest.raises(Unreachable):
        rpc.call("nobody", "x").get(timeout=1)
    harness.rpc.add_peer("weather")
    with pytest.raises(MethodNotFound):
        rpc.call("weather", "forecast", "x").get(timeout=1)
    harness.rpc.respond("weather", "forecast", KeyError("no city"))
    with pytest.raises(RemoteError) as caught:
        rpc.call("weather", "forecast", "x").get(timeout=1)
    assert caught.value.exc_type == "builtins.KeyError"
    harness.rpc.respond("weather", "crash", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a RemoteError that is also the builtin class
        rpc.call("weather", "crash").get(timeout=1)
    rpc.notify("nobody", "ignored")  # notifications never report
    assert [c.method for c in harness.rpc.calls][-1] == "ignored" and harness.rpc.calls[-1].notify


def test_agent_calling_itself(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    assert harness.agent.vip.rpc.call("test.agent", "set_setpoint", 1).get(timeout=1) == "ok"
    peers = sorted(harness.agent.vip.peerlist().get(timeout=1))
    assert peers == ["platform.auth", "platform.config_store", "test.agent"]


def test_publish_needs_json_values(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    with pytest.raises(FrameError, match="record/x"):
        harness.agent.vip.pubsub.publish("pubsub", "record/x", message={1, 2})


def test_timers_follow_the_test_clock(agent_harness) -> None:
    harness = agent_harness(Thermostat, heartbeat_period=10).start()
    assert len(harness.heartbeats()) == 1  # the first heartbeat goes at start
    assert harness.advance(0) == 0  # nothing else is due; poll waits one period
    assert kinds(harness.agent).count("poll") == 0
    harness.advance(30)
    assert kinds(harness.agent).count("poll") == 1
    assert len(harness.heartbeats()) == 4  # at 0, 10, 20, 30 s
    assert harness.heartbeats()[-1].message == "GOOD"
    harness.health.set_status(STATUS_BAD, "sensor lost")  # a change restarts the heartbeat at once
    harness.advance(0)
    assert harness.heartbeats()[-1].message == "BAD"


def test_schedule_spawn_later_and_cancel(agent_harness) -> None:
    harness = agent_harness(Thermostat, heartbeat_autostart=False).start()
    calls = []
    core = harness.core
    now = harness.clock.now()
    core.schedule(now + 5, calls.append, "at5")
    later = core.spawn_later(3, calls.append, "at3")
    cancelled = core.schedule(now + 4, calls.append, "never")
    cancelled.cancel()
    core.schedule(periodic(2, stop=None), calls.append, "p")
    harness.advance(5)
    assert calls == ["p", "p", "at3", "p", "at5"]
    assert later.dead and cancelled.finished


def test_clock_refuses_time_travel_and_runaway_timers(agent_harness) -> None:
    harness = agent_harness(Thermostat, heartbeat_autostart=False).start()
    with pytest.raises(ClockError):
        harness.advance(-1)
    harness.core.periodic(0.001, lambda: None)
    with pytest.raises(ClockError, match="smaller steps"):
        harness.advance(10_000)


def test_a_timer_that_stops_the_agent_ends_the_advance(agent_harness) -> None:
    harness = agent_harness(Thermostat, heartbeat_autostart=False).start()
    harness.core.spawn_later(10, harness.core.stop)
    harness.advance(3600)
    assert harness.stopped and kinds(harness.agent).count("poll") == 0  # it stopped at 10 s, before 30 s
    assert harness.core.stop_requests == 1 and kinds(harness.agent)[-1] == "onstop"


def test_raw_messages_go_over_the_memory_router(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    harness.core.send_vip("nobody", "custom", [b"x"], "m1")
    assert harness.router.messages("custom", sender="test.agent")[-1].args == [b"x"]
    assert harness.agent.vip.channel is None and harness.agent.vip.web is None


def test_factory_functions_are_built_like_vip_main_builds_them(agent_harness) -> None:
    def thermostat(config_path, **kwargs):
        return Thermostat(config_path, **kwargs)

    harness = agent_harness(thermostat, identity="t2", instance_name="campus").start()
    assert harness.core.identity == "t2" and harness.core.instance_name == "campus"


def test_a_factory_that_builds_no_agent_is_refused(tmp_path) -> None:
    with pytest.raises(HarnessError, match="did not build an agent"):
        AgentHarness(lambda **kwargs: object(), workdir=tmp_path)


def test_harness_life_cycle_errors(agent_harness) -> None:
    harness = agent_harness(Thermostat)
    with pytest.raises(HarnessError, match="start the agent"):
        harness.advance(1)
    harness.start()
    with pytest.raises(HarnessError, match="already"):
        harness.start()
    harness.stop()
    harness.stop()  # once only
    assert kinds(harness.agent).count("onstop") == 1


def test_context_manager_without_pytest(tmp_path) -> None:
    with AgentHarness(Thermostat) as harness:
        workdir = harness.workdir
        assert workdir.is_dir() and harness.started
    assert harness.stopped and not workdir.exists()


def test_the_harness_runs_the_real_core_and_subsystems(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    assert type(harness.core) is Core and type(harness.agent.vip) is Subsystems
    assert harness.core.clock is harness.clock


def test_the_kit_patches_nothing_and_fakes_no_subsystem() -> None:
    import volttron.client.testing as kit

    folder = Path(kit.__file__).parent
    assert sorted(p.name for p in folder.glob("fake_*.py")) == []
    for source in folder.glob("*.py"):
        text = source.read_text()
        assert "mock.patch" not in text and "unittest.mock" not in text, source.name


def test_spawned_greenlets_are_waited_for_and_killed(agent_harness) -> None:
    import gevent

    harness = agent_harness(Thermostat).start()
    done = []
    harness.core.spawn(done.append, 1)
    harness.wait_spawned(timeout=5)
    assert done == [1]
    forever = harness.core.spawn(gevent.sleep, 3600)
    with pytest.raises(HarnessError, match="still running"):
        harness.wait_spawned(timeout=0.05)
    harness.stop()
    assert forever.dead


def test_query_peerlist_ping_and_hello_answer_locally(agent_harness) -> None:
    harness = agent_harness(Thermostat, instance_name="campus").start()
    vip = harness.agent.vip
    assert vip.query.query("instance-name").get(timeout=1) == "campus"
    harness.router.query_values["serverkey"] = "K" * 43
    assert vip.query.query("serverkey").get(timeout=1) == "K" * 43
    assert vip.query.query("unknown").get(timeout=1) in (None, "")
    harness.rpc.add_peer("weather")
    assert "weather" in vip.peerlist().get(timeout=1)
    assert vip.ping.ping_peer("weather", "x").get(timeout=1) == ["x"]
    with pytest.raises(Unreachable):
        vip.ping.ping_peer("nobody").get(timeout=1)
    harness.rpc.remove_peer("weather")
    assert "weather" not in vip.peerlist().get(timeout=1)
    assert vip.hello.hello().get(timeout=1)[-1] == "test.agent"  # the router's welcome names us


def test_an_agent_without_the_store(agent_harness) -> None:
    class Plain(Agent):
        @RPC.export
        def ping(self) -> str:
            return "pong"

    harness = agent_harness(Plain, enable_store=False).start()
    assert harness.config is None and harness.rpc.invoke("ping") == "pong"
    harness.config_store.set("config", {"ignored": True})  # nobody listens: stored, nothing pushed
    assert harness.config_store.get("config") == {"ignored": True}


def test_pubsub_list_and_published_on(agent_harness) -> None:
    harness = agent_harness(Thermostat).start()
    listed = harness.agent.vip.pubsub.list("pubsub", "devices").get(timeout=1)
    assert listed == [["", "devices/zone1", True]]
    harness.agent.vip.pubsub.publish("pubsub", "record/a", message=1)
    harness.agent.vip.pubsub.publish("pubsub", "other/b", message=2, bus="b2")
    assert [p.message for p in harness.pubsub.published_on("record/")] == [1]
    assert [p.message for p in harness.pubsub.published_on("", bus="b2")] == [2]
    harness.pubsub.clear()
    assert harness.pubsub.published == []
