"""The server's side of a file sent over a VIP channel (docs/protocol.md §5.4 step 3).

The sender (vctl) opens the channel first and then asks ``platform.control`` to install; the
receiver drives the exchange, one request at a time::

    receiver -> ["fetch", 1000000]      sender -> the next chunk (1..1000000 raw bytes)
    receiver -> ["checksum"]            sender -> SHA-512 digest of everything sent so far (64 bytes)
    ...                                 ...
    receiver -> ["fetch", 1000000]      sender -> b"complete"   (nothing left)

Requests are JSON texts. Every answer must arrive within ``step_timeout`` seconds and the whole
transfer within ``total_timeout``; a file larger than ``max_size`` is refused. On any failure the
partial file is deleted and :class:`TransferError` says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from volttron.utils.errors import VolttronError

COMPLETE = b"complete"
FETCH = "fetch"
CHECKSUM = "checksum"
DIGEST_SIZE = 64
_WHEEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+!-]*\.whl")


class TransferError(VolttronError):
    """A file transfer over a channel failed (timeout, size limit, checksum, closed channel)."""


class ChannelEnd(Protocol):
    """What the receiver needs of a channel (``VipChannel`` provides it)."""

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """Send one frame."""

    def recv(self, timeout: float | None = None) -> bytes:
        """The next frame; raises on timeout or when the channel closes."""


@dataclass(frozen=True)
class TransferLimits:
    """Bounds of one transfer."""

    chunk_size: int = 1_000_000
    max_size: int = 256 * 1024 * 1024
    step_timeout: float = 30.0
    """Seconds the sender may take to answer one request."""
    total_timeout: float = 900.0


def check_wheel_filename(name: str) -> str:
    """``name`` if it is a plain wheel file name (no directories), else :class:`TransferError`."""
    if not isinstance(name, str) or not _WHEEL_NAME.fullmatch(name) or ".." in name:
        raise TransferError(f"{name!r} is not a wheel file name (expected <name>-<version>-...-<tag>.whl)")
    return name


def receive_file(channel: ChannelEnd, path: Path, limits: TransferLimits | None = None) -> int:
    """Fetch a whole file over ``channel`` into ``path``; returns its size in bytes.

    ``path`` is removed again when the transfer fails.
    """
    limits = limits or TransferLimits()
    deadline = time.monotonic() + limits.total_timeout
    fetch = json.dumps([FETCH, limits.chunk_size]).encode("ascii")
    checksum = json.dumps([CHECKSUM]).encode("ascii")
    digest = hashlib.sha512()
    size = 0
    try:
        with open(path, "wb") as out:
            while True:
                data = _ask(channel, fetch, limits, deadline, "the next chunk")
                if data == COMPLETE:
                    break
                if not data:
                    raise TransferError("the sender sent an empty chunk")
                if len(data) > limits.chunk_size:
                    raise TransferError(
                        f"the sender sent {len(data)} bytes where at most {limits.chunk_size} were asked for"
                    )
                size += len(data)
                if size > limits.max_size:
                    raise TransferError(f"the file is larger than the limit of {limits.max_size} bytes")
                digest.update(data)
                out.write(data)
                answer = _ask(channel, checksum, limits, deadline, "the checksum")
                if answer != digest.digest():
                    raise TransferError(f"checksum mismatch after {size} bytes: the file changed on the way")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return size


def _ask(channel: ChannelEnd, request: bytes, limits: TransferLimits, deadline: float, what: str) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransferError(f"the transfer took longer than {limits.total_timeout:g} s")
    wait = min(limits.step_timeout, left)
    try:
        channel.send(request)
        return channel.recv(timeout=wait)
    except VolttronError as exc:
        if isinstance(exc, TransferError):
            raise
        raise TransferError(f"waiting for {what}: {exc}") from exc
