"""The health tracker's table and rules, with fake clocks (no platform, no gevent)."""

from __future__ import annotations

import pytest

from volttron.server.services.health.tracker import (
    CONNECTED,
    DISCONNECTED,
    STALE,
    HealthTracker,
    StaleRule,
    UnknownPeerError,
    status_of,
)


class Clock:
    """A monotonic clock moved by hand, and wall timestamps that say which tick they came from."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def timestamp(self) -> str:
        return f"t={self.now:g}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(clock: Clock) -> HealthTracker:
    return HealthTracker({"platform.control"}, monotonic=clock.monotonic, timestamp=clock.timestamp)


def beat(tracker: HealthTracker, clock: Clock, identity: str, every: float, times: int,
         message: str = "GOOD") -> None:
    for _ in range(times):
        tracker.heartbeat(identity, message)
        clock.now += every


def test_connected_peer_without_heartbeat_is_unknown(tracker: HealthTracker, clock: Clock) -> None:
    tracker.peer_connected("tool")
    entry = tracker.entry("tool")
    assert entry == {
        "peer": "tool", "service_agent": False, "connected": "t=1000", "disconnected": None,
        "last_heartbeat": None, "message": None, "heartbeat_period": None, "state": CONNECTED,
        "status": "UNKNOWN", "context": "no heartbeat received",
    }
    clock.now += 10_000  # a peer that never sent heartbeats never goes stale
    assert tracker.entry("tool")["state"] == CONNECTED


def test_heartbeats_give_status_and_period(tracker: HealthTracker, clock: Clock) -> None:
    tracker.peer_connected("a")
    beat(tracker, clock, "a", 5.0, 3)
    entry = tracker.entry("a")
    assert entry["status"] == "GOOD" and entry["state"] == CONNECTED and entry["context"] is None
    assert entry["message"] == "GOOD" and entry["last_heartbeat"] == "t=1010"
    assert entry["heartbeat_period"] == pytest.approx(5.0)
    tracker.heartbeat("a", "BAD")
    assert tracker.entry("a")["status"] == "BAD"


def test_service_agents_are_marked(tracker: HealthTracker) -> None:
    tracker.peer_connected("platform.control")
    tracker.peer_connected("listener")
    assert tracker.entry("platform.control")["service_agent"] is True
    assert tracker.entry("listener")["service_agent"] is False


def test_stale_after_missed_heartbeats_and_back(tracker: HealthTracker, clock: Clock) -> None:
    tracker.peer_connected("a")
    beat(tracker, clock, "a", 2.0, 3)  # period 2 s: allowance max(3*2, 2+1) = 6 s after the last beat
    clock.now += 6.0 - 2.0  # exactly the allowance since the last heartbeat: not yet stale
    assert tracker.entry("a")["state"] == CONNECTED
    clock.now += 0.5
    entry = tracker.entry("a")
    assert entry["state"] == STALE and entry["status"] == "UNKNOWN"
    assert entry["context"] == "no heartbeat for 6.5 s (expected every 2 s)"
    assert entry["message"] == "GOOD", "the last message is still shown"
    tracker.heartbeat("a", "GOOD")
    assert tracker.entry("a")["state"] == CONNECTED


def test_short_periods_get_a_minimum_slack(clock: Clock) -> None:
    rule = StaleRule(factor=3.0, min_slack=1.0)
    assert rule.allowance(0.1) == pytest.approx(1.1)
    assert rule.allowance(60) == pytest.approx(180)
    tracker = HealthTracker(rule=rule, monotonic=clock.monotonic, timestamp=clock.timestamp)
    beat(tracker, clock, "fast", 0.1, 5)
    clock.now += 1.0 - 0.1
    assert tracker.entry("fast")["state"] == CONNECTED
    clock.now += 0.2
    assert tracker.entry("fast")["state"] == STALE


def test_one_heartbeat_assumes_the_default_period(tracker: HealthTracker, clock: Clock) -> None:
    tracker.heartbeat("a", "GOOD")
    clock.now += 179
    assert tracker.entry("a")["state"] == CONNECTED
    clock.now += 2
    assert tracker.entry("a")["state"] == STALE


def test_status_change_interval_does_not_shorten_the_period(tracker: HealthTracker, clock: Clock) -> None:
    beat(tracker, clock, "a", 10.0, 3)
    clock.now -= 9.9  # the status changes 0.1 s after a beat: the agent publishes at once
    tracker.heartbeat("a", "BAD")
    assert tracker.period("a") == pytest.approx(10.0)
    clock.now += 25  # 2.5 periods: still within the allowance of 30 s
    assert tracker.entry("a")["state"] == CONNECTED


def test_period_is_the_longest_recent_interval(tracker: HealthTracker, clock: Clock) -> None:
    beat(tracker, clock, "a", 1.0, 3)
    beat(tracker, clock, "a", 4.0, 2)
    assert tracker.period("a") == pytest.approx(4.0)
    beat(tracker, clock, "a", 1.0, 6)  # StaleRule.samples = 4 intervals remembered
    assert tracker.period("a") == pytest.approx(1.0)


def test_dropped_peer_is_disconnected_then_reconnects_afresh(tracker: HealthTracker, clock: Clock) -> None:
    tracker.peer_connected("a")
    beat(tracker, clock, "a", 1.0, 3)
    tracker.peer_dropped("a")
    entry = tracker.entry("a")
    assert entry["state"] == DISCONNECTED and entry["status"] == "UNKNOWN"
    assert entry["disconnected"] == "t=1003" and entry["context"] == "disconnected"
    assert not tracker.heartbeat("a", "GOOD"), "a heartbeat sent before the drop must not revive it"
    assert tracker.entry("a")["state"] == DISCONNECTED and tracker.ignored_heartbeats == 1
    clock.now += 5
    tracker.peer_connected("a")
    entry = tracker.entry("a")
    assert entry["state"] == CONNECTED and entry["connected"] == "t=1008" and entry["disconnected"] is None
    assert entry["last_heartbeat"] is None and entry["heartbeat_period"] is None


def test_listing_never_revives_a_dropped_peer(tracker: HealthTracker) -> None:
    tracker.peer_connected("a")
    tracker.peer_dropped("a")
    tracker.peers_listed(["a", "b"])
    assert tracker.entry("a")["state"] == DISCONNECTED
    assert tracker.entry("b")["state"] == CONNECTED


def test_repeated_add_keeps_the_connection_time(tracker: HealthTracker, clock: Clock) -> None:
    tracker.peer_connected("a")
    clock.now += 3
    tracker.peer_connected("a")
    assert tracker.entry("a")["connected"] == "t=1000"


def test_disconnected_entries_are_bounded(clock: Clock) -> None:
    tracker = HealthTracker(rule=StaleRule(keep_disconnected=2), monotonic=clock.monotonic,
                            timestamp=clock.timestamp)
    for name in ("a", "b", "c", "live"):
        tracker.peer_connected(name)
    for name in ("a", "b", "c"):
        tracker.peer_dropped(name)
    assert sorted(tracker.identities()) == ["b", "c", "live"]
    tracker.peer_dropped("never-seen")  # harmless
    assert tracker.statistics() == {"peers": 3, "connected": 1, "stale": 0, "disconnected": 2,
                                    "heartbeats": 0, "ignored_heartbeats": 0}


def test_report_excludes_and_unknown_peer_is_a_clear_error(tracker: HealthTracker) -> None:
    for name in ("a", "control.connection"):
        tracker.peer_connected(name)
    assert list(tracker.report(exclude=["control.connection"])) == ["a"]
    with pytest.raises(UnknownPeerError, match="no peer 'nobody' is known"):
        tracker.entry("nobody")
    tracker.forget("a")
    with pytest.raises(KeyError):
        tracker.entry("a")


@pytest.mark.parametrize("message,expected", [
    ("GOOD", "GOOD"), ("STARTING", "STARTING"), ({"status": "BAD", "context": "x"}, "BAD"),
    ("fine", None), (42, None), (None, None), ({"state": "GOOD"}, None),
])
def test_status_of_messages(message, expected) -> None:
    assert status_of(message) == expected


def test_unrecognized_message_is_unknown_with_context(tracker: HealthTracker) -> None:
    tracker.heartbeat("old", {"status": "BAD", "context": "sensor lost"})
    entry = tracker.entry("old")
    assert (entry["status"], entry["context"]) == ("BAD", "sensor lost")
    tracker.heartbeat("odd", "all fine")
    entry = tracker.entry("odd")
    assert entry["status"] == "UNKNOWN" and entry["context"] == "unrecognized heartbeat message 'all fine'"


@pytest.mark.parametrize("kwargs", [{"factor": 0.5}, {"min_slack": -1}, {"assumed_period": 0},
                                    {"samples": 0}, {"keep_disconnected": -1}])
def test_bad_rules_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        StaleRule(**kwargs)


def test_a_start_up_burst_is_not_the_period(tracker: HealthTracker, clock: Clock) -> None:
    # issue 13 item 1: an agent publishes twice within microseconds at start (autostart, then its
    # own period); that gap is no period, so the agent must not read stale a second later
    tracker.heartbeat("a", "GOOD")
    clock.now += 2.67e-05
    tracker.heartbeat("a", "GOOD")
    clock.now += 2.0
    entry = tracker.entry("a")
    assert entry["state"] == CONNECTED, f"stale after a start-up burst: {entry['context']}"
    assert entry["heartbeat_period"] is None


def test_the_declared_period_wins(tracker: HealthTracker, clock: Clock) -> None:
    tracker.heartbeat("a", "GOOD", declared_period=60.0)
    clock.now += 0.2  # the agent switched to its own period at once and says so
    tracker.heartbeat("a", "GOOD", declared_period=5.0)
    assert tracker.entry("a")["heartbeat_period"] == pytest.approx(5.0)
    clock.now += 15.0
    assert tracker.entry("a")["state"] == CONNECTED
    clock.now += 0.5
    entry = tracker.entry("a")
    assert entry["state"] == STALE and "expected every 5 s" in entry["context"]


@pytest.mark.parametrize("declared", [0, -1, float("nan"), float("inf"), "5", True, None])
def test_an_unusable_declared_period_is_ignored(tracker: HealthTracker, clock: Clock, declared) -> None:
    beat(tracker, clock, "a", 2.0, 3)
    tracker.heartbeat("a", "GOOD", declared_period=declared)
    assert tracker.entry("a")["heartbeat_period"] == pytest.approx(2.0)


def test_the_health_service_judges_staleness_on_its_clock(tmp_path) -> None:
    """The service's tracker and its agent follow one injected clock (a test advances it by hand)."""
    from volttron.client.testing.clock import ManualClock
    from volttron.server.context import PlatformContext
    from volttron.server.services.health.service import HealthService

    manual = ManualClock()
    context = PlatformContext(home=tmp_path, instance_name="t", router_address="inproc://none",
                              zmq_context=None, serverkey=None, local_address="ipc://@none", addresses=(),
                              auth_enabled=False, message_bus="zmq", request_stop=lambda: None)
    tracker = HealthService(context, clock=manual).tracker
    tracker.peer_connected("beat")
    tracker.heartbeat("beat", "GOOD", declared_period=5)
    assert tracker.entry("beat")["state"] == "connected"
    manual.advance(60)
    assert tracker.entry("beat")["state"] == "stale"
