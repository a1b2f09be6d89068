"""Many connected peers, cheaply: raw VIP DEALERs (CURVE handshake + hello) in helper processes.

A real agent process costs tens of megabytes, so 1,000 of them would measure the host, not the
platform. The platform cannot tell these apart from agents: each is a connection that passed the
CURVE handshake and ZAP, said hello and got its welcome, so the router holds it as a peer (and
tells every other peer about it). Each helper keeps reading what the router sends its sockets
(peerlist notices), as a live agent would.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import zmq

from volttron.utils.keys import to_z85


@dataclass(frozen=True)
class Connector:
    """One helper's share: ``count`` identities ``<prefix>.<n>`` on ``address``."""

    address: str
    prefix: str
    count: int
    publickey: str | None = None
    secretkey: str | None = None
    serverkey: str | None = None


def hold_connections(spec: Connector, welcomed: Any, handshakes: Any, stop: Any, errors: mp.Queue,
                     timeout: float) -> None:
    """Connect ``spec.count`` DEALERs, say hello on each, count welcomes; keep reading until ``stop``.

    ``handshakes`` counts CURVE handshakes that succeeded (or connections, without CURVE), so a run
    that gets no welcome can tell a refused key from a router that does not answer.
    """
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 3 * spec.count + 64)  # a DEALER, its monitor and libzmq's end of it
    sockets = []
    monitors: set[zmq.Socket] = set()
    try:
        poller = zmq.Poller()
        for n in range(spec.count):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IDENTITY, f"{spec.prefix}.{n}".encode())
            if spec.serverkey:
                sock.curve_serverkey = to_z85(spec.serverkey)
                sock.curve_publickey = to_z85(spec.publickey)
                sock.curve_secretkey = to_z85(spec.secretkey)
            monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            poller.register(monitor, zmq.POLLIN)
            monitors.add(monitor)
            sock.connect(spec.address)
            sock.send_multipart([b"", b"VIP1", b"", b"hello.%d" % n, b"hello", b"hello"])
            poller.register(sock, zmq.POLLIN)
            sockets.append(sock)
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            for sock, _ in poller.poll(100):
                if sock in monitors:
                    while sock.poll(0):
                        sock.recv_multipart()
                        with handshakes.get_lock():
                            handshakes.value += 1
                    continue
                for _ in range(1000):  # bounded per wake-up so every socket gets its turn
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if len(frames) > 5 and frames[4] == b"hello" and frames[5] == b"welcome":
                        with welcomed.get_lock():
                            welcomed.value += 1
    except Exception as exc:
        errors.put(f"{spec.prefix}: {type(exc).__name__}: {exc}")
    finally:
        for sock in sockets:
            sock.disable_monitor()
            sock.close(0)
        for monitor in monitors:
            monitor.close(0)
        ctx.term()
