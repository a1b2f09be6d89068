"""The one polling helper: a value once true, a named timeout, exceptions retried only when asked."""

from __future__ import annotations

import pytest

from volttron.client.testing import VolttronPlatformError, WaitTimeout, wait_until


def test_the_first_true_value_is_returned() -> None:
    seen = iter([0, "", None, "yes"])
    assert wait_until(lambda: next(seen), 5, "a value", interval=0.001) == "yes"


def test_a_timeout_names_what_was_awaited_and_is_a_test_failure() -> None:
    with pytest.raises(WaitTimeout, match="waiting for the moon") as info:
        wait_until(lambda: False, 0.02, "the moon", interval=0.005)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, VolttronPlatformError)


def test_exceptions_are_retried_only_when_asked_and_the_last_is_named() -> None:
    def broken() -> bool:
        raise ConnectionError("not yet")

    with pytest.raises(ConnectionError):
        wait_until(broken, 1, "a server")
    with pytest.raises(WaitTimeout, match="not yet"):
        wait_until(broken, 0.02, "a server", interval=0.005, retry=(OSError,))
    attempts = iter([ConnectionError("down"), 7])

    def flaky() -> int:
        value = next(attempts)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(flaky, 5, "a server", interval=0.001, retry=(OSError,)) == 7
