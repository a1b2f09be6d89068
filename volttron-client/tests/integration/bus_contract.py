"""The message-bus contract: what agents see on a real platform, whatever its bus (idea of kombu's
``t/integration/common.py``).

:class:`BusContract` holds the tests, written once. A test module per bus subclasses it as
``Test...`` and provides the fixture ``bus``: a harness with

* ``name``: ``"zmq"`` or ``"rmq"``;
* ``agent(identity, agent_class=Agent) -> Agent``: an agent connected to the platform (keys and
  authorisation made for it), stopped at the end of the test.

Nothing here knows which bus runs: the same assertions hold for ZeroMQ and RabbitMQ.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import pytest

from volttron.client.testing.waiting import wait_until as wait_for
from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.errors import MethodNotFound, RemoteError, Unreachable


class Calculator(Agent):
    """The peer the RPC tests call."""

    @RPC.export
    def add(self, a: int, b: int = 0) -> int:
        return a + b

    @RPC.export
    def fail(self, text: str) -> None:
        raise ValueError(text)


class BusContract:
    """The behaviour every message bus gives agents; subclasses provide the ``bus`` fixture."""

    def test_an_agent_is_welcomed_and_listed(self, bus) -> None:
        alice = bus.agent("contract.alice")
        assert alice.core.connected
        version, router, me = alice.vip.hello().get(timeout=5)
        assert me == "contract.alice" and router
        assert "contract.alice" in alice.vip.peerlist().get(timeout=5)

    def test_rpc_call_returns_the_result(self, bus) -> None:
        bus.agent("contract.calc", Calculator)
        caller = bus.agent("contract.caller")
        assert caller.vip.rpc.call("contract.calc", "add", 2, 3).get(timeout=5) == 5
        assert caller.vip.rpc.call("contract.calc", "add", 2, b=40).get(timeout=5) == 42
        assert caller.vip.rpc.call("contract.calc", "agent.version").get(timeout=5) == "0.1"

    def test_rpc_errors_are_mapped(self, bus) -> None:
        bus.agent("contract.calc", Calculator)
        caller = bus.agent("contract.caller")
        with pytest.raises(RemoteError) as raised:
            caller.vip.rpc.call("contract.calc", "fail", "no luck").get(timeout=5)
        assert raised.value.exc_type == "builtins.ValueError" and "no luck" in str(raised.value)
        with pytest.raises(MethodNotFound):
            caller.vip.rpc.call("contract.calc", "no_such_method").get(timeout=5)

    def test_rpc_to_a_missing_peer_is_unreachable_at_once(self, bus) -> None:
        caller = bus.agent("contract.caller")
        started = time.monotonic()
        with pytest.raises(Unreachable) as raised:
            caller.vip.rpc.call("contract.nobody", "anything").get(timeout=10)
        assert raised.value.peer == "contract.nobody"
        assert time.monotonic() - started < 5

    def test_pubsub_subscribe_publish_unsubscribe(self, bus) -> None:
        subscriber = bus.agent("contract.subscriber")
        publisher = bus.agent("contract.publisher")
        got: list[tuple[str, str, dict, Any]] = []

        def on_message(peer, sender, bus_name, topic, headers, message) -> None:
            got.append((sender, topic, headers, message))

        subscriber.vip.pubsub.subscribe("pubsub", "contract/topic", on_message).get(timeout=5)
        subscriber.vip.pubsub.subscribe("pubsub", "contract/marker", on_message).get(timeout=5)
        publish = publisher.vip.pubsub.publish
        assert publish("pubsub", "contract/topic/a", {"h": "1"}, {"n": 1}).get(timeout=5) >= 1
        publisher.vip.pubsub.publish("pubsub", "contract/other", message="not for us").get(timeout=5)
        publisher.vip.pubsub.publish("pubsub", "contract/marker", message="m1").get(timeout=5)
        wait_for(lambda: any(t == "contract/marker" for _, t, _, _ in got), 10, "the first marker")
        sender, topic, headers, message = got[0]
        assert (sender, topic, message) == ("contract.publisher", "contract/topic/a", {"n": 1})
        assert headers["h"] == "1" and headers["min_compatible_version"] == "3.0"
        assert [t for _, t, _, _ in got] == ["contract/topic/a", "contract/marker"]

        subscriber.vip.pubsub.unsubscribe("pubsub", "contract/topic", on_message).get(timeout=5)
        publisher.vip.pubsub.publish("pubsub", "contract/topic/b", message=2).get(timeout=5)
        publisher.vip.pubsub.publish("pubsub", "contract/marker", message="m2").get(timeout=5)
        markers = lambda: [m for _, t, _, m in got if t == "contract/marker"]  # noqa: E731
        wait_for(lambda: len(markers()) == 2, 10, "the second marker")
        assert "contract/topic/b" not in [t for _, t, _, _ in got]

    def test_a_publish_reaches_every_subscriber_once(self, bus) -> None:
        publisher = bus.agent("contract.publisher")
        received: dict[str, list[Any]] = {"contract.one": [], "contract.two": []}
        for identity, seen in received.items():
            agent = bus.agent(identity)

            def record(peer, sender, bus_name, topic, headers, message, seen=seen) -> None:
                seen.append(message)

            # overlapping prefixes, one callback: the agent still gets one copy, and calls it once
            agent.vip.pubsub.subscribe("pubsub", ["contract/fan", "contract/fan/out"], record).get(timeout=5)
            agent.vip.pubsub.subscribe("pubsub", "contract/end", record).get(timeout=5)
        publisher.vip.pubsub.publish("pubsub", "contract/fan/out/x", message="hello").get(timeout=5)
        publisher.vip.pubsub.publish("pubsub", "contract/end", message="end").get(timeout=5)
        # one publisher's messages arrive in order: once "end" is in, a duplicate would be too
        wait_for(lambda: all("end" in seen for seen in received.values()), 10, "both subscribers")
        assert received == {"contract.one": ["hello", "end"], "contract.two": ["hello", "end"]}

    def test_peerlist_announces_arrivals_and_departures(self, bus) -> None:
        watcher = bus.agent("contract.watcher")
        events: list[tuple[str, str]] = []
        watcher.vip.peerlist.onadd.connect(lambda sender, peer, **kw: events.append(("add", peer)))
        watcher.vip.peerlist.ondrop.connect(lambda sender, peer, **kw: events.append(("drop", peer)))
        comer = bus.agent("contract.comer")
        wait_for(lambda: ("add", "contract.comer") in events, 10, "the add announcement")
        assert "contract.comer" in watcher.vip.peerlist().get(timeout=5)
        comer.core.stop(timeout=10)
        wait_for(lambda: ("drop", "contract.comer") in events, 10, "the drop announcement")
        assert "contract.comer" not in watcher.vip.peerlist().get(timeout=5)

    def test_a_publisher_that_never_waits_gets_every_acknowledgement(self, bus) -> None:
        """Publishing back to back, never yielding: the router must not drop acknowledgements because
        the publisher does not read them; the publisher is slowed instead, and every result resolves."""
        publisher = bus.agent("contract.burst")
        count = 20_000
        publish = publisher.vip.pubsub.publish
        results = [publish("pubsub", "contract/burst", message=i) for i in range(count)]
        deadline = time.monotonic() + 60
        unresolved = 0
        for result in results:
            try:
                result.get(timeout=max(0.01, deadline - time.monotonic()))
            except gevent.Timeout:
                unresolved += 1
        assert unresolved == 0, f"{unresolved} of {count} publishes were never acknowledged"

