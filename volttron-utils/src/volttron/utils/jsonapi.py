"""JSON with the platform's conventions (stdlib :mod:`json` underneath).

Output uses :func:`json.dumps`' default separators (``", "`` and ``": "``) and ASCII escapes, as the
original platform's payloads do (docs/protocol.md §2.13): the text is then also valid Latin-1 for a VIP
frame. Input may be ``str`` or UTF-8 ``bytes``; anything that is not JSON raises
:class:`~volttron.utils.errors.JsonDecodeError`, a :class:`ValueError`.

:func:`encode` and :func:`decode` are ``json.dumps(obj)`` and ``json.loads(text)`` with the stdlib's
defaults, answers and errors, for the message path: each message's JSON goes through them a few
times, and the stdlib's wrappers cost more than the C code that does the work (timeit, an RPC
request: ``json.dumps`` 2.1 µs, :func:`encode` 0.9; ``json.loads`` 1.6 µs, :func:`decode` 0.7).
:func:`encode` keeps one C encoder for good, without the per-call circular-reference bookkeeping
that makes ``json.dumps`` build a new one each time; a value that would need it (a circular or too
deeply nested structure) fails in the C code and is encoded again by ``json.dumps``, so the error is
the stdlib's. :func:`decode` calls the stdlib's C scanner directly and leaves everything it does not
take whole (whitespace around the value, errors) to ``json.loads``. Both fall back to the stdlib
entirely where its C accelerator is missing or answers differently.
"""

from __future__ import annotations

import json
import json.decoder
import json.encoder
import json.scanner
from collections.abc import Callable
from typing import IO, Any, cast

from volttron.utils.errors import JsonDecodeError

__all__ = ["JsonDecodeError", "decode", "dump", "dumpb", "dumps", "encode", "load", "loadb", "loads"]

_SAMPLE: Any = {"a": [1, 2.5, None, True, False, "\u00e9\n\"", float("inf")], "b": {}, "": []}


def _c_encoder() -> Callable[[Any, int], Any] | None:
    make = getattr(json.encoder, "c_make_encoder", None)  # private: None without the C accelerator
    if make is None:
        return None
    try:
        one = make(None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ": ", ", ",
                   False, False, True)
        if "".join(one(_SAMPLE, 0)) != json.dumps(_SAMPLE):
            return None
    except Exception:  # another Python's private signature: use the stdlib's own way
        return None
    return cast("Callable[[Any, int], Any]", one)


def _c_scanner() -> Callable[[str, int], tuple[Any, int]] | None:
    scan = getattr(json.scanner, "c_make_scanner", None)
    if scan is None:
        return None
    one = scan(json.decoder.JSONDecoder())
    text = json.dumps(_SAMPLE)
    try:
        if one(text, 0) != (json.loads(text), len(text)):
            return None
    except Exception:
        return None
    return cast("Callable[[str, int], tuple[Any, int]]", one)


_ENCODE = _c_encoder()
_SCAN = _c_scanner()
_SPACE = " \t\n\r"


def encode(obj: Any) -> str:
    """``json.dumps(obj)``, faster on the message path; the same text and the same errors."""
    if _ENCODE is not None:
        try:
            return "".join(_ENCODE(obj, 0))
        except RecursionError:
            pass  # circular or nested too deeply: json.dumps says which
    return json.dumps(obj)


def decode(text: str) -> Any:
    """``json.loads(text)`` for a ``str``, faster on the message path; the same value and errors."""
    if _SCAN is not None and text and text[0] not in _SPACE:
        try:
            value, end = _SCAN(text, 0)
        except (StopIteration, RecursionError):
            pass  # not JSON (or nested too deeply): json.loads says why
        else:
            if end == len(text):
                return value
    return json.loads(text)


def dumps(obj: Any, **kwargs: Any) -> str:
    """``obj`` as JSON text; keyword arguments go to :func:`json.dumps`."""
    return json.dumps(obj, **kwargs) if kwargs else encode(obj)


def dumpb(obj: Any, **kwargs: Any) -> bytes:
    """``obj`` as UTF-8 encoded JSON bytes."""
    return dumps(obj, **kwargs).encode("utf-8")


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
        return decode(data) if type(data) is str and not kwargs else json.loads(data, **kwargs)
    except RecursionError:
        raise JsonDecodeError("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise JsonDecodeError(f"invalid JSON: {exc}") from exc


loadb = loads
"""Alias of :func:`loads` (which accepts bytes), for code ported from the original platform."""


def load(fp: IO[str] | IO[bytes], **kwargs: Any) -> Any:
    """The JSON value read from the file ``fp``; raises :class:`JsonDecodeError` on bad content."""
    return loads(fp.read(), **kwargs)
