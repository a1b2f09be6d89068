"""periodic() and cron() iterators."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from volttron.utils.errors import VolttronError
from volttron.utils.scheduling import ScheduleError, cron, next_fire, parse_cron, periodic


def test_periodic_steps_from_start_until_stop() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    values = list(periodic(30, start=start, stop=start + timedelta(minutes=2)))
    assert values == [start + timedelta(seconds=30 * i) for i in range(4)]


def test_periodic_defaults_to_aware_now_and_accepts_timedelta() -> None:
    before = datetime.now(timezone.utc)
    first, second = itertools.islice(periodic(timedelta(seconds=5)), 2)
    assert first.tzinfo is not None and first >= before
    assert second - first == timedelta(seconds=5)


@pytest.mark.parametrize("period", [0, -1, timedelta(0)])
def test_periodic_rejects_non_positive_period(period) -> None:
    with pytest.raises(ScheduleError):
        next(periodic(period))


def _take(spec: str, start: datetime, n: int) -> list[datetime]:
    return list(itertools.islice(cron(spec, start=start), n))


def test_cron_every_five_minutes_is_strictly_after_start() -> None:
    start = datetime(2024, 3, 1, 10, 5, 0)
    assert _take("*/5 * * * *", start, 3) == [
        datetime(2024, 3, 1, 10, 10),
        datetime(2024, 3, 1, 10, 15),
        datetime(2024, 3, 1, 10, 20),
    ]


def test_cron_ranges_lists_and_names() -> None:
    start = datetime(2024, 1, 1, 0, 0)  # a Monday
    values = _take("0,30 9-10 * jan mon-fri", start, 5)
    assert values[:4] == [
        datetime(2024, 1, 1, 9, 0),
        datetime(2024, 1, 1, 9, 30),
        datetime(2024, 1, 1, 10, 0),
        datetime(2024, 1, 1, 10, 30),
    ]
    assert values[4] == datetime(2024, 1, 2, 9, 0)


def test_cron_weekend_skips_weekdays_and_seven_is_sunday() -> None:
    start = datetime(2024, 1, 1)  # Monday
    assert _take("0 12 * * 7", start, 1) == [datetime(2024, 1, 7, 12, 0)]
    assert _take("0 12 * * sat", start, 1) == [datetime(2024, 1, 6, 12, 0)]


def test_cron_day_of_month_or_day_of_week_when_both_restricted() -> None:
    start = datetime(2024, 1, 1)  # Monday
    # the 15th, or any Wednesday
    assert _take("0 0 15 * wed", start, 3) == [
        datetime(2024, 1, 3),
        datetime(2024, 1, 10),
        datetime(2024, 1, 15),
    ]


def test_cron_leap_day_and_year_rollover() -> None:
    assert next_fire(parse_cron("0 0 29 2 *"), datetime(2024, 3, 1)) == datetime(2028, 2, 29)
    last_minute = datetime(2024, 12, 31, 23, 59)
    assert next_fire(parse_cron("59 23 31 12 *"), last_minute) == datetime(2025, 12, 31, 23, 59)


def test_cron_stop_and_timezone_carried() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    values = list(cron("0 * * * *", start=start, stop=start + timedelta(hours=3)))
    assert values == [start + timedelta(hours=h) for h in (1, 2)]
    assert all(v.tzinfo is timezone.utc for v in values)


@pytest.mark.parametrize(
    "spec",
    ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "5-1 * * * *",
     "*/0 * * * *", "x * * * *", "1,,2 * * * *", "0 0 30 2 *", "0 0 31 apr,jun *"],
)
def test_cron_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_cron(spec)
    assert isinstance(info.value, VolttronError) and isinstance(info.value, ValueError)
