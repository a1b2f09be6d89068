"""Common pub/sub header names (docs/protocol.md §2.6)."""

from __future__ import annotations

CONTENT_TYPE = "Content-Type"
DATE = "Date"
TIMESTAMP = "TimeStamp"
SYNC_TIMESTAMP = "SynchronizedTimeStamp"
FROM = "From"
TO = "To"
REQUESTER_ID = "requesterID"
COOKIE = "Cookie"
MIN_COMPATIBLE_VERSION = "min_compatible_version"
MAX_COMPATIBLE_VERSION = "max_compatible_version"
ALERT_KEY = "alert_key"


class CONTENT_TYPE_VALUES:  # noqa: N801 - the original's name
    """Values of the ``Content-Type`` header."""

    JSON = "application/json"
    PLAIN_TEXT = "text/plain"
