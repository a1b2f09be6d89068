"""Failed logins, counted per client address and per user name, in bounded memory.

``POST /authenticate`` asks :meth:`LoginThrottle.retry_after` before it checks a password: once
an address has failed :attr:`LoginLimits.per_address` times, or a user name
:attr:`LoginLimits.per_user` times, within :attr:`LoginLimits.window` seconds, the answer is
``429 Too Many Requests`` with ``Retry-After`` (the seconds until that window ends), and no
password is checked. Each counter is a fixed window that starts at its first failure. At most
:attr:`LoginLimits.max_tracked` addresses and as many user names are remembered; beyond that the
least recently failed are forgotten, so a flood of made-up names costs bounded memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_USER_KEY = 64
"""Characters of a user name kept as its counter's key."""


@dataclass(frozen=True)
class LoginLimits:
    """How many failed logins are allowed, over how long, and how many counters are kept."""

    per_address: int = 10
    per_user: int = 20
    window: float = 300.0
    max_tracked: int = 10_000


class FailureCounter:
    """Failures per key in a fixed window starting at the key's first failure; at most ``max_keys`` keys."""

    def __init__(self, limit: int, window: float, max_keys: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        entry = self._counts.get(key)
        if entry is None:
            return None
        started, count = entry
        left = started + self.window - self._clock()
        if left <= 0:
            del self._counts[key]
            return None
        return left if count >= self.limit else None

    def failed(self, key: str) -> None:
        """Count one failure of ``key``."""
        now = self._clock()
        started, count = self._counts.pop(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        self._counts[key] = (started, count + 1)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._counts)


class LoginThrottle:
    """Per-address and per-user failure counters; see the module docstring."""

    def __init__(self, limits: LoginLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or LoginLimits()
        lim = self.limits
        self._addresses = FailureCounter(lim.per_address, lim.window, lim.max_tracked, clock)
        self._users = FailureCounter(lim.per_user, lim.window, lim.max_tracked, clock)
        self.refused = 0

    @staticmethod
    def _user_key(username: str) -> str:
        return username[:MAX_USER_KEY].casefold()

    def retry_after(self, address: str, username: str) -> int | None:
        """Whole seconds to wait before ``address`` may try ``username`` again, or None."""
        waits = [w for w in (self._addresses.retry_after(address),
                             self._users.retry_after(self._user_key(username))) if w is not None]
        if not waits:
            return None
        self.refused += 1
        return max(1, math.ceil(max(waits)))

    def failed(self, address: str, username: str) -> None:
        """Count a failed login of ``username`` from ``address``."""
        self._addresses.failed(address)
        self._users.failed(self._user_key(username))

    def statistics(self) -> dict[str, int]:
        """Counters kept and attempts refused so far."""
        return {"tracked_addresses": len(self._addresses), "tracked_users": len(self._users),
                "logins_throttled": self.refused}
