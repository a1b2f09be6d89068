"""What the RabbitMQ back-end remembers per recipient and topic gives the answers it would compute anew."""

from __future__ import annotations

import dataclasses

import pytest

from volttron.client.messagebus.base import ConnectionParams, Message
from volttron.client.messagebus.rmq import RmqConnection
from volttron.client.messagebus.rmq_pika import BasicProperties
from volttron.client.messagebus.rmq_properties import PropertiesEncoder
from volttron.client.messagebus.rmq_wire import CONTENT_TYPE, message_headers, publish_routing_key


def _connection() -> RmqConnection:
    conn = RmqConnection(ConnectionParams("amqp://127.0.0.1:9/v", "alice"))
    conn.settings = dataclasses.replace(conn.settings, instance_name="inst")
    conn._encoder = PropertiesEncoder("inst.alice", "inst.alice", CONTENT_TYPE)  # noqa: SLF001 - open() makes it
    return conn


def _pika(headers: dict[str, str], message_id: str | None, type_: str) -> bytes:
    properties = BasicProperties(app_id="inst.alice", user_id="inst.alice", content_type=CONTENT_TYPE,
                                 headers=headers, message_id=message_id, type=type_)
    return b"".join(properties.encode())


@pytest.mark.parametrize("user", ["", "bob"])
def test_properties_are_the_same_from_the_remembered_tables(user: str) -> None:
    conn = _connection()
    for n in range(3):
        for key, topic, bus in (("inst.bob", None, ""), ("__pubsub__.inst.a.b.#", "a/b", ""),
                                ("__pubsub__.inst.a.b.#", "a/b", "other"), ("inst.carol", None, "")):
            message = Message("bob", "pubsub" if topic else "RPC", [], f"id{n}" if n else "", user)
            headers = message_headers(key, user or "alice")
            if topic is not None:
                headers.update(topic=topic, bus=bus)
            ours = conn._properties(message, key, topic, bus)  # noqa: SLF001 - the encoder's caller
            assert ours.encoded == _pika(headers, message.id or None, message.subsystem)


def test_topic_keys_are_judged_the_same_when_remembered() -> None:
    conn = _connection()
    cases = [("a/b", "__pubsub__.inst.a.b.#", True), ("a/b", "__pubsub__.inst.a.c.#", False),
             ("a/b", "__pubsub__.other.a.b.#", True), ("a/b", "__pubsub__.x.y.a.b.#", False),
             ("a/b", "__pubsub__..a.b.#", False), ("a/b", "inst.a.b.#", False)]
    for _ in range(2):
        for topic, key, expected in cases:
            assert conn.topic_matches_key(topic, key) is expected
    for n in range(2000):  # more than are remembered: forgotten, and judged again
        assert conn.topic_matches_key(f"t/{n}", publish_routing_key("inst", f"t/{n}"))
    for topic, key, expected in cases:
        assert conn.topic_matches_key(topic, key) is expected
