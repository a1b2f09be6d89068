"""The listener's configuration, read into a small frozen object (no VOLTTRON connection needed).

Keys (docs/protocol.md §7.4): ``agentid`` (default ``listener``), ``message`` (default
``Listener Message``), ``heartbeat_period`` (seconds, default 5; an invalid value means 5; 0 turns
the heartbeat off), ``log-level`` (``ERROR``, ``WARN``/``WARNING``, ``DEBUG``, anything else INFO:
the level at which received messages are logged) and ``runtime_limit`` (seconds; a positive value
stops the agent after that long).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pprint import pformat
from typing import Any

DEFAULT_AGENTID = "listener"
DEFAULT_MESSAGE = "Listener Message"
DEFAULT_HEARTBEAT_PERIOD = 5.0

_log = logging.getLogger(__name__)
_LEVELS = {
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "DEBUG": logging.DEBUG,
}


@dataclass(frozen=True)
class ListenerSettings:
    """The listener's settings after defaults and validation."""

    agentid: str = DEFAULT_AGENTID
    message: str = DEFAULT_MESSAGE
    heartbeat_period: float = DEFAULT_HEARTBEAT_PERIOD
    """Seconds between heartbeats; 0 means no heartbeat."""
    log_level: int = logging.INFO
    """The level at which received messages are logged."""
    runtime_limit: float | None = None
    """Seconds after which the agent stops itself; None runs until stopped."""


def parse_settings(config: Mapping[str, Any]) -> ListenerSettings:
    """Settings from a configuration mapping; unusable values fall back to defaults with a warning."""
    return ListenerSettings(
        agentid=_text(config, "agentid", DEFAULT_AGENTID),
        message=_text(config, "message", DEFAULT_MESSAGE),
        heartbeat_period=_heartbeat_period(config.get("heartbeat_period", DEFAULT_HEARTBEAT_PERIOD)),
        log_level=_LEVELS.get(str(config.get("log-level", "INFO")).strip().upper(), logging.INFO),
        runtime_limit=_runtime_limit(config.get("runtime_limit")),
    )


def format_message(peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> str:
    """One received publish, in the listener's log format: one line unless the message is long."""
    text = pformat(message)
    # a short message (a heartbeat's "GOOD") stays on the line; a long one starts on its own
    separator = "\n" if "\n" in text else ""
    return (f"Peer: {peer}, Sender: {sender}:, Bus: {bus}, Topic: {topic}, Headers: {headers}, "
            f"Message: {separator}{text}")


def _text(config: Mapping[str, Any], key: str, default: str) -> str:
    value = config.get(key, default)
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _heartbeat_period(value: Any) -> float:
    number = _number(value)
    if number is None or number < 0:
        _log.warning("invalid heartbeat_period %r; using %g s", value, DEFAULT_HEARTBEAT_PERIOD)
        return DEFAULT_HEARTBEAT_PERIOD
    return number


def _runtime_limit(value: Any) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is None:
        _log.warning("invalid runtime_limit %r; running until stopped", value)
        return None
    return number if number > 0 else None
