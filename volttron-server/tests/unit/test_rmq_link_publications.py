"""What the router's broker link hands its ZeroMQ subscribers of a publish made on RabbitMQ."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from volttron.client.messagebus.rmq_config import parse_amqp_url
from volttron.client.messagebus.rmq_wire import publish_routing_key
from volttron.server.router.rmq.link import Delivery, RouterLink


@pytest.fixture
def link() -> tuple[RouterLink, list[Delivery]]:
    made = RouterLink(parse_amqp_url("amqp://u:p@127.0.0.1:5672/v?instance=A"))
    made.settings = parse_amqp_url("amqp://A-admin:p@127.0.0.1:5672/v?instance=A")  # as open() resolves it
    delivered: list[Delivery] = []
    made._deliver = delivered.append  # type: ignore[method-assign]
    return made, delivered


def publication(link: RouterLink, key_topic: str, header_topic: str | None) -> None:
    headers = {"bus": ""} if header_topic is None else {"topic": header_topic, "bus": ""}
    properties = SimpleNamespace(app_id="A.writer", user_id="A.writer", headers=headers, message_id="m1",
                                 type="pubsub")
    method = SimpleNamespace(routing_key=publish_routing_key("A", key_topic))
    link._on_publication_copy(None, method, properties, json.dumps({"message": 1}).encode())


def test_a_publication_reaches_the_zeromq_side_with_its_topic(link) -> None:
    router_link, delivered = link
    publication(router_link, "devices/open/x", "devices/open/x")
    publication(router_link, "devices/open/y", None)  # no header: the key names the topic
    assert [(d.kind, d.frames[0], d.frames[3]) for d in delivered] == [
        ("publication", b"writer", b"devices/open/x"), ("publication", b"writer", b"devices/open/y")]


def test_a_topic_header_that_is_not_the_routing_key_is_dropped(link) -> None:
    router_link, delivered = link
    # the broker's topic permissions judged the key (an open topic); the header names a protected one
    publication(router_link, "devices/open/x", "devices/secure/forged")
    assert delivered == []
    assert router_link.statistics()["dropped"] == 1
