"""The ZAP handler socket (RFC 27): a thin gevent loop around :func:`~.zap.decide`.

It binds a ROUTER at ``inproc://zeromq.zap.01`` in the same libzmq context as the platform's router
socket (libzmq looks for the handler there), reads each request, asks the current ``auth.json``
policy and answers at once: ``200`` with the entry's user id, or ``400``.

Refused CURVE keys are recorded for ``vctl auth remote list`` (see
:mod:`~volttron.server.services.auth.pending`). The answer never waits for that: refusals are
counted in memory (at most one entry per key, at most ``requests.limit`` keys) and written to the
records file at most once per ``flush_delay`` seconds.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
import zmq
import zmq.green

from volttron.server.router.zmq_router import RouterError
from volttron.server.services.auth.pending import CredentialRequests, Refusal, now_text, pending_path
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.auth.zap import ZapRequest, decide, parse_request, reply_frames
from volttron.utils.errors import FrameError, VolttronError
from volttron.utils.throttle import LogThrottle

_log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class ZapHandler:
    """Answers libzmq's authentication requests from an :class:`AuthPolicy`."""

    def __init__(self, context: zmq.Context, policy: AuthPolicy, requests: CredentialRequests | None = None,
                 flush_delay: float = 1.0) -> None:
        self._context: zmq.green.Context[Any] = zmq.green.Context.shadow(context.underlying)
        self._policy = policy
        self.requests = requests if requests is not None else CredentialRequests(pending_path(policy.path))
        self._flush_delay = flush_delay
        self._refusals: dict[tuple[str, str], Refusal] = {}
        self._flusher: gevent.Greenlet | None = None
        self._socket: zmq.green.Socket | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._throttle = LogThrottle(_log, interval=5.0)
        self.accepted = 0
        self.refused = 0
        self.unrecorded = 0

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
            self._note_refusal(request)
        return [*envelope, *reply_frames(request.request_id, decision)]

    # -- refused keys ----------------------------------------------------------------------------
    def _note_refusal(self, request: ZapRequest) -> None:
        credentials = request.credential_text()
        if request.mechanism != "CURVE" or credentials is None:
            return
        key = (request.mechanism, credentials)
        known = self._refusals.get(key)
        if known is None and len(self._refusals) >= self.requests.limit:
            self.unrecorded += 1  # a flood of new keys: bounded memory, the next flush makes room
            return
        count = known.count + 1 if known is not None else 1
        self._refusals[key] = Refusal(request.domain, request.address, request.mechanism, credentials, count,
                                      now_text())
        if self._flusher is None:
            self._flusher = gevent.spawn_later(self._flush_delay, self.flush)

    def flush(self) -> None:
        """Write the refusals counted so far to the records file."""
        self._flusher = None
        refusals, self._refusals = list(self._refusals.values()), {}
        if not refusals:
            return
        try:
            self.requests.add_refusals(refusals)
        except VolttronError as exc:
            _log.error("refused keys not recorded: %s", exc)

    def statistics(self) -> dict[str, int]:
        """Counts for status output."""
        return {"accepted": self.accepted, "refused": self.refused, "auth_reloads": self._policy.reloads,
                "refusals_not_recorded": self.unrecorded}

    def stop(self) -> None:
        """Stop answering, record what is still counted, and close the endpoint."""
        if self._flusher is not None:
            self._flusher.kill(block=False)
        self.flush()
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
