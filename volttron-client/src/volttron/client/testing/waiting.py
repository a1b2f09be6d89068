"""The one polling helper of the test suites and of agent developers' tests.

``wait_until(condition, timeout, what)`` calls ``condition`` until it returns something true and
returns that, or raises :class:`WaitTimeout` naming ``what`` once ``timeout`` seconds have passed.
Between calls it sleeps ``interval`` seconds with ``gevent.sleep`` when gevent is loaded (so agents'
greenlets run meanwhile) and ``time.sleep`` otherwise. Every wait of a test is a condition with a
deadline: never a fixed sleep.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

from volttron.client.testing.errors import VolttronPlatformError

T = TypeVar("T")


class WaitTimeout(VolttronPlatformError, AssertionError):
    """The condition did not hold in time: a test failure, and an error of the kit's platform."""


def wait_until(condition: Callable[[], T], timeout: float = 10.0, what: str = "the condition",
               interval: float = 0.02, retry: tuple[type[BaseException], ...] = ()) -> T:
    """``condition()`` once it is true; :class:`WaitTimeout` after ``timeout`` seconds.

    An exception of a type in ``retry`` counts as "not yet" (the last one is named on timeout);
    any other goes to the caller at once.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = condition()
        except retry as exc:
            last, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            said = f" (last: {last!r})" if last is not None else ""
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}{said}")
        gevent = sys.modules.get("gevent")
        if gevent is not None:
            gevent.sleep(interval)
        else:
            time.sleep(interval)
