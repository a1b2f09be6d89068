"""Files that survive crashes: atomic writes, and corrupt files kept aside.

:func:`atomic_write` writes a temporary file in the target's directory, flushes and fsyncs it,
renames it over the target and fsyncs the directory: after a crash a reader sees the old content or
the new, never a mix, and an acknowledged write survives ``kill -9`` and power loss.

A file that no longer parses is never silently replaced: :func:`read_json_file` moves it aside with
:func:`move_aside` and raises :class:`~volttron.utils.errors.CorruptFileError` naming both paths.

:class:`FileLock` is the one file lock of the code base (``flock``: excludes other processes and,
because it is held on an open file description, other threads of this one).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from volttron.utils.errors import CorruptFileError

_MISSING: Any = object()
_REASON = re.compile(r"[A-Za-z0-9_\-]+")


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644, *,
                 overwrite: bool = True) -> None:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8) so that it never appears half written.

    ``mode`` is set on the temporary file before the rename, so a ``0o600`` file is never briefly
    readable by others. With ``overwrite=False`` the write fails with :class:`FileExistsError` when
    ``path`` already exists (two processes creating the same file agree on one content). On any
    failure the temporary file is removed and the target is left as it was.
    """
    target = Path(path)
    directory = target.parent
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    import tempfile  # with shutil, bz2 and lzma ~0.7 MB: a RabbitMQ agent reads its config, never writes

    # mkstemp creates the file 0600 and with O_EXCL: nobody else can open it before fchmod.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        if overwrite:
            os.replace(tmp_name, target)
        else:
            os.link(tmp_name, target)  # fails with FileExistsError instead of replacing
            os.unlink(tmp_name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry change (a rename or a new file) to disk.

    File systems that cannot fsync a directory (``EINVAL``) are tolerated; other errors propagate.
    """
    if os.name == "nt":  # pragma: no cover - Windows has no directory file descriptors
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


FileSignature = tuple[int, int, int] | None
"""What :func:`file_signature` returns: modification time (ns), size and inode, or None."""


def file_signature(path: str | os.PathLike[str]) -> FileSignature:
    """A cheap "has this file changed" token: ``(mtime_ns, size, inode)``, or None when it is missing.

    An atomic replace changes the inode, so a rewrite within the clock's resolution is still seen.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def move_aside(path: str | os.PathLike[str], reason: str = "corrupt") -> Path:
    """Rename ``path`` to ``<name>.<reason>-<UTC timestamp>`` beside it and return the new path.

    An earlier kept copy is never overwritten: a clash gets a ``-1``, ``-2``, ... suffix.
    """
    if not _REASON.fullmatch(reason):
        raise ValueError(f"reason must be letters, digits, '-' or '_': {reason!r}")
    source = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    base = f"{source.name}.{reason}-{stamp}"
    for n in range(1000):
        candidate = source.with_name(base if n == 0 else f"{base}-{n}")
        if _rename_no_replace(source, candidate):
            fsync_directory(source.parent)
            return candidate
    raise FileExistsError(f"too many kept copies of {source}")


def _rename_no_replace(source: Path, target: Path) -> bool:
    """Rename unless ``target`` exists; False when it does. A hard link makes the check atomic."""
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError as exc:
        # File systems without hard links: check, then rename (racy only against ourselves).
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        if target.exists():
            return False
        os.rename(source, target)
        return True
    os.unlink(source)
    return True


def read_json_file(path: str | os.PathLike[str], default: Any = _MISSING, *,
                   expect: type | tuple[type, ...] | None = None, move_corrupt: bool = True) -> Any:
    """The parsed JSON content of ``path``.

    A missing file gives ``default`` (or raises :class:`FileNotFoundError` when none is given). A file
    that is not UTF-8 JSON, is empty, or whose top-level value is not an instance of ``expect``, is
    corrupt: it is moved aside with :func:`move_aside` (unless ``move_corrupt`` is false, for files
    that must stay put such as a key store) and :class:`CorruptFileError` is raised, naming the file
    and where it was kept.
    """
    source = Path(path)
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        if default is _MISSING:
            raise
        return default
    problem: str | None = None
    value: Any = None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        problem = "is empty" if not raw.strip() else f"is not valid JSON ({exc})"
    if problem is None and expect is not None and not isinstance(value, expect):
        names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
        problem = f"holds a JSON {type(value).__name__}, expected {names}"
    if problem is None:
        return value
    kept_as = str(move_aside(source)) if move_corrupt else None
    where = f"; kept as {kept_as}" if kept_as else ""
    raise CorruptFileError(f"{source} {problem}{where}", path=str(source), kept_as=kept_as)


def write_json_file(path: str | os.PathLike[str], value: Any, mode: int = 0o644, *,
                    overwrite: bool = True) -> None:
    """Write ``value`` as indented JSON with :func:`atomic_write` (same ``mode`` and ``overwrite``)."""
    atomic_write(path, json.dumps(value, indent=2) + "\n", mode, overwrite=overwrite)


_LOCK_POLL_SECONDS = 0.05


class FileLock:
    """A lock on the file ``path`` (created with ``mode`` if missing); exclusive unless ``shared``.

    Use :meth:`acquire` or ``with``. Waiting polls with ``time.sleep`` (cooperative under gevent's
    monkey-patching) and always has a deadline. Lock files are left in place: deleting one would let
    a third party lock a new file while someone still holds the old one.
    """

    def __init__(self, path: str | os.PathLike[str], *, shared: bool = False, mode: int = 0o600) -> None:
        self.path = Path(path)
        self.shared = shared
        self.mode = mode
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.mode)
        how = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, how)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(_LOCK_POLL_SECONDS)
                continue
            self._fd = fd
            return True

    def hold(self, timeout: float, what: str = "") -> FileLock:
        """Take the lock within ``timeout`` seconds or raise :class:`TimeoutError` naming the file."""
        if not self.acquire(timeout):
            raise TimeoutError(f"{what or self.path} stayed locked for {timeout:g} s ({self.path})")
        return self

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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, shared={self.shared}, held={self.held})"
