"""The RabbitMQ router's pub/sub queue is bound only to what ZeroMQ-side subscribers asked for.

On ``--message-bus rmq`` the router's queue ``<instance>.router.pubsub`` hands broker publishes to
subscribers connected over ZeroMQ. It is bound to the complete words of their prefixes
(:mod:`volttron.server.router.rmq.pubsub_bindings`), so a RabbitMQ agent's publish nobody on ZeroMQ
asked for never reaches the platform process. The bindings are read from the broker
(``rabbitmqctl list_bindings`` or the management API); each test has a vhost of its own. The fixtures
are those of ``test_rmq_platform.py``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from volttron.client.messagebus.rmq_admin import HttpAdmin
from volttron.client.testing.modules import load_beside
from volttron.client.testing.waiting import wait_until as wait
from volttron.server.router.rmq.pubsub_bindings import MAX_BINDINGS

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

_platform_tests = load_beside(__file__, "test_rmq_platform", "rmq_platform_for_pubsub_bindings")
broker = _platform_tests.broker
rmq_platform = _platform_tests.rmq_platform
agents = _platform_tests.agents

WAIT = 20.0


def router_bindings(broker: Any) -> set[str]:
    """The routing keys ``<instance>.router.pubsub`` is bound with on the ``volttron`` exchange."""
    queue = f"{broker.instance}.router.pubsub"
    admin = broker.admin
    if isinstance(admin, HttpAdmin):
        rows = admin._request("GET", f"queues/{quote(broker.vhost, safe='')}/{quote(queue, safe='')}/"  # noqa: SLF001
                                     "bindings") or []
        return {row["routing_key"] for row in rows if row.get("source") == "volttron"}
    rows = broker.ctl._json("list_bindings", "-p", broker.vhost, "source_name", "destination_name",  # noqa: SLF001
                            "routing_key")
    return {row["routing_key"] for row in rows
            if row.get("source_name") == "volttron" and row.get("destination_name") == queue}


def pubsub_key(broker: Any, *words: str) -> str:
    return ".".join(["__pubsub__", broker.instance, *words, "#"])


def heartbeat_only(broker: Any) -> set[str]:
    """What the platform alone needs: the health service listens to ``heartbeat/``."""
    return {pubsub_key(broker, "heartbeat")}


def test_without_zeromq_subscribers_rabbitmq_publishes_do_not_reach_the_router(broker, agents) -> None:
    got: list[str] = []
    subscriber = agents("quiet.sub")
    subscriber.vip.pubsub.subscribe("pubsub", "devices/", lambda *a: got.append(a[3])).get(timeout=10)
    publisher = agents("quiet.pub")
    publisher.vip.pubsub.publish("pubsub", "devices/campus/x", message=1).get(timeout=10)
    wait(lambda: got, WAIT, "the publish at the RabbitMQ subscriber")
    assert got == ["devices/campus/x"]
    # the router's queue is bound only to the health service's heartbeats: nothing matches devices/...
    assert router_bindings(broker) == heartbeat_only(broker)


def test_a_zeromq_subscriber_gets_the_publishes_its_prefix_matches_and_only_its_binding_is_made(
        broker, agents) -> None:
    got: list[str] = []
    zmq_sub = agents("cam.sub", "zmq")
    publisher = agents("cam.pub")
    # a prefix ending in the middle of a word: the binding is its complete words, the index does the rest
    zmq_sub.vip.pubsub.subscribe("pubsub", "devices/cam", lambda *a: got.append(a[3])).get(timeout=10)
    assert router_bindings(broker) == heartbeat_only(broker) | {pubsub_key(broker, "devices")}
    for topic in ("other/x", "devices/cold/x", "devices/campus/x"):  # published right after the subscribe
        publisher.vip.pubsub.publish("pubsub", topic, message=topic).get(timeout=10)
    wait(lambda: got, WAIT, "the publish on devices/campus/x at the ZeroMQ subscriber")
    publisher.vip.pubsub.publish("pubsub", "devices/cam", message="last").get(timeout=10)
    wait(lambda: len(got) == 2, WAIT, "the second publish at the ZeroMQ subscriber")
    assert got == ["devices/campus/x", "devices/cam"]

    # unsubscribing removes the binding; so does a subscriber that goes away
    zmq_sub.vip.pubsub.unsubscribe("pubsub", "devices/cam", None).get(timeout=10)
    wait(lambda: router_bindings(broker) == heartbeat_only(broker), WAIT, "the binding gone")
    other = agents("cam.other", "zmq")
    other.vip.pubsub.subscribe("pubsub", "alerts/", lambda *a: None).get(timeout=10)
    assert pubsub_key(broker, "alerts") in router_bindings(broker)
    other.core.stop(timeout=10)
    wait(lambda: router_bindings(broker) == heartbeat_only(broker), WAIT, "the binding to go with its peer")


def test_too_many_distinct_bindings_fall_back_to_one_and_come_back_after_a_reconnection(
        broker, agents) -> None:
    zmq_sub = agents("many.sub", "zmq")
    prefixes = [f"many/p{n}/" for n in range(MAX_BINDINGS + 1)]
    zmq_sub.vip.pubsub.subscribe("pubsub", prefixes, lambda *a: None).get(timeout=30)
    assert router_bindings(broker) == {pubsub_key(broker)}  # __pubsub__.<instance>.#
    zmq_sub.vip.pubsub.unsubscribe("pubsub", prefixes[1:], None).get(timeout=30)
    expected = heartbeat_only(broker) | {pubsub_key(broker, "many", "p0")}
    wait(lambda: router_bindings(broker) == expected, WAIT, "the bindings back below the bound")

    # the router's connection drops: its exclusive queue goes, and comes back with the same bindings
    assert broker.close_connections(f"{broker.instance}.router") == 1
    wait(lambda: router_bindings(broker) == expected, 60, "the bindings made again after the reconnection")
    got: list[str] = []
    zmq_sub.vip.pubsub.subscribe("pubsub", "many/p0/", lambda *a: got.append(a[3])).get(timeout=10)
    publisher = agents("many.pub")
    publisher.vip.pubsub.publish("pubsub", "many/p0/x", message=0).get(timeout=10)
    wait(lambda: got, WAIT, "a publish through the bindings made again")
