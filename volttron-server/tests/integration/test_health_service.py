"""``platform.health`` in a real ``volttron`` process: peers, heartbeats, stale and dropped agents.

Agents are the client's ``build_agent`` agents in this (gevent, not monkey-patched) test process;
every wait polls with a deadline and ``gevent.sleep`` so the agents keep running meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent, RemoteError

pytestmark = pytest.mark.integration

HEALTH = "platform.health"
PERIOD = 0.2


@pytest.fixture
def platform(running_platform):
    return running_platform


@pytest.fixture
def agents(platform) -> Iterator[Callable[..., Agent]]:
    made: list[Agent] = []

    def make(identity: str, transport: str = "ipc", **kwargs: Any) -> Agent:
        keys = platform.add_allow_entry(identity)
        agent = build_agent(
            address=platform.vip_address if transport == "tcp" else platform.local_address,
            identity=identity, publickey=keys.public, secretkey=keys.secret, serverkey=platform.serverkey,
            volttron_home=str(platform.home), timeout=10, **kwargs)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.core.stop(timeout=5)


def health(observer: Agent) -> dict[str, dict[str, Any]]:
    return observer.vip.rpc.call(HEALTH, "get_platform_health").get(timeout=5)


def agent_health(observer: Agent, identity: str) -> dict[str, Any]:
    return observer.vip.rpc.call(HEALTH, "get_agent_health", identity).get(timeout=5)


def test_platform_health_lists_peers_with_their_heartbeats(platform, agents) -> None:
    observer = agents("observer")
    beater = agents("beater", transport="tcp", heartbeat_autostart=True, heartbeat_period=PERIOD)

    def beating() -> dict[str, Any] | None:
        entry = health(observer).get("beater")
        return entry if entry and entry["heartbeat_period"] is not None else None

    entry = poll(beating, 10, "two heartbeats from 'beater'")
    assert entry["peer"] == "beater" and entry["service_agent"] is False
    assert entry["state"] == "connected" and entry["status"] == "GOOD" and entry["message"] == "GOOD"
    assert entry["connected"] and entry["last_heartbeat"] and entry["disconnected"] is None
    assert 0.1 < entry["heartbeat_period"] < 2.0
    report = health(observer)
    assert report["observer"]["status"] == "UNKNOWN" and report["observer"]["last_heartbeat"] is None
    assert report["observer"]["context"] == "no heartbeat received"
    assert report[HEALTH]["service_agent"] is True and report[HEALTH]["state"] == "connected"
    assert agent_health(observer, "beater")["peer"] == "beater"

    beater.vip.health.set_status("BAD", "lost the device")  # a change is published at once
    entry = poll(lambda: (e := agent_health(observer, "beater"))["status"] == "BAD" and e, 5, "status BAD")
    assert entry["message"] == "BAD" and entry["state"] == "connected"


def test_agent_that_stops_heartbeating_is_stale_then_recovers(platform, agents) -> None:
    observer = agents("observer")
    beater = agents("beater", heartbeat_autostart=True, heartbeat_period=PERIOD)
    poll(lambda: agent_health(observer, "beater")["heartbeat_period"], 10, "the heartbeat period to be known")
    beater.vip.heartbeat.stop()
    # allowance: max(3 * 0.2, 0.2 + 1) = 1.2 s after the last heartbeat
    entry = poll(lambda: (e := agent_health(observer, "beater"))["state"] == "stale" and e, 10, "stale")
    assert entry["status"] == "UNKNOWN" and entry["context"].startswith("no heartbeat for ")
    # the period is learnt from observed intervals, so it is near PERIOD, not exactly it
    expected = re.search(r"expected every ([0-9.]+) s\)", entry["context"])
    assert expected and abs(float(expected.group(1)) - PERIOD) < 0.1, entry["context"]
    assert entry["message"] == "GOOD"
    assert health(observer)["beater"]["state"] == "stale"
    beater.vip.heartbeat.start()
    poll(lambda: agent_health(observer, "beater")["state"] == "connected", 5, "heartbeats again")
    assert agent_health(observer, "beater")["status"] == "GOOD"


def test_stopped_agent_and_vanished_connection_show_as_disconnected(platform, agents) -> None:
    observer = agents("observer")
    leaver = agents("leaver", heartbeat_autostart=True, heartbeat_period=PERIOD)
    poll(lambda: "leaver" in health(observer), 5, "'leaver' to be listed")
    leaver.core.stop(timeout=5)  # agentstop
    entry = poll(lambda: (e := agent_health(observer, "leaver"))["state"] == "disconnected" and e, 5,
                 "'leaver' disconnected")
    assert entry["status"] == "UNKNOWN" and entry["disconnected"] and entry["context"] == "disconnected"

    raw = platform.client("raw.peer")  # a DEALER that says hello and then closes without agentstop
    raw.hello()
    poll(lambda: agent_health(observer, "raw.peer")["state"] == "connected", 5, "'raw.peer' connected")
    raw.close()
    poll(lambda: agent_health(observer, "raw.peer")["state"] == "disconnected", 10, "'raw.peer' dropped")

    again = agents("leaver")  # the same identity comes back: a fresh, connected entry
    assert again.core.connected
    entry = poll(lambda: (e := agent_health(observer, "leaver"))["state"] == "connected" and e, 5, "back")
    assert entry["disconnected"] is None and entry["last_heartbeat"] is None


def test_vctl_connection_is_left_out_and_heartbeats_cannot_be_spoofed(platform, agents) -> None:
    observer = agents("observer")
    vctl = platform.client("control.connection")
    vctl.hello()
    poll(lambda: agent_health(observer, "control.connection")["state"] == "connected", 5, "vctl tracked")
    assert "control.connection" not in health(observer)

    liar = agents("liar")
    liar.vip.pubsub.publish("pubsub", "heartbeat/victim", message="BAD").get(timeout=5)
    entry = poll(lambda: (e := agent_health(observer, "liar"))["last_heartbeat"] and e, 5, "liar's beat")
    assert entry["message"] == "BAD"
    assert "victim" not in health(observer)


def test_bad_requests_give_clear_errors(platform, agents) -> None:
    observer = agents("observer")
    with pytest.raises(RemoteError) as info:
        agent_health(observer, "nobody")
    assert "UnknownPeerError" in info.value.exc_info["exc_type"]
    assert "no peer 'nobody' is known" in str(info.value)
    with pytest.raises(RemoteError) as info:
        agent_health(observer, 42)
    assert "TypeError" in info.value.exc_info["exc_type"]
    with pytest.raises(RemoteError):
        observer.vip.rpc.call(HEALTH, "get_agent_health").get(timeout=5)


def test_agents_that_reconnect_after_a_platform_restart_are_tracked_again(platform_factory) -> None:
    first = platform_factory(tcp=False).start()
    keys = {name: first.add_allow_entry(name) for name in ("observer", "beater")}

    def connect(identity: str, **kwargs: Any) -> Agent:
        return build_agent(address=first.local_address, identity=identity, publickey=keys[identity].public,
                           secretkey=keys[identity].secret, serverkey=first.serverkey,
                           volttron_home=str(first.home), timeout=10, **kwargs)

    observer = connect("observer")
    beater = connect("beater", heartbeat_autostart=True, heartbeat_period=PERIOD)
    try:
        poll(lambda: agent_health(observer, "beater")["status"] == "GOOD", 10, "beats before the restart")
        assert first.stop() == 0
        second = platform_factory(tcp=False).start()  # the same home, keys and address

        def tracked_again() -> bool:
            try:
                entry = agent_health(observer, "beater")
            except Exception:  # the observer itself may not be back yet
                return False
            return entry["state"] == "connected" and entry["status"] == "GOOD"

        poll(tracked_again, 20, "'beater' heartbeating on the new platform")
        assert agent_health(observer, "observer")["state"] == "connected"
        assert second.running()
    finally:
        for agent in (beater, observer):
            agent.core.stop(timeout=5)
