"""JSON with the platform's conventions (stdlib :mod:`json` underneath).

Output uses :func:`json.dumps`' default separators (``", "`` and ``": "``) and ASCII escapes, as the
original platform's payloads do (docs/protocol.md §2.13): the text is then also valid Latin-1 for a VIP
frame. Input may be ``str`` or UTF-8 ``bytes``; anything that is not JSON raises
:class:`~volttron.utils.errors.JsonDecodeError`, a :class:`ValueError`.
"""

from __future__ import annotations

import json
from typing import IO, Any

from volttron.utils.errors import JsonDecodeError

__all__ = ["JsonDecodeError", "dump", "dumpb", "dumps", "load", "loadb", "loads"]


def dumps(obj: Any, **kwargs: Any) -> str:
    """``obj`` as JSON text; keyword arguments go to :func:`json.dumps`."""
    return json.dumps(obj, **kwargs)


def dumpb(obj: Any, **kwargs: Any) -> bytes:
    """``obj`` as UTF-8 encoded JSON bytes."""
    return json.dumps(obj, **kwargs).encode("utf-8")


def dump(obj: Any, fp: IO[str], **kwargs: Any) -> None:
    """Write ``obj`` as JSON to the text file ``fp``."""
    json.dump(obj, fp, **kwargs)


def loads(data: str | bytes | bytearray | memoryview, **kwargs: Any) -> Any:
    """The value of the JSON text ``data``; raises :class:`JsonDecodeError` on anything else."""
    if isinstance(data, memoryview):
        data = bytes(data)
    if not isinstance(data, (str, bytes, bytearray)):
        raise JsonDecodeError(f"JSON must be str or bytes, not {type(data).__name__}")
    try:
        return json.loads(data, **kwargs)
    except RecursionError:
        raise JsonDecodeError("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise JsonDecodeError(f"invalid JSON: {exc}") from exc


loadb = loads
"""Alias of :func:`loads` (which accepts bytes), for code ported from the original platform."""


def load(fp: IO[str] | IO[bytes], **kwargs: Any) -> Any:
    """The JSON value read from the file ``fp``; raises :class:`JsonDecodeError` on bad content."""
    return loads(fp.read(), **kwargs)
