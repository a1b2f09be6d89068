"""The sending side of a file over a VIP channel, and the install's progress stream (docs/protocol.md §5.4).

The platform drives the exchange: it asks ``["fetch", n]`` and gets the next chunk of at most
``n`` bytes, asks ``["checksum"]`` and gets the SHA-512 digest (64 bytes) of everything sent so
far, and gets ``b"complete"`` when nothing is left. A chunk that is literally ``b"complete"`` is
sent one byte short (the byte follows in the next chunk), so it cannot end the transfer early.

While the platform installs, it may send ``["progress", step, message]`` and ``["alive"]`` on
the same channel. :func:`serve_install` answers and reports until the install call has its
answer; it fails when the platform stays silent for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from volttron.utils.errors import VolttronError

COMPLETE = b"complete"
POLL_SECONDS = 0.2

ProgressHandler = Callable[[str, str], None]
"""``progress(step, message)``."""


class UploadError(VolttronError):
    """The platform asked for something unexpected, or went silent."""


class UploadTimeout(UploadError):
    """The platform sent nothing (not even ``["alive"]``) for the idle timeout."""


class FileSender:
    """Answers the platform's ``fetch``/``checksum`` requests from one open file."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self.sent = 0
        self.finished = False
        self._digest = hashlib.sha512()
        self._held = b""

    def answer(self, request: list[Any]) -> bytes:
        """The frame answering ``request`` (already JSON-decoded)."""
        op = request[0] if request else None
        if op == "checksum":
            return self._digest.digest()
        if op != "fetch" or len(request) < 2 or not isinstance(request[1], int) or request[1] < 1:
            raise UploadError(f"unexpected request from the platform: {request!r}")
        chunk = self._held + self.stream.read(max(0, request[1] - len(self._held)))
        self._held = b""
        if not chunk:
            self.finished = True
            return COMPLETE
        if chunk == COMPLETE:
            chunk, self._held = chunk[:-1], chunk[-1:]
        self._digest.update(chunk)
        self.sent += len(chunk)
        return chunk


def parse_request(frame: bytes) -> list[Any] | None:
    """A JSON list sent by the platform, or None when the frame is not one."""
    try:
        value = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, list) and value and isinstance(value[0], str) else None


def serve_install(
    channel: Any,
    result: Any,
    wheel: Path | None,
    idle_timeout: float,
    progress: ProgressHandler | None = None,
    sent: Callable[[int, int], None] | None = None,
) -> None:
    """Serve ``channel`` until ``result`` (the install call's ``AsyncResult``) is ready.

    ``wheel`` is the file to send when the platform asks (None: only progress is expected);
    ``sent(bytes_sent, total)`` reports the transfer. Raises :class:`UploadError` when the
    platform is silent for ``idle_timeout`` seconds or asks for something unexpected.
    """
    from volttron.client.vip.agent.errors import ResultTimeout
    from volttron.client.vip.agent.subsystems.channel import ChannelClosed

    stream = open(wheel, "rb") if wheel is not None else None  # noqa: SIM115 - closed below
    sender = FileSender(stream, wheel.stat().st_size) if stream is not None and wheel is not None else None
    last_heard = time.monotonic()
    try:
        while not result.ready():
            try:
                frame = channel.recv(timeout=POLL_SECONDS)
            except ResultTimeout:
                if time.monotonic() - last_heard > idle_timeout:
                    raise UploadTimeout(f"the platform sent nothing for {idle_timeout:g} s") from None
                continue
            except ChannelClosed:
                return  # the call's own answer (or its failure) tells the rest
            last_heard = time.monotonic()
            request = parse_request(frame)
            if request is None:
                raise UploadError("the platform sent an unreadable request")
            if request[0] == "progress":
                if progress is not None and len(request) >= 3:
                    progress(str(request[1]), str(request[2]))
            elif request[0] == "alive":
                continue
            elif sender is None:
                raise UploadError(f"the platform asked for a file that is not being sent: {request!r}")
            else:
                channel.send(sender.answer(request))
                if sent is not None and request[0] == "fetch":
                    sent(sender.sent, sender.size)
        # Progress sent just before the answer may still wait in the channel's queue: report it too.
        while True:
            try:
                request = parse_request(channel.recv(timeout=0))
            except (ResultTimeout, ChannelClosed):
                break
            if request and request[0] == "progress" and progress is not None and len(request) >= 3:
                progress(str(request[1]), str(request[2]))
    finally:
        if stream is not None:
            stream.close()
