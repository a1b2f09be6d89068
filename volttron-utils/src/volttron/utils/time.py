"""Timestamps as the platform writes them in headers and files (docs/protocol.md §2.6).

The wire form is ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``. Naive datetimes are taken to be UTC
everywhere in this module, and parsing always returns an aware datetime, so callers never compare
naive and aware values.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?"
)


def get_aware_utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def to_aware(dt: datetime) -> datetime:
    """``dt`` itself when aware; a naive ``dt`` is taken to be UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None or dt.utcoffset() is None else dt


def format_timestamp(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM``; a naive ``dt`` is UTC and gets ``+00:00``.

    An aware ``dt`` keeps its own offset, as the original platform did, so the instant is never
    changed; pass UTC datetimes to get ``+00:00``.
    """
    if not isinstance(dt, datetime):
        raise TypeError(f"format_timestamp needs a datetime, not {type(dt).__name__}")
    return to_aware(dt).isoformat(timespec="microseconds")


def parse_timestamp_string(text: str) -> datetime:
    """The aware datetime of a timestamp in any form VOLTTRON writes.

    Accepted: ``T`` or space between date and time; seconds and a fraction optional (digits past
    microseconds are dropped); offset ``+HH:MM``, ``+HHMM``, ``+HH``, ``Z`` or none (then UTC).
    Anything else raises :class:`ValueError` quoting the input.
    """
    if not isinstance(text, str):
        raise TypeError(f"a timestamp string is needed, not {type(text).__name__}")
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        tz = _offset(offset)
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                        micro, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"not a valid timestamp: {text!r} ({exc})") from None


def _offset(text: str | None) -> timezone:
    if text is None or text.upper() in ("Z", "UTC"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes, seconds = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"bad UTC offset {text}")
    # timezone() itself rejects offsets of a day or more
    return timezone(sign * timedelta(hours=hours, minutes=minutes, seconds=seconds))


def get_utc_seconds_from_epoch(dt: datetime | None = None) -> float:
    """Seconds since the Unix epoch of ``dt`` (now when None; naive means UTC)."""
    return to_aware(dt if dt is not None else get_aware_utc_now()).timestamp()


def datetime_from_utc_seconds(seconds: float) -> datetime:
    """The aware UTC datetime of a Unix timestamp (the inverse of :func:`get_utc_seconds_from_epoch`)."""
    return datetime.fromtimestamp(seconds, timezone.utc)
