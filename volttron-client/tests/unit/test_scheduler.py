"""Timed calls, decorators plumbing and signals, without a connection."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from volttron.client.testing.clock import ClockError, ManualClock
from volttron.client.vip.agent.decorators import annotate, annotations, collect_annotations, dualmethod
from volttron.client.vip.agent.dispatch import Signal
from volttron.client.vip.agent.scheduler import PeriodicCall, ScheduledEvent, deadlines, to_timestamp


def test_deadline_forms() -> None:
    now = datetime.now(timezone.utc)
    assert to_timestamp(now) == pytest.approx(now.timestamp())
    assert to_timestamp(5) == 5.0
    assert list(deadlines([1, now])) == [1.0, now.timestamp()]
    with pytest.raises(TypeError):
        to_timestamp("soon")
    with pytest.raises(TypeError):
        to_timestamp(True)


def test_scheduled_event_runs_each_deadline_in_order() -> None:
    calls = []
    base = time.time()
    # far enough apart that a loaded machine does not collapse them as missed (the next test does that)
    event = ScheduledEvent([base + 0.05, base + 0.35, base + 0.65], calls.append, ("x",))
    event.start()
    event.greenlet.join(5)
    assert calls == ["x", "x", "x"] and event.finished


def test_missed_deadlines_are_collapsed() -> None:
    calls = []
    past = time.time() - 100
    event = ScheduledEvent([past + i for i in range(50)] + [time.time() + 0.01], lambda: calls.append(1))
    event.start()
    event.greenlet.join(5)
    assert event.finished and len(calls) == 2  # one call for the 50 missed ones, one for the future one


def test_failing_call_does_not_stop_the_schedule() -> None:
    calls = []

    def flaky():
        calls.append(1)
        raise RuntimeError("boom")

    base = time.time()
    event = ScheduledEvent([base, base + 0.01], flaky)
    event.start()
    event.greenlet.join(2)
    assert len(calls) == 2


def test_periodic_wait_forms_and_cancel() -> None:
    clock = ManualClock()
    immediate, delayed, waited = [], [], []
    started = clock.monotonic()
    calls = [
        PeriodicCall(10, lambda: immediate.append(clock.monotonic() - started), wait=0, clock=clock),
        PeriodicCall(10, lambda: delayed.append(clock.monotonic() - started), wait=None, clock=clock),
        PeriodicCall(10, lambda: waited.append(clock.monotonic() - started), wait=3, clock=clock),
    ]
    for call in calls:
        call.start()
    assert clock.advance(0) == 0  # wait=0 runs at once, without the clock
    assert len(immediate) == 1 and delayed == [] and waited == []
    assert clock.advance(9.5) == 1  # wait=3: the first call after 3 s
    assert len(immediate) == 1 and delayed == [] and len(waited) == 1
    assert clock.advance(0.5) == 2  # wait=None: the first call after one period; wait=0: the second
    assert [round(t) for t in immediate] == [0, 10] and [round(t) for t in delayed] == [10]
    assert [round(t) for t in waited] == [3]
    for call in calls:
        call.cancel()
    assert clock.advance(100) == 0 and clock.pending() == []  # cancelled: nothing waits on the clock
    assert (len(immediate), len(delayed), len(waited)) == (2, 1, 1)
    with pytest.raises(ValueError):
        PeriodicCall(0, lambda: None)


def test_periodic_call_falling_behind_collapses_missed_periods() -> None:
    clock = ManualClock()
    times = []
    call = PeriodicCall(10, lambda: times.append(clock.monotonic()), wait=0, clock=clock)
    call.start()
    clock.advance(0)
    clock.offset += 35  # time jumps (a suspended process): no timer runs meanwhile
    assert clock.advance(0) == 1  # one call for the missed periods, not three
    assert len(times) == 2 and clock.advance(4.9) == 0 and clock.advance(0.2) == 1
    call.cancel()


def test_manual_clock_refuses_to_go_back() -> None:
    with pytest.raises(ClockError):
        ManualClock().advance(-1)


def test_annotations_only_record() -> None:
    def f():
        pass

    assert annotate(f, "k", 1) is f
    annotate(f, "k", 2)
    assert annotations(f, "k") == [1, 2] and annotations(f, "other") == []


def test_collect_annotations_honours_overrides() -> None:
    def mark(value):
        return lambda func: annotate(func, "note", value)

    class Base:
        @mark("base")
        def a(self):
            pass

        @mark("kept")
        def b(self):
            pass

    class Child(Base):
        def a(self):  # override without the decorator: not collected
            pass

    found = collect_annotations(Child())
    assert [(m.__name__, v) for m, v in found["note"]] == [("b", "kept")]


def test_dualmethod_class_and_instance_forms() -> None:
    class Thing:
        @dualmethod
        def act(self, x):
            return ("instance", x)

        @act.classmethod
        def act(cls, x):  # noqa: F811
            return ("class", x)

    assert Thing.act(1) == ("class", 1) and Thing().act(2) == ("instance", 2)


def test_signal_connect_once_disconnect_and_send() -> None:
    signal = Signal("s")
    seen = []

    def receiver(sender, **kwargs):
        seen.append((sender, kwargs))
        return "r"

    signal.connect(receiver, "owner")
    signal.connect(receiver)
    assert len(signal) == 1
    assert signal.send("me", x=1) == ["r"] and seen == [("me", {"x": 1})]
    signal.disconnect_owner("owner")
    assert signal.send("me") == []
