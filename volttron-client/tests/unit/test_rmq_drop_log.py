"""What others send decides how often the RabbitMQ back-end drops a message: its log stays bounded."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from volttron.client.messagebus.base import ConnectionParams
from volttron.client.messagebus.rmq import RmqConnection


def test_a_flood_of_forged_messages_logs_one_line_per_sender_and_counts_them_all(
        caplog: pytest.LogCaptureFixture) -> None:
    conn = RmqConnection(ConnectionParams("amqp://127.0.0.1:9/v", "victim"))
    forged = SimpleNamespace(app_id="i.platform.control", user_id="i.mallory")
    other = SimpleNamespace(app_id="x", user_id="i.eve")
    with caplog.at_level(logging.WARNING, logger="volttron.client.messagebus.rmq"):
        for _ in range(10_000):
            conn._drop("a message claiming another sender", forged)  # noqa: SLF001 - the attacked path
        conn._drop("a message claiming another sender", other)  # noqa: SLF001
    lines = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 2, [r.getMessage() for r in lines]
    assert conn.statistics()["dropped"] == 10_001
