"""The listener's configuration handling and message format (no platform needed)."""

from __future__ import annotations

import logging
from pathlib import Path
from pprint import pformat

import pytest

from volttron.utils.config import load_config
from volttron_listener_agent.settings import (
    DEFAULT_HEARTBEAT_PERIOD,
    ListenerSettings,
    format_message,
    parse_settings,
)

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    assert parse_settings({}) == ListenerSettings(
        agentid="listener",
        message="Listener Message",
        heartbeat_period=5.0,
        log_level=logging.INFO,
        runtime_limit=None,
    )


def test_the_shipped_config_file() -> None:
    settings = parse_settings(load_config(PACKAGE_ROOT / "config"))
    assert settings == ListenerSettings(agentid="listener1", message="hello", heartbeat_period=5.0)


@pytest.mark.parametrize(
    "value,expected",
    [
        (10, 10.0),
        (2.5, 2.5),
        ("7", 7.0),
        (0, 0.0),
        ("0", 0.0),
        (-1, DEFAULT_HEARTBEAT_PERIOD),
        ("often", DEFAULT_HEARTBEAT_PERIOD),
        (None, DEFAULT_HEARTBEAT_PERIOD),
        (True, DEFAULT_HEARTBEAT_PERIOD),
        ([5], DEFAULT_HEARTBEAT_PERIOD),
        (float("nan"), DEFAULT_HEARTBEAT_PERIOD),
    ],
)
def test_heartbeat_period(value, expected: float) -> None:
    assert parse_settings({"heartbeat_period": value}).heartbeat_period == expected


def test_invalid_heartbeat_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="volttron_listener_agent.settings"):
        parse_settings({"heartbeat_period": "often"})
    assert "invalid heartbeat_period 'often'" in caplog.text


@pytest.mark.parametrize(
    "value,level",
    [
        ("ERROR", logging.ERROR),
        ("warn", logging.WARNING),
        ("WARNING", logging.WARNING),
        ("DEBUG", logging.DEBUG),
        ("INFO", logging.INFO),
        ("loud", logging.INFO),
        (None, logging.INFO),
        (3, logging.INFO),
    ],
)
def test_log_level(value, level: int) -> None:
    assert parse_settings({"log-level": value}).log_level == level


@pytest.mark.parametrize(
    "value,expected", [(30, 30.0), ("1.5", 1.5), (0, None), (-3, None), ("soon", None), (None, None)]
)
def test_runtime_limit(value, expected) -> None:
    assert parse_settings({"runtime_limit": value}).runtime_limit == expected


def test_text_settings_are_strings() -> None:
    settings = parse_settings({"agentid": 7, "message": None})
    assert (settings.agentid, settings.message) == ("7", "Listener Message")


def test_yaml_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("agentid: yaml-listener\nlog-level: DEBUG\nheartbeat_period: 0\n")
    settings = parse_settings(load_config(path))
    assert (settings.agentid, settings.log_level, settings.heartbeat_period) == ("yaml-listener", 10, 0.0)


def test_message_format() -> None:
    text = format_message("pubsub", "platform.health", "", "heartbeat/listener", {"TimeStamp": "t"}, {"a": 1})
    assert text == (
        "Peer: pubsub, Sender: platform.health:, Bus: , Topic: heartbeat/listener, "
        "Headers: {'TimeStamp': 't'}, Message: {'a': 1}"
    )
    long = {f"key{i}": "x" * 20 for i in range(10)}
    assert format_message("pubsub", "a", "", "t", {}, long).endswith("Message: \n" + pformat(long))
