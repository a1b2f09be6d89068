"""Pushes to agents: order, peer-list filter, time-outs, a slow agent holding up only itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.event import AsyncResult, Event

from volttron.client.testing.clock import ManualClock
from volttron.client.vip.agent.errors import Unreachable
from volttron.server.services.config_store.pusher import PushOutcome, UpdatePusher
from volttron.server.services.config_store.store import AgentStores
from volttron.utils.jsonrpc import METHOD_NOT_FOUND, UNAUTHORIZED, MethodNotFound, Unauthorized


class FakeAgents:
    """Answers RPC calls like agents would; ``stall`` names agents that never answer."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple, dict]] = []
        self.connected: set[str] = set()
        self.stall: set[str] = set()
        self.errors: dict[str, Exception] = {}

    def call(self, peer: str, method: str, *args: Any, **kwargs: Any) -> AsyncResult:
        self.calls.append((peer, method, args, kwargs))
        result = AsyncResult()
        if peer in self.errors:
            result.set_exception(self.errors[peer])
        elif peer not in self.stall:
            gevent.spawn_later(0.001, result.set, None)
        return result

    def sent_to(self, peer: str) -> list[tuple]:
        return [(m, a, k) for p, m, a, k in self.calls if p == peer]


@pytest.fixture
def agents() -> FakeAgents:
    return FakeAgents()


def test_pushes_to_one_agent_keep_their_order(agents: FakeAgents) -> None:
    agents.connected.add("a")
    pusher = UpdatePusher(agents.call, agents.connected.__contains__, timeout=2)
    results = [pusher.push("a", "config.update", "UPDATE", "c", contents=n) for n in range(20)]
    gevent.joinall([gevent.spawn(r.get) for r in results], timeout=5)
    assert [k["contents"] for _, _, k in agents.sent_to("a")] == list(range(20))
    assert all(r.get() == PushOutcome(True, "delivered", ("UPDATE", "c")) for r in results)
    assert pusher.statistics() == {"delivered": 20, "skipped": 0, "failed": 0, "dropped": 0, "queues": 0}


def test_agents_not_in_the_peer_list_are_skipped(agents: FakeAgents) -> None:
    pusher = UpdatePusher(agents.call, agents.connected.__contains__, timeout=2)
    outcome = pusher.push("absent", "config.update", "NEW", "c").get(timeout=5)
    assert outcome == PushOutcome(False, "not connected") and agents.calls == []
    forced = pusher.push_built("absent", "config.initial_update", lambda: (({"c": 1},), {}),
                               only_if_connected=False).get(timeout=5)
    assert forced.delivered and forced.sent == ({"c": 1},)


def test_a_stuck_agent_times_out_and_delays_only_itself(agents: FakeAgents) -> None:
    agents.connected.update({"slow", "fast"})
    agents.stall.add("slow")
    clock = ManualClock()
    pusher = UpdatePusher(agents.call, agents.connected.__contains__, timeout=30, clock=clock)
    slow = [pusher.push("slow", "config.update", "UPDATE", "c", contents=n) for n in range(2)]
    fast = pusher.push("fast", "config.update", "NEW", "c").get(timeout=5)  # the clock has not moved
    assert fast.delivered and pusher.pending("slow") == 1 and not slow[0].ready()
    assert clock.advance(29.9) == 0 and not slow[0].ready()  # the time-out is the pusher's, on its clock
    assert clock.advance(0.1) == 1  # the first times out; the second is sent and waits in turn
    first = slow[0].get(timeout=5)
    assert not first.delivered and "no answer within 30 s" in first.detail and not slow[1].ready()
    assert clock.advance(30) == 1 and not slow[1].get(timeout=5).delivered
    assert [k["contents"] for _, _, k in agents.sent_to("slow")] == [0, 1]


@pytest.mark.parametrize(("error", "detail"), [
    (Unreachable(113, "gone", "a", "RPC"), "left the platform"),
    (MethodNotFound(METHOD_NOT_FOUND, "unimplemented method"), "does not take configuration updates"),
    (Unauthorized(UNAUTHORIZED, "unauthorized", {"detail": "no"}), "sync_agent_config"),
])
def test_failures_are_outcomes_not_exceptions(agents: FakeAgents, error: Exception, detail: str) -> None:
    agents.connected.add("a")
    agents.errors["a"] = error
    pusher = UpdatePusher(agents.call, agents.connected.__contains__, timeout=1)
    outcome = pusher.push("a", "config.update", "NEW", "c").get(timeout=5)
    assert not outcome.delivered and detail in outcome.detail
    assert pusher.statistics()["failed"] == 1


def test_a_full_queue_drops_the_oldest(agents: FakeAgents) -> None:
    agents.connected.add("a")
    agents.stall.add("a")
    clock = ManualClock()
    pusher = UpdatePusher(agents.call, agents.connected.__contains__, timeout=5, max_queue=2, clock=clock)
    first = pusher.push("a", "m", 1)
    clock.advance(0)  # lets the worker run: it sent the first and waits for its answer on the clock
    assert len(clock.pending()) == 1 and pusher.pending("a") == 0 and agents.sent_to("a") == [("m", (1,), {})]
    second, third, fourth = (pusher.push("a", "m", n) for n in (2, 3, 4))
    assert second.get(timeout=1) == PushOutcome(False, "dropped: too many updates waiting")
    assert not third.ready() and not fourth.ready() and not first.ready()
    pusher.stop(timeout=2)
    assert all(not r.get(timeout=1).delivered for r in (first, third, fourth))
    assert pusher.push("a", "m", 5).get(timeout=1).detail == "the configuration store is stopping"


def test_snapshots_are_made_when_sent(tmp_path: Path, agents: FakeAgents) -> None:
    agents.connected.add("a")
    gate = Event()
    store = AgentStores(tmp_path)
    store.pusher = UpdatePusher(agents.call, agents.connected.__contains__, timeout=2)
    store.pusher.push_built("a", "hold", lambda: (gate.wait(5), ((), {}))[1])
    initial = store.send_initial("a")
    store.store("a", "config", '{"n": 1}', "json", trigger_callback=False)
    gate.set()
    assert initial.get(timeout=5).sent == ({"config": {"n": 1}},)
    sent = store.pusher.push("a", "sync").get(timeout=5)
    assert sent.delivered
    methods = [m for m, _, _ in agents.sent_to("a")]
    assert methods == ["hold", "config.initial_update", "config.update", "sync"]


def test_store_pushes_follow_writes(tmp_path: Path, agents: FakeAgents) -> None:
    agents.connected.add("a")
    store = AgentStores(tmp_path)
    store.pusher = UpdatePusher(agents.call, agents.connected.__contains__, timeout=2)
    store.store("a", "Config", '{"d": "config://dev"}', "json").get(timeout=5)
    store.store("a", "config", '{"d": 2}', "json", trigger_callback=False).get(timeout=5)
    assert store.store("a", "quiet", "x", "raw", send_update=False) is None
    pushes = store.store_many("a", [("main", '["config://Dev"]', "json"), ("Dev", "[1]", "json")])
    [p.get(timeout=5) for p in pushes]
    store.delete("a", "DEV").get(timeout=5)
    store.delete_store("a").get(timeout=5)
    assert agents.sent_to("a") == [
        ("config.update", ("NEW", "Config"), {"contents": {"d": "config://dev"}, "trigger_callback": True}),
        ("config.update", ("UPDATE", "config"), {"contents": {"d": 2}, "trigger_callback": False}),
        ("config.update", ("NEW", "Dev"), {"contents": [1], "trigger_callback": True}),
        ("config.update", ("NEW", "main"), {"contents": ["config://Dev"], "trigger_callback": True}),
        ("config.update", ("DELETE", "Dev"), {"trigger_callback": True}),
        ("config.update", ("DELETE_ALL", None), {"trigger_callback": True}),
    ]
