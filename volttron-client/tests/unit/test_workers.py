"""Greenlets that run one job after another (vip/agent/workers.py)."""

from __future__ import annotations

import gevent
import gevent.event
from gevent.pool import Group

from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent.workers import Workers


def test_jobs_reuse_a_finished_greenlet_and_a_failing_job_does_not_end_it(caplog) -> None:
    group = Group()
    workers = Workers(group)
    done: list[int] = []

    def fail() -> None:
        raise RuntimeError("boom")

    for i in range(20):
        workers.submit(fail if i == 5 else (lambda i=i: done.append(i)))
        wait_until(lambda: workers.idle() == 1, timeout=5)
    assert done == [i for i in range(20) if i != 5]
    assert workers.spawned == 1
    assert "boom" in caplog.text
    assert list(group) == list(workers.waiting()), "the idle worker stays in the group, named as waiting"
    workers.stop()
    assert workers.idle() == 0 and not workers.waiting()
    wait_until(lambda: len(group) == 0, timeout=5)


def test_jobs_that_wait_run_side_by_side_and_idle_workers_are_bounded() -> None:
    group = Group()
    workers = Workers(group, idle=2)
    gate = gevent.event.Event()
    started: list[int] = []

    def held(i: int) -> None:
        started.append(i)
        gate.wait()

    for i in range(5):
        workers.submit(lambda i=i: held(i))
    wait_until(lambda: len(started) == 5, timeout=5)
    assert workers.spawned == 5 and len(group) == 5 and not workers.waiting()
    gate.set()
    wait_until(lambda: len(group) == 2, timeout=5)  # three ended, two wait for a job
    assert workers.idle() == 2 and set(group) == workers.waiting()
    workers.stop()
    wait_until(lambda: len(group) == 0, timeout=5)
    assert workers.idle() == 0
