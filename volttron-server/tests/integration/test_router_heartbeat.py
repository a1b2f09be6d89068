"""ZMTP heartbeats turn a peer that stops answering (no close, no FIN) into a prompt drop.

The router runs in the test process (gevent, zmq.green) with short heartbeat settings; the peer is a
subprocess that is frozen with SIGSTOP, so its socket stays open but nothing answers.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gevent
import pytest
import zmq.green as zmq

from volttron.server.router.routing import VipRouter
from volttron.server.router.zmq_router import RouterSettings, ZmqRouterSocket, make_context

pytestmark = pytest.mark.integration


def recv_until(sock, predicate, timeout: float) -> list[bytes]:
    with gevent.Timeout(timeout, AssertionError(f"nothing matching within {timeout} s")):
        while True:
            frames = sock.recv_multipart()
            if predicate(frames):
                return frames


def test_frozen_peer_is_dropped_by_heartbeat_timeout(tmp_path: Path) -> None:
    address = f"ipc://@{tmp_path}/hb.socket"
    context = make_context()
    socket = ZmqRouterSocket(RouterSettings(addresses=(address,), heartbeat_interval_ms=200,
                                            heartbeat_timeout_ms=800), context, b"rid")
    socket.bind()
    router = VipRouter(b"rid", socket.send)
    router.add_drop_listener(socket.forget)
    socket.serve(router.route, router.drop_peer)
    observer = context.socket(zmq.DEALER)
    observer.setsockopt(zmq.IDENTITY, b"observer")
    observer.setsockopt(zmq.LINGER, 0)
    observer.connect(address)
    script = textwrap.dedent(f"""
        import sys, zmq
        s = zmq.Context().socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, b"frozen")
        s.connect({address!r})
        s.send_multipart([b"", b"VIP1", b"", b"1", b"hello", b"hello"])
        assert s.poll(10000)
        print("ready", flush=True)
        sys.stdin.read()  # holds its connection open until the test closes this pipe or kills it
    """)
    victim = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        observer.send_multipart([b"", b"VIP1", b"", b"h", b"hello", b"hello"])
        recv_until(observer, lambda f: f[3] == b"h", 5)
        with gevent.Timeout(10):
            line = gevent.get_hub().threadpool.apply(victim.stdout.readline)
        assert line.strip() == b"ready"
        recv_until(observer, lambda f: f[4:7] == [b"peerlist", b"add", b"frozen"], 5)
        victim.send_signal(signal.SIGSTOP)
        start = time.monotonic()
        recv_until(observer, lambda f: f[4:7] == [b"peerlist", b"drop", b"frozen"], 5)
        assert time.monotonic() - start < 3
        assert socket.statistics()["disconnects"] == 1
    finally:
        victim.kill()
        victim.wait(10)
        observer.close(0)
        socket.close()
