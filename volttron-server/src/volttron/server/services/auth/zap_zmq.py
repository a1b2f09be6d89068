"""The ZAP handler socket (RFC 27): a thin gevent loop around :func:`~.zap.decide`.

It binds a ROUTER at ``inproc://zeromq.zap.01`` in the same libzmq context as the platform's router
socket (libzmq looks for the handler there), reads each request, asks the current ``auth.json``
policy and answers at once: ``200`` with the entry's user id, or ``400``.
"""

from __future__ import annotations

import logging

import gevent
import zmq
import zmq.green

from volttron.server.router.throttle import LogThrottle
from volttron.server.router.zmq_router import RouterError
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.auth.zap import decide, parse_request, reply_frames
from volttron.utils.errors import FrameError

_log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class ZapHandler:
    """Answers libzmq's authentication requests from an :class:`AuthPolicy`."""

    def __init__(self, context: zmq.Context, policy: AuthPolicy) -> None:
        self._context = zmq.green.Context.shadow(context.underlying)
        self._policy = policy
        self._socket: zmq.green.Socket | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._throttle = LogThrottle(_log, interval=5.0)
        self.accepted = 0
        self.refused = 0

    def start(self) -> None:
        """Bind the handler endpoint and start answering; :class:`RouterError` if it is taken."""
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise RouterError(f"cannot bind the ZAP handler at {ZAP_ENDPOINT}: {exc.strerror}") from None
        self._socket = sock
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        assert self._socket is not None
        sock = self._socket
        while True:
            frames = sock.recv_multipart()
            try:
                reply = self.handle(frames)
            except Exception:  # never leave libzmq waiting because of a bug here
                _log.exception("ZAP request failed; refusing it")
                reply = None
            if reply is None:
                continue
            try:
                sock.send_multipart(reply, zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                _log.warning("cannot answer a ZAP request: %s", exc)

    def handle(self, frames: list[bytes]) -> list[bytes] | None:
        """The reply (envelope included) to one request as the ROUTER received it; None if unanswerable."""
        try:
            split = frames.index(b"")
        except ValueError:
            _log.warning("ZAP request without an envelope delimiter; ignored")
            return None
        envelope, body = frames[: split + 1], frames[split + 1 :]
        try:
            request = parse_request(body)
        except FrameError as exc:
            _log.warning("malformed ZAP request: %s", exc)
            request_id = body[1] if len(body) > 1 else b""
            return [*envelope, b"1.0", request_id, b"400", b"malformed request", b"", b""]
        policy = self._policy.current()
        decision = decide(request, policy.allow, policy.deny)
        if decision.accepted:
            self.accepted += 1
            _log.debug("accepted %s connection from %s as %r", request.mechanism, request.address,
                       decision.user_id)
        else:
            self.refused += 1
            self._throttle.warning(f"refused:{request.credential_text()}", "refused connection: %s",
                                   decision.reason)
        return [*envelope, *reply_frames(request.request_id, decision)]

    def statistics(self) -> dict[str, int]:
        """Counts for status output."""
        return {"accepted": self.accepted, "refused": self.refused, "auth_reloads": self._policy.reloads}

    def stop(self) -> None:
        """Stop answering and close the endpoint."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
