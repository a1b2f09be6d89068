"""Figures the benchmark reports."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Throughput:
    """Messages sent and received in ``seconds``; ``unacknowledged``: publishes never acknowledged."""

    sent: int
    received: int
    seconds: float
    unacknowledged: int = 0
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU microseconds per message sent, by process and thread (a diagnostic)."""
    rates: tuple[float, ...] = ()
    """With repeated runs (:func:`median_run`): every run's rate, and ``lost_in_runs`` their losses."""
    lost_in_runs: int = 0
    unacknowledged_in_runs: int = 0

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.received


def median_run(runs: list[Throughput]) -> Throughput:
    """The run with the median rate, carrying every run's rate and the losses of all runs."""
    if not runs:
        raise ValueError("no runs")
    ordered = sorted(runs, key=lambda r: r.rate)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(middle, rates=tuple(r.rate for r in runs), lost_in_runs=sum(r.lost for r in runs),
                   unacknowledged_in_runs=sum(r.unacknowledged for r in runs))


@dataclass(frozen=True)
class LatencyStats:
    """Median and 99th percentile of ``count`` samples, and samples per second of their sum."""

    count: int
    p50_ms: float
    p99_ms: float
    per_second: float

    @classmethod
    def of(cls, samples: list[float]) -> LatencyStats:
        if not samples:
            return cls(0, float("nan"), float("nan"), 0.0)
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return cls(len(samples), statistics.median(ordered) * 1e3, p99 * 1e3, len(samples) / sum(samples))


def cpu_by_thread(pid: int | None = None) -> tuple[float, float]:
    """CPU seconds used so far by a process: (its main thread, all its other threads)."""
    import os

    import psutil

    process = psutil.Process(pid)
    main_thread, others = 0.0, 0.0
    for thread in process.threads():
        used = thread.user_time + thread.system_time
        if thread.id == (pid or os.getpid()):
            main_thread += used
        else:
            others += used
    return main_thread, others
