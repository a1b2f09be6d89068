"""VIP routing, independent of the socket library (docs/protocol.md §1.2-§1.7, §2.1-§2.4).

:class:`VipRouter` gets every message the ROUTER socket receives as a list of frames
``[sender, recipient, b"VIP1", user, msg_id, subsystem, args...]`` and sends with a ``send``
callable that raises :class:`PeerUnreachable` (EHOSTUNREACH) or :class:`PeerBusy` (EAGAIN). Messages
for another peer are forwarded byte for byte; only frames 0..3 are rewritten to
``[recipient, sender, b"VIP1", sender]`` (the user-id frame carries the sender's identity, §1.4).
Messages for the router itself (empty recipient) go to a subsystem handler: ``hello``, ``ping``,
``peerlist``, ``query``, ``agentstop``, ``quit`` and ``error`` are built in; others (``pubsub``) are
registered with :meth:`VipRouter.register_subsystem`.

Only frames 0..5, and the first argument of router subsystems, are ever decoded: this is the hot
path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from volttron.server.identities import QUIT_ALLOWED
from volttron.utils.errors import VolttronError
from volttron.utils.frames import encode_frame
from volttron.utils.throttle import LogThrottle

_log = logging.getLogger(__name__)

VIP1 = b"VIP1"
PROTOCOL_VERSION = b"1.0"

# Linux errno values, as the wire fixes them (docs/protocol.md §1.5), whatever the host.
EAGAIN = 11
EMSGSIZE = 90
EHOSTUNREACH = 113
EPROTONOSUPPORT = 93
ERROR_TEXT = {
    EAGAIN: b"Resource temporarily unavailable",
    EMSGSIZE: b"Message too long",
    EHOSTUNREACH: b"No route to host",
    EPROTONOSUPPORT: b"Protocol not supported",
}

Frames = list[bytes]
SubsystemHandler = Callable[[Frames], None]


class RouterSendError(VolttronError):
    """A message could not be handed to a peer."""

    def __init__(self, identity: bytes) -> None:
        super().__init__(f"cannot send to {identity!r}")
        self.identity = identity


class PeerUnreachable(RouterSendError):
    """The recipient is not connected (EHOSTUNREACH)."""


class PeerBusy(RouterSendError):
    """The recipient's queue is full (EAGAIN); the message was not sent."""


class MessageTooLarge(PeerBusy):
    """The message is larger than the platform forwards (EMSGSIZE); it was not sent."""


def error_frames(to: bytes, msg_id: bytes, errnum: int, recipient: bytes, subsystem: bytes,
                 text: bytes | None = None) -> Frames:
    """The error message of docs/protocol.md §1.5 from the router to ``to``, errno as ASCII digits."""
    return [to, b"", VIP1, b"", msg_id, b"error", str(errnum).encode("ascii"),
            ERROR_TEXT.get(errnum, b"") if text is None else text, recipient, subsystem]


class VipRouter:
    """Peer bookkeeping and the router's own subsystems; see the module docstring.

    ``queries`` maps a query name to its value (encoded per docs/protocol.md §1.3). ``on_quit`` is called
    when a control identity sends ``quit``.
    """

    def __init__(self, identity: bytes, send: Callable[[Frames], None], *,
                 queries: Mapping[str, Any] | None = None,
                 on_quit: Callable[[], None] | None = None,
                 quit_allowed: Iterable[str] = QUIT_ALLOWED,
                 throttle: LogThrottle | None = None) -> None:
        self.identity = identity
        self.send = send
        """Send one message as is; raises :class:`PeerUnreachable` or :class:`PeerBusy`."""
        self._peers: dict[bytes, None] = {}  # insertion-ordered set
        self._drop_listeners: list[Callable[[bytes], None]] = []
        self._on_quit = on_quit
        self._quit_allowed = frozenset(i.encode("iso-8859-1") for i in quit_allowed)
        self._queries = {name.encode("iso-8859-1"): encode_frame(value)
                         for name, value in (queries or {}).items()}
        self._throttle = throttle or LogThrottle(_log)
        self._subsystems: dict[bytes, SubsystemHandler] = {
            b"hello": self._hello,
            b"ping": self._ping,
            b"peerlist": self._peerlist,
            b"query": self._query,
            b"agentstop": self._agentstop,
            b"quit": self._quit,
            b"error": self._ignore,
        }
        self.malformed = 0
        self.errors_sent = 0

    # -- wiring --------------------------------------------------------------------------------
    def register_subsystem(self, name: bytes, handler: SubsystemHandler) -> None:
        """Serve subsystem ``name`` for messages addressed to the router (e.g. ``pubsub``)."""
        self._subsystems[name] = handler

    def add_drop_listener(self, listener: Callable[[bytes], None]) -> None:
        """Call ``listener(identity)`` whenever a peer is dropped."""
        self._drop_listeners.append(listener)

    @property
    def peers(self) -> list[bytes]:
        """Identities of the connected peers, oldest first."""
        return list(self._peers)

    def statistics(self) -> dict[str, int]:
        """Counts for status output."""
        return {"peers": len(self._peers), "malformed": self.malformed, "errors_sent": self.errors_sent}

    # -- the hot path --------------------------------------------------------------------------
    def route(self, frames: Frames) -> None:
        """Handle one message as received by the ROUTER socket (sender identity first)."""
        if len(frames) < 6:
            self._short(frames)
            return
        sender = frames[0]
        if frames[2] != VIP1:
            self._bad(sender, "bad VIP signature")
            return
        if sender not in self._peers:
            self._add_peer(sender)
        recipient = frames[1]
        if recipient:
            frames[0] = recipient
            frames[1] = sender
            frames[3] = sender
            try:
                self.send(frames)
            except PeerUnreachable:
                self._unreachable(sender, recipient, frames[4], frames[5])
            except MessageTooLarge:
                self.send_error(sender, frames[4], EMSGSIZE, recipient, frames[5])
            except PeerBusy:
                self.send_error(sender, frames[4], EAGAIN, recipient, frames[5])
            return
        handler = self._subsystems.get(frames[5])
        if handler is None:
            self.send_error(sender, frames[4], EPROTONOSUPPORT, b"", frames[5])
        else:
            handler(frames)

    def _short(self, frames: Frames) -> None:
        if len(frames) == 2 and not frames[1]:
            # the router probe [identity, b""]: the peer announces itself
            if frames[0] not in self._peers:
                self._add_peer(frames[0])
            return
        self._bad(frames[0] if frames else b"", f"{len(frames)} frames, at least 6 expected")

    def _bad(self, sender: bytes, why: str) -> None:
        self.malformed += 1
        self._throttle.warning(f"malformed:{why}", "dropped a malformed message from %r: %s", sender, why)

    def _unreachable(self, sender: bytes, recipient: bytes, msg_id: bytes, subsystem: bytes) -> None:
        self.drop_peer(recipient)
        if recipient != sender:
            self.send_error(sender, msg_id, EHOSTUNREACH, recipient, subsystem)

    # -- sending helpers -----------------------------------------------------------------------
    def reply(self, frames: Frames) -> bool:
        """Send a router-originated message; a vanished recipient is dropped. True when sent."""
        try:
            self.send(frames)
        except PeerUnreachable:
            self.drop_peer(frames[0])
            return False
        except PeerBusy:
            self._throttle.warning(f"busy:{frames[0]!r}", "reply to %r dropped: its queue is full", frames[0])
            return False
        return True

    def send_error(self, to: bytes, msg_id: bytes, errnum: int, recipient: bytes, subsystem: bytes,
                   text: bytes | None = None) -> None:
        """Send an error (docs/protocol.md §1.5) to ``to``."""
        self.errors_sent += 1
        self.reply(error_frames(to, msg_id, errnum, recipient, subsystem, text))

    # -- peers ---------------------------------------------------------------------------------
    def _add_peer(self, identity: bytes) -> None:
        unreachable = self._broadcast(b"add", identity)
        self._peers[identity] = None
        for peer in unreachable:
            self.drop_peer(peer)

    def drop_peer(self, identity: bytes) -> bool:
        """Forget ``identity``: tell its listeners and every remaining peer (``['drop', id]``).

        Returns False when it was not a known peer.
        """
        if identity not in self._peers:
            return False
        pending = [identity]
        while pending:
            peer = pending.pop()
            if peer not in self._peers:
                continue
            del self._peers[peer]
            _log.debug("dropped peer %r", peer)
            for listener in self._drop_listeners:
                try:
                    listener(peer)
                except Exception:  # one listener's bug must not stop the others or the router
                    _log.exception("drop listener %r failed for %r", listener, peer)
            pending.extend(self._broadcast(b"drop", peer))
        return True

    def _broadcast(self, op: bytes, identity: bytes) -> list[bytes]:
        """Send ``['peerlist', op, identity]`` to every known peer; returns the unreachable ones."""
        unreachable = []
        for peer in list(self._peers):
            try:
                self.send([peer, b"", VIP1, b"", b"", b"peerlist", op, identity])
            except PeerUnreachable:
                unreachable.append(peer)
            except PeerBusy:
                self._throttle.warning(f"busy:{peer!r}", "peerlist %s to %r dropped: queue full", op, peer)
        return unreachable

    # -- router subsystems ---------------------------------------------------------------------
    def _hello(self, frames: Frames) -> None:
        if len(frames) > 6 and frames[6] != b"hello":
            return  # a 'welcome' or anything else addressed to the router needs no answer
        sender = frames[0]
        self.reply([sender, b"", VIP1, sender, frames[4], b"hello", b"welcome", PROTOCOL_VERSION,
                    self.identity, sender])

    def _ping(self, frames: Frames) -> None:
        sender = frames[0]
        self.reply([sender, b"", VIP1, sender, frames[4], b"ping", b"pong", *frames[7:]])

    def _peerlist(self, frames: Frames) -> None:
        sender, msg_id = frames[0], frames[4]
        head = [sender, b"", VIP1, b"", msg_id, b"peerlist"]
        op = frames[6] if len(frames) > 6 else None
        if op == b"list":
            self.reply([*head, b"listing", *self._peers])
        elif op == b"list_with_messagebus":
            listing = {p.decode("iso-8859-1"): "zmq" for p in self._peers}
            self.reply([*head, b"listing_with_messagebus", json.dumps(listing).encode("ascii")])
        elif op is None:
            self.reply([*head, b"error", b"missing operation"])
        else:
            self.reply([*head, b"error", b"unknown operation"])

    def _query(self, frames: Frames) -> None:
        name = frames[6] if len(frames) > 6 else b""
        self.reply([frames[0], b"", VIP1, b"", frames[4], b"query", b"", self._queries.get(name, b"")])

    def _agentstop(self, frames: Frames) -> None:
        if len(frames) < 7 or not frames[6]:
            self._bad(frames[0], "agentstop without an identity")
            return
        sender, target = frames[0], frames[6]
        if sender != target and sender not in self._quit_allowed:
            self._throttle.warning(f"agentstop:{sender!r}", "ignored agentstop for %r from %r: only the "
                                   "agent itself or the control service may send it", target, sender)
            return
        self.drop_peer(target)

    def _quit(self, frames: Frames) -> None:
        sender = frames[0]
        if sender not in self._quit_allowed:
            self._throttle.warning(f"quit:{sender!r}", "ignored quit request from %r", sender)
            return
        _log.info("quit requested by %r", sender)
        if self._on_quit is not None:
            self._on_quit()

    def _ignore(self, frames: Frames) -> None:
        _log.debug("error reported to the router by %r: %r", frames[0], frames[6:])
