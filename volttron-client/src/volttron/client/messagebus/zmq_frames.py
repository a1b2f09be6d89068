# Copyright the VOLTTRON modular platform developers. Licensed under the Apache License, Version 2.0.
"""Whole ZeroMQ messages in one call: the compiled helper, or pyzmq frame by frame.

pyzmq reads and writes one frame per call, at 0.5-1.8 µs of Python object work a call, and a VIP
message has 6 to 8 frames: reading one cost about 14 µs, which made frame handling the largest item
in the router's and the agents' profiles (docs/performance.md). The optional extension
``_zmqframes`` (C, built with volttron-client when a compiler is there) moves a whole message per
call on the socket pyzmq opened, through the libzmq pyzmq loaded, in about 1.5 µs.

Everything here is non-blocking and answers the same with either implementation:

* :func:`recv` -- the next whole message as a list of bytes, or None when none waits;
* :func:`recv_routed` -- the same for a ROUTER, with the descriptor of the connection the message
  came over (-1 without one, as on inproc) and the ZAP ``User-Id`` of that connection;
* :func:`send` -- queue one message; False when its first frame would block (nothing is queued then;
  ZeroMQ takes the rest of a message whose first frame it accepted).

Failures raise pyzmq's exceptions (:class:`zmq.ZMQError` with the errno, ``ENOTSOCK`` for a closed
socket), so callers handle both implementations alike. Set ``VOLTTRON_ZMQ_FRAMES=python`` to use
pyzmq's frame-by-frame calls (to compare, or to rule the extension out); :data:`IMPLEMENTATION`
says which one is in use and why.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import zmq

try:
    from zmq.backend import Socket as _BackendSocket
except ImportError:  # pragma: no cover - every supported pyzmq has it
    _BackendSocket = zmq.Socket  # type: ignore[misc,assignment]

_log = logging.getLogger(__name__)

#: The environment variable that turns the compiled helper off ("python").
ENVIRONMENT_VARIABLE = "VOLTTRON_ZMQ_FRAMES"

_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_SRCFD = int(zmq.SRCFD)
_ENOTSOCK = int(zmq.ENOTSOCK)
_ETERM = int(zmq.ETERM)
_send_frame = getattr(_BackendSocket, "send", zmq.Socket.send)
_recv_frame = getattr(_BackendSocket, "recv", zmq.Socket.recv)

Routed = tuple[list[bytes], int, "str | None"]


def _load() -> tuple[ModuleType | None, str]:
    """The bound extension and why, or None and why not."""
    if os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() == "python":
        return None, f"pyzmq frame by frame ({ENVIRONMENT_VARIABLE}=python)"
    try:
        from volttron.client.messagebus import _zmqframes  # type: ignore[attr-defined]
    except ImportError:
        return None, "pyzmq frame by frame (volttron-client was installed without its compiled helper)"
    try:
        from zmq.backend.cython import _zmq as backend

        version = tuple(_zmqframes.bind(backend.__file__))
    except (ImportError, AttributeError, OSError) as exc:
        return None, f"pyzmq frame by frame (the compiled helper cannot reach pyzmq's libzmq: {exc})"
    if version != zmq.zmq_version_info() or version < (4, 1):
        return None, (f"pyzmq frame by frame (the compiled helper found libzmq {version}, "
                      f"pyzmq reports {zmq.zmq_version_info()})")
    return _zmqframes, f"compiled (libzmq {'.'.join(map(str, version))})"


_compiled, IMPLEMENTATION = _load()
#: True when whole messages move through the compiled helper.
COMPILED = _compiled is not None


def _error(code: int) -> zmq.ZMQError:
    if code == errno.EAGAIN:
        return zmq.Again(code)
    if code == _ETERM:
        return zmq.ContextTerminated(code)
    return zmq.ZMQError(code)


def _closed() -> zmq.ZMQError:
    return zmq.ZMQError(_ENOTSOCK)


# -- pyzmq, frame by frame ---------------------------------------------------------------------
def _recv_python(sock: Any) -> list[bytes] | None:
    try:
        # Frames (copy=False) carry their own "more" flag, which saves a getsockopt per part.
        frame = _recv_frame(sock, _NOBLOCK, False)
    except zmq.Again:
        return None
    parts = [frame.bytes]
    while frame.more:
        frame = _recv_frame(sock, _NOBLOCK, False)
        parts.append(frame.bytes)
    return parts


def _recv_routed_python(sock: Any, known: Mapping[bytes, int]) -> Routed | None:
    try:
        first = _recv_frame(sock, _NOBLOCK, False)
    except zmq.Again:
        return None
    frames = [first.bytes]
    frame = first
    while frame.more:
        frame = _recv_frame(sock, _NOBLOCK, False)
        frames.append(frame.bytes)
    try:
        fd = int(first.get(_SRCFD))
    except zmq.ZMQError:
        fd = -1  # inproc: no connection
    user: str | None = None
    if known.get(frames[0]) != fd:  # the property lookup costs an exception when absent: only if needed
        try:
            user = str(first.get("User-Id"))
        except zmq.ZMQError:
            user = None
    return frames, fd, user


def _send_python(sock: Any, frames: Sequence[Any]) -> bool:
    last = len(frames) - 1
    if last < 0:
        raise ValueError("a message needs at least one frame")
    try:
        _send_frame(sock, frames[0], _SNDMORE_NOBLOCK if last else _NOBLOCK)
    except zmq.Again:
        return False
    for i in range(1, last):
        _send_frame(sock, frames[i], _SNDMORE_NOBLOCK)
    if last:
        _send_frame(sock, frames[last], _NOBLOCK)
    return True


# -- the compiled helper ---------------------------------------------------------------------------
def _recv_compiled(sock: Any) -> list[bytes] | None:
    if sock.closed:  # the handle of a closed socket is freed memory: never pass it on
        raise _closed()
    result = _compiled.recv(sock.underlying)  # type: ignore[union-attr]
    if result.__class__ is int:
        raise _error(result)
    return result  # type: ignore[no-any-return]


def _recv_routed_compiled(sock: Any, known: Mapping[bytes, int]) -> Routed | None:
    if sock.closed:
        raise _closed()
    result = _compiled.recv_routed(sock.underlying)  # type: ignore[union-attr]
    if result.__class__ is int:
        raise _error(result)
    return result  # type: ignore[no-any-return]


def _send_compiled(sock: Any, frames: Sequence[Any]) -> bool:
    if sock.closed:
        raise _closed()
    try:
        result = _compiled.send(sock.underlying, frames)  # type: ignore[union-attr]
    except TypeError:
        # The helper takes bytes and bytearray; pyzmq also takes other buffers (a memoryview, a
        # Frame). Copy those (memoryview() refuses what is no buffer, a str), still before anything
        # is queued, and try once more.
        frames = [f if isinstance(f, (bytes, bytearray)) else bytes(memoryview(f)) for f in frames]
        result = _compiled.send(sock.underlying, frames)  # type: ignore[union-attr]
    if result.__class__ is int:
        raise _error(result)
    return result  # type: ignore[no-any-return]


def recv(sock: Any) -> list[bytes] | None:
    """The next whole message waiting on ``sock`` (a pyzmq socket), or None when none waits."""
    return _recv_compiled(sock) if COMPILED else _recv_python(sock)


def recv_routed(sock: Any, known: Mapping[bytes, int]) -> Routed | None:
    """:func:`recv` on a ROUTER socket: ``(frames, fd, user)``, or None when no message waits.

    ``frames[0]`` is the sender's routing identity; ``fd`` the descriptor of its connection (-1 when
    there is none); ``user`` the ``User-Id`` the ZAP handler gave the connection, or None. ``user``
    may be None also when ``known`` maps the sender to ``fd`` already (the caller has checked this
    connection: the pyzmq path then skips the lookup).
    """
    return _recv_routed_compiled(sock, known) if COMPILED else _recv_routed_python(sock, known)


def send(sock: Any, frames: Sequence[Any]) -> bool:
    """Queue ``frames`` on ``sock`` as one message; False when the first frame would block."""
    return _send_compiled(sock, frames) if COMPILED else _send_python(sock, frames)


def use(implementation: str) -> None:
    """Switch between ``"compiled"`` and ``"python"`` (tests compare the two; not for agents)."""
    global COMPILED, _compiled, IMPLEMENTATION
    if implementation == "python":
        COMPILED = False
        IMPLEMENTATION = "pyzmq frame by frame (chosen by use())"
        return
    if implementation != "compiled":
        raise ValueError(f"unknown implementation {implementation!r}")
    module, why = _load()
    if module is None:
        raise RuntimeError(why)
    _compiled, COMPILED, IMPLEMENTATION = module, True, why
