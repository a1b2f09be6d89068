"""The root of every error the platform raises on purpose.

::

    VolttronError
     +-- ConfigError            a configuration file or value that cannot be used
     +-- KeyFormatError         a CURVE key in no form we can read
     +-- CertificateError       a certificate that cannot be made, read or verified
     +-- FrameError             a VIP frame that cannot be encoded or decoded
     +-- CorruptFileError       a persisted file that no longer parses (it is kept aside)
     +-- JsonDecodeError        text that is not JSON where JSON was required
     +-- IdentityError          a VIP identity that cannot be used on the wire

The client and server packages subclass :class:`VolttronError` for their own errors
(bus errors, VIP errors, remote errors), so a caller can catch one root.
"""

from __future__ import annotations


class VolttronError(Exception):
    """Root of all errors raised deliberately by the VOLTTRON packages."""


class ConfigError(VolttronError, ValueError):
    """A configuration file or value that cannot be used; the message names the source."""


class KeyFormatError(VolttronError, ValueError):
    """A CURVE key that is not in any accepted encoding."""


class CertificateError(VolttronError):
    """A certificate or key that cannot be created, loaded or verified."""


class FrameError(VolttronError, ValueError):
    """A value that cannot be put in a VIP frame, or a frame that cannot be read."""


class CorruptFileError(VolttronError):
    """A persisted file that does not parse; ``kept_as`` is where the bad copy was moved."""

    def __init__(self, message: str, path: str, kept_as: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.kept_as = kept_as


class JsonDecodeError(VolttronError, ValueError):
    """Text that is not JSON where JSON was required (:func:`volttron.utils.jsonapi.loads`)."""


class IdentityError(VolttronError, ValueError):
    """A VIP identity that cannot be used on the wire (empty, too long, starts with NUL)."""
