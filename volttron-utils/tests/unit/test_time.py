"""Timestamps: the wire form, the forms we accept, and round trips."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volttron.utils.time import (
    datetime_from_utc_seconds,
    format_timestamp,
    get_aware_utc_now,
    get_utc_seconds_from_epoch,
    parse_timestamp_string,
    to_aware,
)

UTC = timezone.utc


def test_now_is_aware_utc() -> None:
    before = datetime.now(UTC)
    now = get_aware_utc_now()
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


def test_format_wire_form() -> None:
    dt = datetime(2024, 5, 22, 17, 46, 40, 123456, UTC)
    assert format_timestamp(dt) == "2024-05-22T17:46:40.123456+00:00"
    assert format_timestamp(dt.replace(microsecond=0)) == "2024-05-22T17:46:40.000000+00:00"


def test_format_naive_is_utc() -> None:
    assert format_timestamp(datetime(2024, 1, 2, 3, 4, 5, 6)) == "2024-01-02T03:04:05.000006+00:00"


def test_format_keeps_other_offsets() -> None:
    eastern = timezone(timedelta(hours=-5))
    dt = datetime(2024, 1, 2, 3, 4, 5, tzinfo=eastern)
    assert format_timestamp(dt) == "2024-01-02T03:04:05.000000-05:00"


def test_format_rejects_non_datetime() -> None:
    with pytest.raises(TypeError):
        format_timestamp("2024-01-01")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2024-05-22T17:46:40.123456+00:00", datetime(2024, 5, 22, 17, 46, 40, 123456, UTC)),
        ("2024-05-22T17:46:40+00:00", datetime(2024, 5, 22, 17, 46, 40, tzinfo=UTC)),
        ("2024-05-22T17:46:40.123456Z", datetime(2024, 5, 22, 17, 46, 40, 123456, UTC)),
        ("2024-05-22T17:46:40Z", datetime(2024, 5, 22, 17, 46, 40, tzinfo=UTC)),
        ("2024-05-22T17:46:40.123456", datetime(2024, 5, 22, 17, 46, 40, 123456, UTC)),
        ("2024-05-22T17:46:40", datetime(2024, 5, 22, 17, 46, 40, tzinfo=UTC)),
        ("2024-05-22 17:46:40.5", datetime(2024, 5, 22, 17, 46, 40, 500000, UTC)),
        ("2024-05-22T17:46", datetime(2024, 5, 22, 17, 46, tzinfo=UTC)),
        ("2024-05-22T17:46:40.123456789+00:00", datetime(2024, 5, 22, 17, 46, 40, 123456, UTC)),
        ("2024-05-22T12:46:40-05:00", datetime(2024, 5, 22, 17, 46, 40, tzinfo=UTC)),
        ("2024-05-22T23:16:40+0530", datetime(2024, 5, 22, 17, 46, 40, tzinfo=UTC)),
        ("2024-05-22T19:46:40+02", datetime(2024, 5, 22, 17, 46, 40, tzinfo=UTC)),
        (" 2024-05-22T17:46:40Z\n", datetime(2024, 5, 22, 17, 46, 40, tzinfo=UTC)),
    ],
)
def test_parse_accepted_forms(text: str, expected: datetime) -> None:
    parsed = parse_timestamp_string(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "2024-13-01T00:00:00", "2024-02-30T00:00:00", "2024-01-01T25:00:00",
     "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00+05:75", "2024-01-01", "24-01-01T00:00:00",
     "2024-01-01T00:00:00.+00:00", "2024-01-01T00:00:00 trailing", "1716400000.87"],
)
def test_parse_rejects_garbage_quoting_input(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_timestamp_string(text)
    assert repr(text) in str(info.value)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(TypeError):
        parse_timestamp_string(1716400000)  # type: ignore[arg-type]


aware = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                timezone(timedelta(hours=-8))]))


@given(aware)
def test_round_trip(dt: datetime) -> None:
    text = format_timestamp(dt)
    assert parse_timestamp_string(text) == dt
    assert format_timestamp(parse_timestamp_string(text)) == text


def test_epoch_seconds() -> None:
    assert get_utc_seconds_from_epoch(datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC)) == 10.0
    assert get_utc_seconds_from_epoch(datetime(1970, 1, 1, 0, 0, 10)) == 10.0  # naive is UTC
    eastern = timezone(timedelta(hours=-5))
    assert get_utc_seconds_from_epoch(datetime(1969, 12, 31, 19, 0, 10, tzinfo=eastern)) == 10.0
    now = datetime.now(UTC).timestamp()
    assert abs(get_utc_seconds_from_epoch() - now) < 5
    assert datetime_from_utc_seconds(10.5) == datetime(1970, 1, 1, 0, 0, 10, 500000, UTC)


def test_to_aware() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5)
    assert to_aware(naive) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    eastern = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    assert to_aware(eastern) is eastern
