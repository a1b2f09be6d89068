"""ZeroMQ links to other platforms (docs/protocol.md §3.6): one DEALER per remote platform.

The DEALER has the identity ``instance.<remote instance>.<random number>`` and connects to the
remote platform's tcp VIP address with CURVE, using *this platform's* key pair and the remote
platform's server key; the remote platform needs an auth entry for our public key. Its monitor
tells when the handshake succeeds: the link then introduces itself with ``['routing_table', 'hello',
'hello', <our instance name>]`` and the routing resends our subscriptions (the other side may have
restarted and forgotten them). libzmq reconnects by itself after the other side goes away, and ZMTP
heartbeats notice a peer that vanished without closing the connection.

``ZMQ_IMMEDIATE`` keeps messages from queueing while the link is down: a send then fails at once
(:class:`LinkDown`), so an RPC to an unreachable platform fails with a clear error instead of being
delivered minutes later or waiting for the caller's timeout.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gevent
import zmq
import zmq.green
from zmq.utils.monitor import parse_monitor_message

from volttron.server.router.routing import VIP1, Frames, VipRouter
from volttron.server.services.external.discovery import RemotePlatform, load_discovery
from volttron.server.services.external.service import ExternalRouting, LinkDown
from volttron.server.services.pubsub.service import PubSubService
from volttron.utils.keys import to_z85
from volttron.utils.throttle import LogThrottle

_log = logging.getLogger(__name__)

_WATCHED = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


@dataclass(frozen=True)
class LinkSettings:
    """Socket options of a platform link."""

    reconnect_ms: int = 200
    reconnect_max_ms: int = 2000
    """Back-off ceiling between reconnection attempts (a restarted platform is found within it)."""
    heartbeat_interval_ms: int = 2000
    heartbeat_timeout_ms: int = 6000
    hwm: int = 6000
    hello_attempts: int = 50
    """Tries (10 ms apart) to send the hello right after the handshake, while libzmq attaches the pipe."""


class ZmqPlatformLink:
    """The DEALER to one remote platform; see the module docstring."""

    def __init__(self, remote: RemotePlatform, own_instance: str, context: zmq.green.Context,
                 keys: tuple[str, str] | None, on_connected: Callable[[ZmqPlatformLink], None],
                 settings: LinkSettings | None = None) -> None:
        self.remote = remote
        self.instance_name = remote.instance_name
        # the published platform's instance.<name>.<random number>, unguessable: no other key can take the
        # routing id our link reconnects with
        self.identity = f"instance.{remote.instance_name}.{secrets.randbelow(10**18)}".encode("ascii")
        self._own = own_instance.encode("iso-8859-1")
        self._context = context
        self._keys = keys
        self._on_connected = on_connected
        self._settings = settings or LinkSettings()
        self._socket: zmq.green.Socket | None = None
        self._monitor: zmq.green.Socket | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._connected = False
        self._throttle = LogThrottle(_log, interval=30.0)
        self.connects = 0
        self.sent = 0

    @property
    def connected(self) -> bool:
        """True between a successful handshake (hello sent) and the next disconnect."""
        return self._connected

    def start(self) -> None:
        """Create the socket and connect; the handshake completes in the background."""
        s = self._settings
        sock = self._context.socket(zmq.DEALER)
        self._socket = sock
        sock.setsockopt(zmq.IDENTITY, self.identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, s.reconnect_ms)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, s.reconnect_max_ms)
        sock.setsockopt(zmq.HEARTBEAT_IVL, s.heartbeat_interval_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, s.heartbeat_timeout_ms)
        sock.setsockopt(zmq.HEARTBEAT_TTL, s.heartbeat_timeout_ms)
        sock.set_hwm(s.hwm)
        sock.setsockopt(zmq.ZAP_DOMAIN, b"vip")
        if self._keys is not None:
            public, secret = self._keys
            sock.setsockopt(zmq.CURVE_SERVERKEY, to_z85(self.remote.serverkey))
            sock.setsockopt(zmq.CURVE_PUBLICKEY, to_z85(public))
            sock.setsockopt(zmq.CURVE_SECRETKEY, to_z85(secret))
        self._monitor = sock.get_monitor_socket(_WATCHED)
        sock.connect(self.remote.vip_address)
        self._greenlets = [gevent.spawn(self._watch), gevent.spawn(self._drain)]
        _log.info("linking to platform %r at %s", self.instance_name, self.remote.vip_address)

    def send(self, frames: Frames) -> None:
        """Send one message without waiting; :class:`LinkDown` when the link is down or full."""
        if not self._connected or self._socket is None:
            raise LinkDown(f"the link to {self.instance_name!r} at {self.remote.vip_address} is down")
        self._send(frames)
        self.sent += 1

    def _send(self, frames: Frames) -> None:
        assert self._socket is not None
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            raise LinkDown(f"the link to {self.instance_name!r} cannot take more messages now") from None
        except zmq.ZMQError as exc:
            raise LinkDown(f"the link to {self.instance_name!r} failed: {exc}") from None

    # -- background ----------------------------------------------------------------------------
    def _watch(self) -> None:
        assert self._monitor is not None
        while True:
            try:
                event = parse_monitor_message(self._monitor.recv_multipart())
            except zmq.ZMQError as exc:
                _log.debug("monitor of the link to %r closed: %s", self.instance_name, exc)
                return
            kind = event["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_done()
            elif kind == zmq.EVENT_DISCONNECTED:
                if self._connected:
                    _log.info("link to platform %r lost; reconnecting", self.instance_name)
                self._connected = False
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._throttle.warning("auth", "platform %r at %s refused our key: it needs an auth entry "
                                       "for this platform's public key (vctl auth serverkey here, then "
                                       "vctl auth add --credentials <key> --user-id <this instance> there)",
                                       self.instance_name, self.remote.vip_address)
            else:
                self._throttle.warning("handshake", "handshake with platform %r at %s failed (event %s): "
                                       "is its serverkey right?", self.instance_name, self.remote.vip_address,
                                       kind)

    def _handshake_done(self) -> None:
        hello = [b"", VIP1, b"", b"", b"routing_table", b"hello", b"hello", self._own]
        for _ in range(self._settings.hello_attempts):
            try:
                self._send(hello)
                break
            except LinkDown:
                gevent.sleep(0.01)  # the handshake is reported just before libzmq attaches the pipe
        else:
            _log.warning("could not introduce ourselves to platform %r", self.instance_name)
            return
        self.connects += 1
        self._connected = True
        _log.info("linked to platform %r at %s", self.instance_name, self.remote.vip_address)
        try:
            self._on_connected(self)
        except Exception:  # the link stays up; the next change of subscriptions is sent anyway
            _log.exception("error after linking to %r", self.instance_name)

    def _drain(self) -> None:
        assert self._socket is not None
        while True:
            try:
                frames = self._socket.recv_multipart()
            except zmq.ZMQError as exc:
                _log.debug("link to %r closed: %s", self.instance_name, exc)
                return
            # [sender, VIP1, user, msg_id, subsystem, args...]: peer-list news and errors only
            if len(frames) > 6 and frames[4] == b"error":
                self._throttle.warning(f"error:{frames[7]!r}", "platform %r reported error %s (%s) for %r",
                                       self.instance_name, frames[5].decode("ascii", "replace"),
                                       frames[6].decode("iso-8859-1"), frames[7:9])

    def stop(self) -> None:
        """Close the link."""
        self._connected = False
        for greenlet in self._greenlets:
            greenlet.kill(block=True, timeout=2)
        self._greenlets.clear()
        if self._socket is not None:
            try:
                self._socket.disable_monitor()
            except zmq.ZMQError:
                _log.debug("monitor of the link to %r already gone", self.instance_name)
        if self._monitor is not None:
            self._monitor.close(0)
            self._monitor = None
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None


def start_external_routing(router: VipRouter, pubsub: PubSubService, *, home: Path, instance_name: str,
                           context: zmq.green.Context, keys: tuple[str, str] | None,
                           settings: LinkSettings | None = None,
                           user_of: Callable[[bytes], str | None] | None = None) -> ExternalRouting:
    """Serve multi-platform routing on ``router`` and link to every platform of the discovery file.

    ``user_of`` tells the user id a peer's key authenticated as: a platform's hello is believed only
    from a key whose user id is that platform's name. Raises :class:`~.discovery.DiscoveryError` when
    the file is unusable.
    """
    remotes = load_discovery(home, instance_name)
    routing = ExternalRouting(router, pubsub, instance_name, user_of=user_of)
    routing.attach()
    for remote in remotes:
        link = ZmqPlatformLink(remote, instance_name, context, keys, routing.link_connected, settings)
        routing.add_link(link)
        link.start()
    return routing
