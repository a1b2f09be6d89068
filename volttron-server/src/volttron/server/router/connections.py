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

It also knows every live connection from the monitor's ``ACCEPTED`` event (each with a generation
number, so a descriptor the kernel reuses is never mistaken for the old connection) and which of
them have not sent anything yet: a connection that stays silent holds its routing id unchecked, so
the router closes it after a while (:meth:`ConnectionTracker.silent`).

The router has no libzmq call to close one peer's connection; :func:`shut_down` does it from the
outside, with ``shutdown(2)`` on the descriptor: libzmq then sees the connection end, reports it and
closes the descriptor itself. :func:`send_queue_drained` asks the kernel whether the peer is
taking what is sent to it (``SIOCOUTQ``, Linux).
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios

SIOCOUTQ = getattr(termios, "TIOCOUTQ", 0x5411)  # the same request number for sockets (Linux)


def shut_down(fd: int) -> bool:
    """Shut down both directions of the socket on ``fd`` without closing the descriptor; False if gone."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
    finally:
        sock.detach()  # libzmq owns the descriptor and closes it


def send_queue(fd: int) -> tuple[int, int] | None:
    """``(bytes in the kernel's send queue of fd, its size SO_SNDBUF)``; None if ``fd`` is no socket.

    A peer that stops reading fills it to about half (Unix sockets) or two thirds (TCP) of the size.
    """
    try:
        queued = struct.unpack("i", fcntl.ioctl(fd, SIOCOUTQ, b"\0\0\0\0"))[0]
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return queued, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except OSError:
        return None
    finally:
        sock.detach()


class ConnectionTracker:
    """Identity <-> descriptor bookkeeping; ``fd_of`` is read directly on the hot path."""

    def __init__(self) -> None:
        self.fd_of: dict[bytes, int] = {}
        self._identity_of: dict[int, bytes] = {}
        self._gone: list[tuple[int, bytes]] = []
        self._live: dict[int, int] = {}  # descriptor -> generation of the connection on it
        self._unclaimed: dict[int, float] = {}  # descriptor -> accepted at; nothing received yet
        self._generation = 0

    def accepted(self, fd: int, now: float) -> None:
        """The monitor reported a new connection on ``fd``."""
        self._generation += 1
        self._live[fd] = self._generation
        self._unclaimed[fd] = now

    def generation(self, fd: int) -> int | None:
        """The generation of the live connection on ``fd``; None when there is none."""
        return self._live.get(fd)

    def silent(self, accepted_before: float) -> list[tuple[int, int]]:
        """``(fd, generation)`` of connections accepted before then that never sent; no longer watched."""
        found = [(fd, self._live[fd]) for fd, at in self._unclaimed.items()
                 if at < accepted_before and fd in self._live]
        for fd, _ in found:
            del self._unclaimed[fd]
        return found

    def seen(self, identity: bytes, fd: int) -> None:
        """``identity`` sent a message over descriptor ``fd`` (-1 for inproc, which is not watched)."""
        old = self.fd_of.get(identity)
        if old is not None and self._identity_of.get(old) == identity:
            del self._identity_of[old]
        self.fd_of[identity] = fd
        if fd >= 0:
            self._identity_of[fd] = identity
            self._unclaimed.pop(fd, None)

    def disconnected(self, fd: int) -> None:
        """The monitor reported that the connection on ``fd`` closed."""
        self._live.pop(fd, None)
        self._unclaimed.pop(fd, None)
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
