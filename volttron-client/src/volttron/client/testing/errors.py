"""Errors of the testing kit's platforms (a module of their own, so every part of the kit can raise them)."""

from __future__ import annotations

from volttron.utils.errors import VolttronError


class VolttronPlatformError(VolttronError):
    """The test platform failed to start, stop or do what was asked."""


class PlatformUnavailable(VolttronPlatformError):
    """A platform cannot run here (the reason says why); the fixtures skip the test."""
