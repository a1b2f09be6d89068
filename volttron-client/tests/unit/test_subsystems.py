"""Hello, ping, peer list, query, heartbeat, health, channel and web over the in-memory router."""

from __future__ import annotations

import json

import pytest

from volttron.client.known_identities import PLATFORM_WEB
from volttron.client.messaging.health import STATUS_BAD, STATUS_GOOD, Status, StatusError
from volttron.client.testing.clock import ManualClock
from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.errors import ResultTimeout, Unreachable
from volttron.client.vip.agent.subsystems.channel import ChannelClosed
from volttron.utils.time import parse_timestamp_string


def test_ping_keeps_the_router_quirk_and_ping_peer_reaches_the_peer(start_agent, router) -> None:
    start_agent("bob")
    alice = start_agent("alice")
    assert alice.vip.ping("bob").get(timeout=2) == ["bob"]
    sent = router.messages("ping", "alice")[0]
    assert (sent.peer, sent.args) == ("", [b"drop", b"bob"])
    assert alice.vip.ping.ping_peer("bob", "x", 3).get(timeout=2) == ["x", 3]
    answer = router.messages("ping", "bob")[0]
    assert answer.args == [b"pong", b"x", b"3"] and answer.user == "" and answer.peer == "alice"
    with pytest.raises(Unreachable):
        alice.vip.ping.ping_peer("ghost").get(timeout=2)


def test_peerlist_and_its_signals(start_agent, wait_until) -> None:
    alice = start_agent("alice")
    added, dropped = [], []
    alice.vip.peerlist.onadd.connect(lambda sender, peer, message_bus: added.append(peer))
    alice.vip.peerlist.ondrop.connect(lambda sender, peer, message_bus: dropped.append(peer))
    bob = start_agent("bob")
    wait_until(lambda: added == ["bob"])
    assert set(alice.vip.peerlist().get(timeout=2)) == {"alice", "bob"}
    assert alice.vip.peerlist.peers_list == {"alice", "bob"}
    bob.core.stop(timeout=5)
    wait_until(lambda: dropped == ["bob"])
    assert "bob" not in alice.vip.peerlist.peers_list


def test_query(start_agent, router) -> None:
    alice = start_agent("alice")
    router.query_values["addresses"] = ["tcp://127.0.0.1:22916"]
    assert alice.vip.query("instance-name").get(timeout=2) == "testplatform"
    assert alice.vip.query.query("addresses").get(timeout=2) == ["tcp://127.0.0.1:22916"]
    assert alice.vip.query("volttron-home").get(timeout=2) is None
    assert router.messages("query", "alice")[-1].args == [b"volttron-home"]


def test_heartbeat_publishes_status_and_restarts_on_change(start_agent, router, wait_until) -> None:
    clock = ManualClock()
    agent = start_agent("hb.agent", heartbeat_autostart=True, heartbeat_period=60, clock=clock)

    def beats():
        return [m for m in router.messages("pubsub", "hb.agent") if m.args[0] == b"publish"]

    wait_until(lambda: len(beats()) == 1)
    first = beats()[0]
    assert first.args[1] == b"heartbeat/hb.agent"
    body = json.loads(first.args[2])
    assert body["message"] == "GOOD" and parse_timestamp_string(body["headers"]["TimeStamp"]).tzinfo
    agent.vip.health.set_status(STATUS_BAD, "broken")
    wait_until(lambda: len(beats()) == 2)  # immediate heartbeat on status change
    assert json.loads(beats()[1].args[2])["message"] == "BAD"
    agent.vip.health.set_status(STATUS_BAD, "still broken")  # same status: no extra heartbeat
    assert clock.advance(60) == 1  # the marker: the next periodic heartbeat, one period later
    assert len(beats()) == 3
    stamps = [parse_timestamp_string(json.loads(m.args[2])["headers"]["TimeStamp"]) for m in beats()]
    assert round((stamps[2] - stamps[1]).total_seconds()) == 60
    assert clock.advance(59) == 0 and len(beats()) == 3  # and nothing before the next period


def test_heartbeat_rpc_controls(start_agent, router, wait_until) -> None:
    clock = ManualClock()
    agent = start_agent("hb", clock=clock)
    admin = start_agent("admin")

    def beats() -> int:
        return len([m for m in router.messages("pubsub", "hb") if m.args[0] == b"publish"])

    assert not agent.vip.heartbeat.running
    admin.vip.rpc.call("hb", "heartbeat.start_with_period", 10).get(timeout=2)
    wait_until(lambda: beats() == 1)  # the first heartbeat goes at once
    assert clock.advance(20) == 2 and beats() == 3
    admin.vip.rpc.call("hb", "heartbeat.stop").get(timeout=2)
    assert not agent.vip.heartbeat.running
    assert clock.advance(100) == 0 and clock.pending() == [] and beats() == 3  # nothing is timed any more
    with pytest.raises(ValueError):
        admin.vip.rpc.call("hb", "heartbeat.set_period", 0).get(timeout=2)
    admin.vip.rpc.call("hb", "heartbeat.set_period", 5).get(timeout=2)
    assert agent.vip.heartbeat.period == 5.0 and not agent.vip.heartbeat.running


class ListenerAgent(Agent):
    pass


def test_alert_topic_and_payload(start_agent, router) -> None:
    agent = start_agent("listener.v1_2", ListenerAgent, instance_name="my.platform")
    status = Status.build(STATUS_BAD, context={"why": "sensor"})
    agent.vip.health.send_alert("sensor_down", status).get(timeout=2)
    sent = router.messages("pubsub", "listener.v1_2")[-1]
    assert sent.args[1] == b"alerts/ListenerAgent/my_platform_listener_v1_2"
    body = json.loads(sent.args[2])
    assert body["headers"]["alert_key"] == "sensor_down"
    assert json.loads(body["message"]) == status.as_dict()


def test_health_status_rpc(start_agent) -> None:
    start_agent("patient")
    doctor = start_agent("doctor")
    status = doctor.vip.rpc.call("patient", "health.get_status").get(timeout=2)
    assert status["status"] == STATUS_GOOD and status["context"] is None and status["last_updated"]
    doctor.vip.rpc.call("patient", "health.set_status", STATUS_BAD, "x").get(timeout=2)
    as_json = json.loads(doctor.vip.rpc.call("patient", "health.get_status_json").get(timeout=2))
    assert as_json["status"] == STATUS_BAD and as_json["context"] == "x"
    with pytest.raises(StatusError):
        Status.build("FINE")


def test_channel_round_trip_timeout_and_close(start_agent, wait_until) -> None:
    control = start_agent("platform.control", enable_channel=True)
    vctl = start_agent("control.connection", enable_channel=True)
    near = vctl.vip.channel("platform.control")
    assert len(near.name) == 30
    far = control.vip.channel("control.connection", near.name)
    near.send(b"fetch")
    assert far.recv(timeout=2) == b"fetch"
    far.send_multipart([b"chunk-1", b"chunk-2"])
    assert [near.recv(timeout=2), near.recv(timeout=2)] == [b"chunk-1", b"chunk-2"]
    with pytest.raises(ResultTimeout):
        near.recv(timeout=0.05)
    with pytest.raises(ValueError):
        control.vip.channel("control.connection", near.name)
    far.close()
    with pytest.raises(ChannelClosed):
        far.recv(timeout=1)
    near.send(b"dropped quietly")  # nobody listens on the far side any more
    vctl.core.stop(timeout=5)
    with pytest.raises(ChannelClosed):
        near.recv(timeout=1)


def test_channel_closes_when_peer_leaves(start_agent) -> None:
    a = start_agent("a", enable_channel=True)
    b = start_agent("b", enable_channel=True)
    channel = a.vip.channel("b", "x")
    b.core.stop(timeout=5)
    with pytest.raises(ChannelClosed, match="left"):
        channel.recv(timeout=2)
    with pytest.raises(ChannelClosed):
        channel.send(b"late")


class WebService(Agent):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    @RPC.export
    def register_endpoint(self, endpoint, res_type):
        self.calls.append(("register_endpoint", endpoint, res_type))

    @RPC.export
    def register_path_route(self, prefix, path):
        self.calls.append(("register_path_route", prefix, path))

    @RPC.export
    def unregister_all_agent_routes(self):
        self.calls.append(("unregister_all_agent_routes",))


def test_web_registration_and_callbacks(start_agent) -> None:
    web = start_agent(PLATFORM_WEB, WebService)
    agent = start_agent("webby", enable_web=True)
    agent.vip.web.register_endpoint("/api", lambda env, data: {"path": env["PATH_INFO"], "data": data})
    agent.vip.web.register_path("/static", "/srv/www")
    answer = web.vip.rpc.call("webby", "route.callback", {"PATH_INFO": "/api/x"}, "body").get(timeout=2)
    assert answer == {"path": "/api/x", "data": "body"}
    agent.core.stop(timeout=5)
    assert web.calls == [
        ("register_endpoint", "/api", "jsonrpc"),
        ("register_path_route", "/static", "/srv/www"),
        ("unregister_all_agent_routes",),
    ]
