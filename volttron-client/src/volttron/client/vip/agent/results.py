"""Pending answers to VIP requests, keyed by message id (docs/protocol.md §1.9).

Every request that expects an answer gets an :class:`AsyncResult` from a :class:`ResultsDictionary`;
its ``ident`` becomes the VIP message id (and the JSON-RPC id), and the answer or error frame
carrying that id resolves it. The dictionary holds results weakly: a caller that drops its result
(a publish nobody waits for) costs nothing once the answer arrives or never does.
"""

from __future__ import annotations

import base64
import os
import weakref
from typing import TYPE_CHECKING, Any

import gevent.event

from volttron.client.vip.agent.errors import ResultTimeout

if TYPE_CHECKING:
    _GeventAsyncResult = gevent.event.AsyncResult[Any]
else:  # not subscriptable at run time
    _GeventAsyncResult = gevent.event.AsyncResult


_ID_BYTES = 12
"""96 random bits per message id; 12 bytes are exactly 16 base64 characters."""
_ID_BATCH = 256
_spare_idents: list[str] = []


def _new_ident() -> str:
    """A fresh message id: ``r`` and 96 random bits, URL-safe base64.

    The kernel is asked for the bits of 256 ids at a time (one ``getrandom`` call, one base64 pass):
    one call per id cost a publish more than its JSON did. A forked child discards what its parent
    had left, so no two processes ever hand out the same ids.
    """
    if not _spare_idents:
        text = base64.urlsafe_b64encode(os.urandom(_ID_BYTES * _ID_BATCH)).decode("ascii")
        step = _ID_BYTES * 4 // 3
        _spare_idents.extend("r" + text[i:i + step] for i in range(0, len(text), step))
    return _spare_idents.pop()


os.register_at_fork(after_in_child=_spare_idents.clear)


class AsyncResult(_GeventAsyncResult):
    """A ``gevent.event.AsyncResult`` whose timeout says what was being waited for.

    ``get(timeout=...)`` raises :class:`~volttron.client.vip.agent.errors.ResultTimeout`, which is
    both a ``gevent.Timeout`` and a ``VolttronError``.
    """

    __slots__ = ("ident", "peer", "description", "platform")

    def __init__(self, ident: str = "", peer: str | None = None, description: str = "",
                 platform: str = "") -> None:
        super().__init__()
        self.ident = ident
        self.peer = peer
        """Who must answer (None: anyone, for requests to the router itself)."""
        self.description = description
        self.platform = platform
        """The linked platform the request went to (``""``: this platform)."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The value (or raise the error); waits up to ``timeout`` seconds when ``block``."""
        if not self.ready():
            if not block:
                raise ResultTimeout(0, f"no answer yet to {self.description or 'the request'}")
            self.wait(timeout)
            if not self.ready():
                raise ResultTimeout(
                    timeout, f"no answer to {self.description or 'the request'} within {timeout} s"
                )
        return super().get(block=False)


class ResultsDictionary:
    """Creates results with unique ids and finds them again when the answer comes."""

    def __init__(self) -> None:
        self._results: weakref.WeakValueDictionary[str, AsyncResult] = weakref.WeakValueDictionary()

    def next(self, peer: str | None = None, description: str = "", platform: str = "") -> AsyncResult:
        """A new pending result with a fresh, unguessable ``ident``.

        96 random bits per request: whoever sees some of our ids (a peer we call) cannot guess the
        next ones, so an answer forged for another pending call is never matched. The leading
        letter keeps the id from parsing as JSON, so a router that re-types numeric frames
        (docs/protocol.md §1.9) leaves it alone.
        """
        result = AsyncResult(_new_ident(), peer, description, platform)
        self._results[result.ident] = result
        return result

    def __next__(self) -> AsyncResult:
        return self.next()

    def __iter__(self) -> ResultsDictionary:
        return self

    def get(self, ident: str) -> AsyncResult | None:
        """The pending result with ``ident`` (kept); None when unknown or already dropped."""
        return self._results.get(ident)

    def pop(self, ident: str) -> AsyncResult | None:
        """The pending result with ``ident``, removed; None when unknown or already dropped."""
        return self._results.pop(ident, None)

    def pending(self) -> list[AsyncResult]:
        """The results still waiting for an answer (for failing them when a peer goes away)."""
        return [r for r in list(self._results.values()) if not r.ready()]

    def __len__(self) -> int:
        return len(self._results)
