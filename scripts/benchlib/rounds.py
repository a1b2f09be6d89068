"""Latency measured in alternating rounds, so that a host whose speed drifts moves every column alike.

A shared 2-core host runs the same raw round trip at 0.25 ms in one minute and 0.35 ms in the
next. Measured one column after the other, the platform and its baseline can land in different
minutes, and the ratio the targets are about moves by 20% or more with nothing else changed.
:func:`alternate` runs every column once per round, rotating which goes first, and pools each
column's samples over the rounds: a slow minute then lands on all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stats import LatencyStats

Samples = tuple[list[float], list[float]]
"""One measurement: (one-way latencies, round trips), in seconds; either list may be empty."""


def alternate(rounds: int, measures: Mapping[str, Callable[[], Samples]]
              ) -> dict[str, tuple[LatencyStats | None, LatencyStats | None]]:
    """Run each of ``measures`` ``rounds`` times, interleaved; each one's pooled (one-way, round trip).

    Round ``r`` starts with the ``r``-th measure (modulo their number) and goes on in order, so no
    column is always the first after a pause or always the one after the platform's. A column that
    took no samples of one kind gets None for it.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    names = list(measures)
    pooled: dict[str, Samples] = {name: ([], []) for name in names}
    for r in range(rounds):
        start = r % len(names) if names else 0
        for name in names[start:] + names[:start]:
            one_way, round_trip = measures[name]()
            pooled[name][0].extend(one_way)
            pooled[name][1].extend(round_trip)
    return {name: (LatencyStats.of(one_way) if one_way else None,
                   LatencyStats.of(round_trip) if round_trip else None)
            for name, (one_way, round_trip) in pooled.items()}
