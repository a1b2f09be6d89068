"""Errors of the agent side of VIP (docs/protocol.md §1.5, §2.5).

::

    VolttronError
     +-- VIPError                 an error frame (or a local failure to deliver a VIP message)
     |    +-- Unreachable         113 EHOSTUNREACH: no peer with that identity is connected
     |    +-- Again               11 EAGAIN: the message could not be queued (back-pressure, link down)
     |    +-- UnknownSubsystem    93 EPROTONOSUPPORT: the peer or router has no such subsystem
     +-- ResultTimeout            no answer within the timeout (also a ``gevent.Timeout``)
     +-- ConnectError             the agent could not join the platform
     +-- jsonrpc.Error            a JSON-RPC error answer (volttron.utils.jsonrpc)
          +-- MethodNotFound, Unauthorized, RemoteError

``RemoteError``, ``MethodNotFound`` and ``Unauthorized`` live in :mod:`volttron.utils.jsonrpc` and
are re-exported here, so ported agents catch them from either place.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import gevent

from volttron.utils.errors import VolttronError
from volttron.utils.jsonrpc import Error as JsonRpcError
from volttron.utils.jsonrpc import MethodNotFound, RemoteError, Unauthorized

__all__ = [
    "Again",
    "ConnectError",
    "JsonRpcError",
    "MethodNotFound",
    "RemoteError",
    "ResultTimeout",
    "Unauthorized",
    "UnknownSubsystem",
    "Unreachable",
    "VIPError",
]


class VIPError(VolttronError):
    """An error reported with a VIP ``error`` frame: ``errnum``, ``msg``, ``peer``, ``subsystem``."""

    def __init__(
        self, errnum: int, msg: str, peer: str | None = None, subsystem: str | None = None, *args: Any
    ) -> None:
        super().__init__(errnum, msg, peer, subsystem, *args)
        self.errno = errnum
        self.msg = msg
        self.peer = peer
        self.subsystem = subsystem

    def __str__(self) -> str:
        where = []
        if self.peer:
            where.append(f"peer={self.peer!r}")
        if self.subsystem:
            where.append(f"subsystem={self.subsystem!r}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"VIP error {self.errno}: {self.msg}{suffix}"

    @classmethod
    def from_errno(cls, errnum: int, msg: str | None = None, *args: Any) -> VIPError:
        """The most specific error class for ``errnum`` (Unreachable, Again, UnknownSubsystem)."""
        subclass = _BY_ERRNO.get(errnum, VIPError)
        if msg is None:
            msg = _strerror(errnum)
        return subclass(errnum, msg, *args)


class Unreachable(VIPError):
    """The recipient is not connected to the platform (EHOSTUNREACH)."""

    def __str__(self) -> str:
        return f"peer {self.peer!r} is unreachable: {self.msg}" if self.peer else f"unreachable: {self.msg}"


class Again(VIPError):
    """The message could not be queued now (EAGAIN); trying later may work."""


class UnknownSubsystem(VIPError):
    """The recipient does not handle that subsystem (EPROTONOSUPPORT)."""


_BY_ERRNO: dict[int, type[VIPError]] = {
    errno.EHOSTUNREACH: Unreachable,
    errno.EAGAIN: Again,
    errno.EPROTONOSUPPORT: UnknownSubsystem,
}


def _strerror(errnum: int) -> str:
    try:
        return os.strerror(errnum)
    except (ValueError, OverflowError):
        return f"error {errnum}"


class ResultTimeout(gevent.Timeout, VolttronError):
    """No answer arrived in time. A ``gevent.Timeout`` too, so ported ``except gevent.Timeout`` works."""

    def __init__(self, seconds: float | None, message: str) -> None:
        gevent.Timeout.__init__(self, seconds)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConnectError(VolttronError):
    """The agent could not join the platform (unreachable, refused, or no welcome in time)."""
