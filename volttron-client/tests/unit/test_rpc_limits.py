"""Bounds on the RPC requests an agent serves: per caller, in total, queued; refusals are EAGAIN."""

from __future__ import annotations

import gevent
import pytest
from gevent.event import Event
from hypothesis import given, settings
from hypothesis import strategies as st

from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.errors import Again
from volttron.client.vip.agent.limits import RequestLimits, RequestScheduler


class Gated(Agent):
    """Its ``hold`` calls wait until the test opens the gate."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gate = Event()
        self.entered = 0

    @RPC.export
    def hold(self):
        self.entered += 1
        self.gate.wait(10)
        return "done"

    @RPC.export
    def quick(self):
        return "quick"


def test_a_burst_of_calls_is_queued_not_refused(start_agent):
    server = start_agent("server", Gated)
    client = start_agent("client")
    server.gate.set()
    results = [client.vip.rpc.call("server", "hold") for _ in range(200)]
    assert [r.get(timeout=10) for r in results] == ["done"] * 200


def test_over_the_callers_bound_is_refused_busy_and_others_are_served(start_agent):
    server = start_agent("server", Gated)
    server.vip.rpc.set_request_limits(RequestLimits(per_caller=2, queued_per_caller=3))
    flooder = start_agent("flooder")
    other = start_agent("other")
    results = [flooder.vip.rpc.call("server", "hold") for _ in range(10)]
    wait_until(lambda: sum(r.ready() for r in results) == 5)
    refused = [r for r in results if r.ready()]
    for result in refused:
        with pytest.raises(Again, match="busy"):
            result.get(timeout=0)
    assert server.entered == 2, "more than per_caller requests of one caller ran at once"
    assert other.vip.rpc.call("server", "quick").get(timeout=2) == "quick"
    assert server.vip.rpc.request_statistics()["refused"] == 5
    server.gate.set()
    assert [r.get(timeout=5) for r in results if r not in refused] == ["done"] * 5
    wait_until(lambda: server.vip.rpc.request_statistics()["callers"] == 0)


def test_notifications_over_the_bound_are_dropped_without_an_answer(start_agent):
    server = start_agent("server", Gated)
    server.vip.rpc.set_request_limits(RequestLimits(per_caller=1, queued_per_caller=0))
    client = start_agent("client")
    for _ in range(5):
        client.vip.rpc.notify("server", "hold")
    wait_until(lambda: server.entered == 1)
    wait_until(lambda: server.vip.rpc.request_statistics()["refused"] == 4)
    server.gate.set()


# -- the scheduler alone ---------------------------------------------------------------------------

class Jobs:
    """Jobs that block until released; spawn runs them in greenlets."""

    def __init__(self):
        self.started: list[str] = []
        self.gates: dict[str, Event] = {}

    def job(self, name):
        gate = self.gates[name] = Event()

        def run():
            self.started.append(name)
            gate.wait(5)

        return run


def test_waiting_callers_take_turns_and_total_is_bounded():
    jobs = Jobs()
    scheduler = RequestScheduler(gevent.spawn, RequestLimits(per_caller=2, total=2))
    for i in range(4):
        assert scheduler.submit("flooder", jobs.job(f"f{i}"))
    assert scheduler.submit("quiet", jobs.job("q0"))
    gevent.sleep(0)
    assert jobs.started == ["f0", "f1"]
    jobs.gates["f0"].set()
    wait_until(lambda: len(jobs.started) == 3)
    assert jobs.started[2] == "q0", "a waiting caller must get the next free slot in its turn"
    assert scheduler.statistics()["running"] == 2


@pytest.mark.parametrize("limits,refused", [
    (RequestLimits(per_caller=1, queued_per_caller=2), 2),
    (RequestLimits(per_caller=1, queued_total=1), 3),
    (RequestLimits(per_caller=1, queued_bytes_per_caller=250), 2),
    (RequestLimits(per_caller=1, queued_bytes_total=100), 3),
])
def test_queue_bounds_in_count_and_bytes(limits, refused):
    jobs = Jobs()
    scheduler = RequestScheduler(gevent.spawn, limits)
    accepted = [scheduler.submit("c", jobs.job(str(i)), size=100) for i in range(5)]
    assert accepted.count(False) == refused
    assert scheduler.statistics()["refused"] == refused


def test_limits_must_be_whole_positive_numbers():
    with pytest.raises(ValueError, match="per_caller"):
        RequestLimits(per_caller=0)
    with pytest.raises(ValueError, match="queued_total"):
        RequestLimits(queued_total=-1)


# -- the scheduler on random traffic ------------------------------------------------------------------

_CALLERS = ("a", "b", "c")


class _Traffic:
    """Jobs that record when they start and end, each ending when the test releases it."""

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self.started: list[tuple[str, int]] = []
        self.gates: dict[int, Event] = {}
        self.now: dict[str, int] = dict.fromkeys(_CALLERS, 0)
        self.most_at_once = 0
        self.most_of_one = 0

    def job(self, caller: str, n: int):
        gate = self.gates[n] = Event()

        def run() -> None:
            self.started.append((caller, n))
            self.now[caller] += 1
            self.most_of_one = max(self.most_of_one, self.now[caller])
            self.most_at_once = max(self.most_at_once, sum(self.now.values()))
            try:
                gate.wait(5)
            finally:
                self.now[caller] -= 1

        return run

    def release(self, pick: int) -> None:
        running = [n for _c, n in self.started if not self.gates[n].is_set()]
        if running:
            self.gates[running[pick % len(running)]].set()
        for _ in range(3):
            gevent.sleep(0)  # the released job ends, the next admitted one starts


@settings(max_examples=150, deadline=None)
@given(limits=st.builds(RequestLimits, per_caller=st.integers(1, 3), total=st.integers(1, 4),
                        queued_per_caller=st.integers(0, 3), queued_total=st.integers(0, 5),
                        queued_bytes_per_caller=st.integers(0, 300), queued_bytes_total=st.integers(0, 500)),
       steps=st.lists(st.tuples(st.booleans(), st.sampled_from(_CALLERS), st.integers(0, 150)), max_size=40))
def test_every_bound_holds_and_every_admitted_request_runs_once_in_order(limits, steps):
    traffic = _Traffic(limits)
    scheduler = RequestScheduler(gevent.spawn, limits)
    admitted: dict[str, list[int]] = {c: [] for c in _CALLERS}
    for n, (submit, caller, number) in enumerate(steps):
        if submit:
            if scheduler.submit(caller, traffic.job(caller, n), size=number):
                admitted[caller].append(n)
            stats = scheduler.statistics()
            assert stats["waiting"] <= limits.queued_total
            assert stats["waiting_bytes"] <= limits.queued_bytes_total
            gevent.sleep(0)
        else:
            traffic.release(number)
        assert traffic.most_of_one <= limits.per_caller and traffic.most_at_once <= limits.total
    for _ in range(200):  # release everything: whatever was admitted must run
        if len(traffic.started) == sum(map(len, admitted.values())) and all(
                g.is_set() for g in (traffic.gates[n] for _c, n in traffic.started)):
            break
        traffic.release(0)
    wait_until(lambda: scheduler.statistics()["running"] == 0, timeout=5)
    assert scheduler.statistics() == {"running": 0, "waiting": 0, "waiting_bytes": 0, "callers": 0,
                                      "refused": scheduler.refused}
    for caller in _CALLERS:
        assert [n for c, n in traffic.started if c == caller] == admitted[caller], \
            "each admitted request runs once, in its caller's order"
