"""Which connection each peer speaks over, to turn socket disconnects into peer drops.

The ROUTER socket's monitor reports ``DISCONNECTED`` with the file descriptor of the closed
connection; every received message carries the descriptor it arrived on. This class ties the two
together and is careful about two orderings:

* the kernel reuses a closed descriptor for the next connection, so an event is charged to the
  identity the descriptor had *when the event was read* (the caller reads pending events before it
  ties a descriptor to a new identity), never to whoever holds that number later;
* a peer's last messages may still be queued when its disconnect is reported, so disconnects are
  only *settled* (turned into drops) once the caller has read every ready message; a peer that spoke
  again over a newer connection in the meantime is not dropped.
"""

from __future__ import annotations


class ConnectionTracker:
    """Identity <-> descriptor bookkeeping; ``fd_of`` is read directly on the hot path."""

    def __init__(self) -> None:
        self.fd_of: dict[bytes, int] = {}
        self._identity_of: dict[int, bytes] = {}
        self._gone: list[tuple[int, bytes]] = []

    def seen(self, identity: bytes, fd: int) -> None:
        """``identity`` sent a message over descriptor ``fd`` (-1 for inproc, which is not watched)."""
        old = self.fd_of.get(identity)
        if old is not None and self._identity_of.get(old) == identity:
            del self._identity_of[old]
        self.fd_of[identity] = fd
        if fd >= 0:
            self._identity_of[fd] = identity

    def disconnected(self, fd: int) -> None:
        """The monitor reported that the connection on ``fd`` closed."""
        identity = self._identity_of.pop(fd, None)
        if identity is not None:
            self._gone.append((fd, identity))

    def settle(self) -> list[bytes]:
        """Identities whose connection closed and who did not reconnect; call with no message pending."""
        dropped = []
        for fd, identity in self._gone:
            if self.fd_of.get(identity) == fd:
                del self.fd_of[identity]
                dropped.append(identity)
        self._gone.clear()
        return dropped

    def forget(self, identity: bytes) -> None:
        """Stop tracking ``identity`` (it was dropped for another reason)."""
        fd = self.fd_of.pop(identity, None)
        if fd is not None and self._identity_of.get(fd) == identity:
            del self._identity_of[fd]

    def __len__(self) -> int:
        return len(self._identity_of)
