"""The listener agent itself, on the testing kit of volttron-client (no platform)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from volttron_listener_agent import __version__
from volttron_listener_agent.agent import ListenerAgent

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def listener(agent_harness):
    """The listener with the example ``config`` file (not started)."""
    config = PACKAGE_ROOT / "config"
    return agent_harness(ListenerAgent, config=config, identity="listener1", version=__version__)


def test_start_logs_reports_good_health_and_starts_its_heartbeat(listener, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="volttron_listener_agent.agent"):
        listener.start()
    assert "hello (agentid listener1)" in caplog.text and f"VERSION IS: {__version__}" in caplog.text
    assert listener.health.get_status()["status"] == "GOOD"
    assert listener.health.get_status()["context"] == "hello"
    assert listener.heartbeat.period == 5.0 and listener.heartbeat.running
    listener.advance(10)
    assert len(listener.heartbeats()) == 3  # at 0, 5 and 10 s
    assert listener.heartbeats()[-1].topic == "heartbeat/listener1"


def test_it_hears_every_topic_on_every_bus_prefix(listener, caplog) -> None:
    listener.start()
    assert listener.pubsub.subscriptions()["all"] == {"": [""]}
    with caplog.at_level(logging.INFO, logger="volttron_listener_agent.agent"):
        assert listener.pubsub.deliver("devices/a/b", {"temp": 1}, headers={"h": 1}, sender="driver") == 1
        assert listener.pubsub.deliver("anything", 5) == 1
    assert "Peer: pubsub, Sender: driver:, Bus: , Topic: devices/a/b, Headers: {'h': 1}" in caplog.text
    assert "Topic: anything" in caplog.text


def test_messages_are_logged_at_the_configured_level(agent_harness, caplog) -> None:
    harness = agent_harness(ListenerAgent, config={"log-level": "DEBUG"}).start()
    with caplog.at_level(logging.INFO, logger="volttron_listener_agent.agent"):
        harness.pubsub.deliver("quiet/topic", 1)
    assert "quiet/topic" not in caplog.text
    with caplog.at_level(logging.DEBUG, logger="volttron_listener_agent.agent"):
        harness.pubsub.deliver("loud/topic", 1)
    assert "loud/topic" in caplog.text


def test_heartbeat_period_zero_leaves_the_agent_default(agent_harness) -> None:
    harness = agent_harness(ListenerAgent, config={"heartbeat_period": 0}).start()
    assert harness.heartbeat.period == 60.0  # the Agent's default autostart, not the listener's 5 s
    assert harness.health.get_status()["context"] is None  # the listener reported nothing


def test_runtime_limit_stops_the_agent(agent_harness) -> None:
    harness = agent_harness(ListenerAgent, config={"runtime_limit": 30, "heartbeat_period": 0}).start()
    harness.advance(29)
    assert not harness.stopped
    harness.advance(1)
    assert harness.stopped and harness.core.stop_requests == 1


def test_it_follows_its_configuration_store_live(listener, caplog) -> None:
    # issue 13 item 3: the README's `vctl config store listener config cfg.json` must change the agent
    listener.start()
    assert listener.heartbeat.period == 5.0
    with caplog.at_level(logging.INFO, logger="volttron_listener_agent.agent"):
        listener.config_store.set("config", {"message": "configured live", "heartbeat_period": 10})
    assert listener.heartbeat.period == 10.0, "the stored heartbeat_period was ignored"
    assert listener.health.get_status()["context"] == "configured live"
    assert "configuration 'config' updated: message 'configured live', heartbeat every 10 s" in caplog.text
    listener.advance(20)
    assert listener.heartbeats()[-1].headers["heartbeat_period"] == 10.0


def test_a_stored_configuration_at_start_wins_over_the_file(agent_harness) -> None:
    harness = agent_harness(ListenerAgent, config={"message": "from the file"},
                            config_store={"config": {"message": "from the store", "heartbeat_period": 7}})
    harness.start()
    assert harness.heartbeat.period == 7.0
    assert harness.health.get_status()["context"] == "from the store"


def test_an_unusable_stored_configuration_is_reported_and_ignored(listener, caplog) -> None:
    listener.start()
    with caplog.at_level(logging.INFO, logger="volttron_listener_agent.agent"):
        listener.config_store.set("config", ["not", "a", "mapping"])
    assert "configuration 'config' ignored" in caplog.text
    assert listener.heartbeat.period == 5.0 and listener.health.get_status()["context"] == "hello"
