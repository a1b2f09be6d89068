"""``scripts/bench``'s alternating rounds: every column once per round, a different one first, samples pooled.

The ratios the performance targets are about compare the platform with a baseline measured in the
same run; these tests pin down that the benchmark interleaves them instead of measuring one column
after the other (where a host's drift lands on one of them only).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

BENCHLIB = Path(__file__).resolve().parents[1] / "scripts" / "benchlib"


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHLIB))  # the benchmark's modules import each other by name
    return importlib.import_module("rounds")


def test_columns_alternate_and_rotate_which_goes_first(rounds: ModuleType) -> None:
    calls: list[str] = []

    def measure(name: str):
        def run() -> tuple[list[float], list[float]]:
            calls.append(name)
            return [], [0.001]
        return run

    rounds.alternate(3, {name: measure(name) for name in ("platform", "raw", "raw_curve")})
    assert calls == ["platform", "raw", "raw_curve",
                     "raw", "raw_curve", "platform",
                     "raw_curve", "platform", "raw"]


def test_samples_of_every_round_are_pooled_per_column(rounds: ModuleType) -> None:
    slow_then_fast = iter([0.004, 0.001])  # the host slows down during the first round only
    results = rounds.alternate(2, {
        "platform": lambda: ([0.0002], [next(slow_then_fast)] * 10),
        "raw": iter([([], [0.002] * 10), ([], [0.0005] * 10)]).__next__,
    })
    one_way, round_trip = results["platform"]
    assert one_way.count == 2 and round_trip.count == 20
    assert round_trip.p50_ms == pytest.approx(2.5)  # the median of ten 4 ms and ten 1 ms samples
    raw_one_way, raw_round_trip = results["raw"]
    assert raw_one_way is None, "a column without one-way samples has no (c) figure"
    assert raw_round_trip.count == 20 and raw_round_trip.p50_ms == pytest.approx(1.25)


def test_at_least_one_round(rounds: ModuleType) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        rounds.alternate(0, {"raw": lambda: ([], [0.001])})
