"""The ZAP decision (ZeroMQ RFC 27; docs/protocol.md §8.2): a plain function of a request and ``auth.json``.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` about every CURVE (or PLAIN/NULL with a
ZAP domain) handshake. The request frames after the routing envelope are::

    version "1.0", request id, domain, address, identity, mechanism, credentials...

The handler answers ``[version, request id, status code, status text, user id, metadata]``. This
module parses requests, decides and builds replies; the socket loop around it lives in
:mod:`volttron.server.services.auth.zap_zmq`.

An unknown client is refused at once with ``400`` (the original never answered, leaving clients to
time out), so the client's socket reports an authentication failure immediately.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from volttron.server.services.auth.authfile import AuthEntry, is_regex
from volttron.utils.errors import FrameError, KeyFormatError
from volttron.utils.keys import encode_key

ZAP_VERSION = b"1.0"


@dataclass(frozen=True)
class ZapRequest:
    """One authentication request, decoded."""

    request_id: bytes
    domain: str
    address: str
    identity: bytes
    mechanism: str
    credentials: tuple[bytes, ...]

    def credential_text(self) -> str | None:
        """The credentials as ``auth.json`` holds them: a 43-character CURVE key, or ``user:password``."""
        if self.mechanism == "CURVE":
            if len(self.credentials) != 1:
                return None
            try:
                return encode_key(self.credentials[0])
            except KeyFormatError:
                return None
        if self.mechanism == "PLAIN":
            return ":".join(c.decode("utf-8", "replace") for c in self.credentials)
        return None


@dataclass(frozen=True)
class ZapDecision:
    """The answer to a request: accepted with a user id, or refused with a reason."""

    accepted: bool
    user_id: str = ""
    reason: str = ""

    @property
    def status(self) -> tuple[bytes, bytes]:
        """The RFC 27 status code and text."""
        return (b"200", b"OK") if self.accepted else (b"400", b"FAIL")


def parse_request(frames: Sequence[bytes]) -> ZapRequest:
    """Decode the request frames that follow the envelope; :class:`FrameError` when malformed."""
    if len(frames) < 6:
        raise FrameError(f"ZAP request has {len(frames)} frames, at least 6 expected")
    version, request_id, domain, address, identity, mechanism, *credentials = frames
    if version != ZAP_VERSION:
        raise FrameError(f"unsupported ZAP version {version[:10]!r}")
    return ZapRequest(
        request_id=request_id,
        domain=domain.decode("utf-8", "replace"),
        address=address.decode("utf-8", "replace"),
        identity=identity,
        mechanism=mechanism.decode("ascii", "replace"),
        credentials=tuple(credentials),
    )


def _specific_first(entries: Sequence[AuthEntry]) -> list[AuthEntry]:
    # Entries with literal credentials are tried before /regex/ ones (the original's order).
    return sorted(entries, key=lambda e: is_regex(e.credentials))


def decide(request: ZapRequest, allow: Sequence[AuthEntry], deny: Sequence[AuthEntry] = ()) -> ZapDecision:
    """Accept when an enabled ``allow`` entry matches and no enabled ``deny`` entry does.

    The user id is the matching entry's ``user_id``.
    """
    credentials = request.credential_text()
    if request.mechanism != "NULL" and credentials is None:
        return ZapDecision(False, reason=f"unreadable {request.mechanism} credentials")
    args = (request.domain, request.address, request.mechanism, credentials)
    for entry in deny:
        if entry.enabled and entry.matches(*args):
            return ZapDecision(False, reason=f"denied by entry {entry.user_id}")
    for entry in _specific_first(allow):
        if entry.enabled and entry.matches(*args):
            return ZapDecision(True, user_id=entry.user_id)
    who = credentials if credentials is not None else request.address
    return ZapDecision(False, reason=f"no auth entry for {request.mechanism} {who} from {request.address}")


def reply_frames(request_id: bytes, decision: ZapDecision) -> list[bytes]:
    """The reply frames (without the envelope) for ``decision``."""
    code, text = decision.status
    return [ZAP_VERSION, request_id, code, text, decision.user_id.encode("utf-8"), b""]
