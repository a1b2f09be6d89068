"""VIP frame payload encoding (docs/protocol.md §1.3).

The original platform serialises each Python value into one ZeroMQ frame: lists and dicts as JSON
text, ``str`` as ISO-8859-1, ``None`` as an empty frame, bytes as they are. Receivers of the
original platform then try ``json.loads`` on every frame. To stay readable by those agents we never
send packed binary numbers: integers, floats and booleans go as JSON text (``b"3"``, ``b"true"``),
which they parse back into numbers.

Our own code decodes frames by what it expects: :func:`decode_text` for identities, topics and
operation names, :func:`decode_json` for payloads. :func:`decode_frame` reproduces the original's
"JSON if it parses, else text" rule for code that must accept either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from volttron.utils.errors import FrameError

VIP_SIGNATURE = b"VIP1"
TEXT_ENCODING = "iso-8859-1"


def encode_frame(value: Any) -> bytes:
    """Encode one Python value as the bytes of a VIP frame."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return value.encode(TEXT_ENCODING)
        except UnicodeEncodeError as exc:
            raise FrameError(f"text frame is not Latin-1 encodable: {value[:40]!r}") from exc
    if isinstance(value, (bool, int, float, list, tuple, dict)):
        try:
            return json.dumps(value).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise FrameError(f"value is not JSON serialisable: {exc}") from exc
    raise FrameError(f"cannot put a {type(value).__name__} in a VIP frame")


def encode_frames(values: Iterable[Any]) -> list[bytes]:
    """Encode each value with :func:`encode_frame`."""
    return [encode_frame(v) for v in values]


def decode_text(frame: bytes | memoryview) -> str:
    """Decode a text frame (identity, topic, operation); never fails."""
    return bytes(frame).decode(TEXT_ENCODING)


def decode_json(frame: bytes | memoryview) -> Any:
    """Decode a JSON payload frame; raises :class:`FrameError` on anything else."""
    try:
        return json.loads(bytes(frame).decode(TEXT_ENCODING))
    except ValueError as exc:
        raise FrameError(f"frame is not JSON: {exc}") from exc
    except RecursionError:  # a peer can send "[[[[..." deeper than the parser's stack
        raise FrameError("frame is JSON nested too deeply") from None


def decode_frame(frame: bytes | memoryview) -> Any:
    """Decode a frame as the original agents do: the JSON value if it parses, else the text."""
    text = bytes(frame).decode(TEXT_ENCODING)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def decode_frames(frames: Sequence[bytes]) -> list[Any]:
    """Decode each frame with :func:`decode_frame`."""
    return [decode_frame(f) for f in frames]
