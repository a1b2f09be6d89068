"""The current ``auth.json`` policy, re-read when the file changes on disk.

The check is a ``stat`` (modification time, size and inode) at most every ``min_interval`` seconds,
so callers can ask for the policy on every authentication request. A file that turns corrupt while
the platform runs is moved aside (see :func:`load_auth_file`) and reported; the last good policy
stays in force until a valid file appears, so a bad edit neither opens the platform nor locks the
administrator out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from volttron.server.services.auth.authfile import AuthDocument, Capabilities, load_auth_file
from volttron.utils.errors import ConfigError, CorruptFileError
from volttron.utils.files import FileSignature, file_signature

_log = logging.getLogger(__name__)

class AuthPolicy:
    """``auth.json`` as last read; :meth:`current` re-reads it when it changed."""

    def __init__(self, path: str | os.PathLike[str], min_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._min_interval = min_interval
        self._clock = clock
        self._checked_at = float("-inf")
        self._signature: FileSignature = file_signature(self.path)
        self._document = load_auth_file(self.path)
        self._capabilities: dict[str, Capabilities] | None = None
        self.reloads = 0

    def current(self) -> AuthDocument:
        """The policy in force, re-read first if the file changed since the last look."""
        now = self._clock()
        if now - self._checked_at >= self._min_interval:
            self._checked_at = now
            signature = file_signature(self.path)
            if signature != self._signature:
                self._reload(signature)
        return self._document

    def capabilities(self) -> dict[str, Capabilities]:
        """``{user_id: capabilities}`` of the current policy."""
        document = self.current()
        if self._capabilities is None:
            self._capabilities = document.capabilities_by_user()
        return self._capabilities

    def _reload(self, signature: FileSignature) -> None:
        try:
            document = load_auth_file(self.path)
        except CorruptFileError as exc:
            _log.error("auth policy not changed: %s; fix it and write it back as %s", exc, self.path)
            self._signature = file_signature(self.path)  # the file was moved aside: wait for a new one
            return
        except ConfigError as exc:
            _log.error("auth policy not changed: %s", exc)
            return
        self._signature = signature
        self._document = document
        self._capabilities = None
        self.reloads += 1
        _log.debug("re-read %s: %d allow, %d deny entries", self.path, len(document.allow),
                   len(document.deny))
