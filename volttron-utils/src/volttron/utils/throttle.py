"""Logging that cannot be flooded: one record per kind per interval, with a count of the rest.

A peer sending ten thousand malformed messages must not write ten thousand log lines, and a slow
subscriber must not log once per dropped message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogThrottle:
    """Logs the first event of each key, then at most one summary per ``interval`` seconds."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._state: dict[str, tuple[float, int]] = {}  # key -> (last logged at, suppressed since)

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago; True if logged."""
        now = self._clock()
        last, suppressed = self._state.get(key, (float("-inf"), 0))
        if now - last < self._interval:
            self._state[key] = (last, suppressed + 1)
            return False
        if suppressed:
            message += " (%d similar suppressed)"
            args = (*args, suppressed)
        self._state[key] = (now, 0)
        if len(self._state) > 10000:  # keys include peer names; keep memory bounded
            self._state.clear()
        self._logger.log(level, message, *args)
        return True

    def warning(self, key: str, message: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, key, message, *args)
