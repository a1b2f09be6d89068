"""Health status values and the status object agents report (docs/protocol.md §2.9)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from volttron.utils.errors import VolttronError
from volttron.utils.time import format_timestamp, get_aware_utc_now

STATUS_GOOD = "GOOD"
STATUS_BAD = "BAD"
STATUS_UNKNOWN = "UNKNOWN"
STATUS_STARTING = "STARTING"
ACCEPTABLE_STATUS = (STATUS_GOOD, STATUS_BAD, STATUS_UNKNOWN, STATUS_STARTING)

# Spellings of the original platform.
GOOD_STATUS = STATUS_GOOD
BAD_STATUS = STATUS_BAD
UNKNOWN_STATUS = STATUS_UNKNOWN
ALERT_KEY = "alert_key"


class StatusError(VolttronError, ValueError):
    """A status value outside :data:`ACCEPTABLE_STATUS`."""


class Status:
    """A status value with its context and when it last changed."""

    def __init__(
        self, status: str = STATUS_GOOD, context: Any = None, last_updated: str | None = None
    ) -> None:
        self._check(status)
        self._status = status
        self._context = context
        self._last_updated = last_updated or format_timestamp(get_aware_utc_now())
        self._listeners: list[Any] = []

    @staticmethod
    def _check(status: str) -> None:
        if status not in ACCEPTABLE_STATUS:
            raise StatusError(f"invalid status {status!r}; one of {', '.join(ACCEPTABLE_STATUS)}")

    @property
    def status(self) -> str:
        """GOOD, BAD, UNKNOWN or STARTING."""
        return self._status

    @property
    def context(self) -> Any:
        """Whatever the agent said about the status (JSON-serialisable)."""
        return self._context

    @property
    def last_updated(self) -> str:
        """When the status or context last changed, as a timestamp string."""
        return self._last_updated

    def update_status(self, status: str, context: Any = None) -> bool:
        """Set the status and context; True (and listeners told) when the status value changed."""
        self._check(status)
        changed = status != self._status
        self._status = status
        self._context = context
        self._last_updated = format_timestamp(get_aware_utc_now())
        if changed:
            for listener in list(self._listeners):
                listener(self)
        return changed

    def add_listener(self, listener: Any) -> None:
        """Call ``listener(status)`` when the status value changes."""
        self._listeners.append(listener)

    def as_dict(self) -> dict[str, Any]:
        """``{"status", "context", "last_updated"}``."""
        return {"status": self._status, "context": self._context, "last_updated": self._last_updated}

    def as_json(self) -> str:
        """:meth:`as_dict` as JSON text."""
        return json.dumps(self.as_dict())

    @classmethod
    def build(cls, status: str, context: Any = None) -> Status:
        """A new status object."""
        return cls(status, context)

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> Status:
        """A status object from :meth:`as_json` text (or its dict)."""
        obj = json.loads(data) if isinstance(data, str) else dict(data)
        return cls(obj.get("status", STATUS_UNKNOWN), obj.get("context"), obj.get("last_updated"))

    def __repr__(self) -> str:
        return f"Status({self._status!r}, {self._context!r})"


def utc_timestamp(dt: datetime | None = None) -> str:
    """A header timestamp (``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``) of ``dt`` or now."""
    return format_timestamp(dt or get_aware_utc_now())
