"""Iterators of datetimes for scheduling repeated work (docs/protocol.md §4.1).

``Core.schedule(periodic(60), fn)`` or ``Core.schedule(cron("*/5 * * * *"), fn)`` runs ``fn`` at
each datetime the iterator yields. Both iterators are endless unless ``stop`` is given, and both
are pure: they never sleep and never read a clock except for the default ``start``.

``cron`` takes the five classic fields ``minute hour day-of-month month day-of-week`` with ``*``,
numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b,c`` and the names ``jan``-``dec``
and ``sun``-``sat``; day-of-week 0 and 7 are both Sunday. As in Vixie cron, when both
day-of-month and day-of-week are restricted a day matching either one fires.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from volttron.utils.errors import VolttronError

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Longest gap between two matching days of any satisfiable spec (Feb 29 on a given weekday).
_MAX_DAYS_SEARCHED = 366 * 29


class ScheduleError(VolttronError, ValueError):
    """A period or cron specification that cannot be used; the message says why."""


def periodic(
    period: float | timedelta, start: datetime | None = None, stop: datetime | None = None
) -> Iterator[datetime]:
    """``start``, ``start + period``, ... while before ``stop`` (``start`` defaults to now, UTC)."""
    step = period if isinstance(period, timedelta) else timedelta(seconds=period)
    if step <= timedelta(0):
        raise ScheduleError(f"period must be positive, not {period!r}")
    current = start if start is not None else datetime.now(timezone.utc)
    while stop is None or current < stop:
        yield current
        current += step


@dataclass(frozen=True)
class CronSpec:
    """The parsed fields of a cron expression as sets of allowed values."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, day: date) -> bool:
        """True when ``day`` is a day on which the expression fires."""
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week


def parse_cron(spec: str) -> CronSpec:
    """Parse a five-field cron expression; raises :class:`ScheduleError` with the bad field."""
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"cron expression needs 5 fields (minute hour day month weekday): {spec!r}")
    minute, hour, day, month, weekday = fields
    weekdays = _parse_field(weekday, 0, 7, _DAYS, "day-of-week")
    parsed = CronSpec(
        minutes=_parse_field(minute, 0, 59, (), "minute"),
        hours=_parse_field(hour, 0, 23, (), "hour"),
        days=_parse_field(day, 1, 31, (), "day-of-month"),
        months=_parse_field(month, 1, 12, _MONTHS, "month"),
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=not day.startswith("*"),
        weekdays_restricted=not weekday.startswith("*"),
    )
    possible = any(d <= _max_days(m) for m in parsed.months for d in parsed.days)
    if not possible and not parsed.weekdays_restricted:
        raise ScheduleError(f"cron expression never matches a real date: {spec!r}")
    return parsed


def _max_days(month: int) -> int:
    return (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]


def _parse_field(text: str, low: int, high: int, names: tuple[str, ...], what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"empty list item in cron {what} field {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            step = _number(step_text, names, 0, what)
            if step < 1:
                raise ScheduleError(f"cron {what} step must be at least 1: {part!r}")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, names, low, what), _number(b, names, low, what)
        else:
            first = _number(base, names, low, what)
            last = high if slash else first
        if not (low <= first <= high and low <= last <= high):
            raise ScheduleError(f"cron {what} value out of range {low}-{high}: {part!r}")
        if first > last:
            raise ScheduleError(f"cron {what} range is reversed: {part!r}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _number(text: str, names: tuple[str, ...], offset: int, what: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + offset
    try:
        return int(text)
    except ValueError:
        raise ScheduleError(f"not a number or name in cron {what} field: {text!r}") from None


def cron(spec: str, start: datetime | None = None, stop: datetime | None = None) -> Iterator[datetime]:
    """Each minute matching ``spec`` strictly after ``start`` (default: now, local time), before ``stop``.

    The datetimes carry ``start``'s tzinfo (naive local time by default), so ``"0 9 * * *"`` means
    9:00 on the wall clock of that zone.
    """
    parsed = parse_cron(spec)
    current = start if start is not None else datetime.now()
    while True:
        current = next_fire(parsed, current)
        if stop is not None and current >= stop:
            return
        yield current


def next_fire(spec: CronSpec, after: datetime) -> datetime:
    """The first minute strictly after ``after`` that ``spec`` matches."""
    candidate = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = candidate.date()
    minutes = sorted(spec.minutes)
    hours = sorted(spec.hours)
    for _ in range(_MAX_DAYS_SEARCHED):
        if spec.day_matches(day):
            same_day = day == candidate.date()
            for hour in hours:
                if same_day and hour < candidate.hour:
                    continue
                for minute in minutes:
                    if same_day and hour == candidate.hour and minute < candidate.minute:
                        continue
                    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=after.tzinfo)
        day += timedelta(days=1)
    raise ScheduleError("cron expression never matches a real date")
