"""The publish window: a publisher with too many unacknowledged publishes waits, and only then."""

from __future__ import annotations

import gevent
import pytest

from volttron.client.vip.agent.publish_window import PublishWindow


def test_a_full_window_waits_until_half_is_answered() -> None:
    window = PublishWindow(limit=4, stall_timeout=10)
    for ident in "abcd":
        window.wait_for_room()
        window.sent(ident)
    waiter = gevent.spawn(window.wait_for_room)
    gevent.sleep(0)  # let it start waiting (a yield, not a wait for time)
    assert not waiter.dead
    window.answered("a")  # 3 in flight: above the resume mark of 2
    gevent.sleep(0)
    assert not waiter.dead
    window.answered("b")
    waiter.join(5)
    assert waiter.dead and waiter.successful() and window.waits == 1 and len(window) == 2


def test_a_window_that_may_not_wait_lets_the_publish_go() -> None:
    window = PublishWindow(limit=2, stall_timeout=10)
    window.sent("a")
    window.sent("b")
    window.wait_for_room(may_wait=False)  # the receive loop: it would wait for itself
    assert window.waits == 0


def test_a_platform_that_stops_answering_costs_a_warning_not_a_hang(caplog: pytest.LogCaptureFixture) -> None:
    window = PublishWindow(limit=2, stall_timeout=0.05)
    window.sent("a")
    window.sent("b")
    window.wait_for_room()
    assert len(window) == 0 and "not answering" in caplog.text


def test_a_lost_link_forgets_pending_publishes_and_answers_of_unknown_ids_are_harmless() -> None:
    window = PublishWindow(limit=2, stall_timeout=10)
    window.sent("a")
    window.answered("zzz")
    assert len(window) == 1
    window.reset()
    assert len(window) == 0
    with pytest.raises(ValueError):
        PublishWindow(limit=1)
