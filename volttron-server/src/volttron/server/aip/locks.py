"""Exclusive locks on files (``fcntl.flock``), for installs that run in several processes or threads.

A lock is held on an open file description, so two threads of one process exclude each other as
two processes do. Waiting polls with ``time.sleep`` (cooperative under gevent's monkey-patching)
and always has a deadline. Lock files are left in place: deleting them would let a third party
lock a new file while someone still holds the old one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

_POLL_SECONDS = 0.05


class FileLock:
    """An exclusive lock on ``path`` (created if missing). Use :meth:`acquire` or ``with``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (0: try once). False when not taken."""
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(_POLL_SECONDS)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        """Give the lock back (closing the file releases it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> FileLock:
        """Hold the lock for the block: one already held (see :meth:`acquire`) is kept, else tried once."""
        if not self.held and not self.acquire():
            raise BlockingIOError(f"{self.path} is locked")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, held={self.held})"
