"""The baseline: a raw pyzmq ROUTER forwarder in Python, no VIP, no gevent.

Peers are DEALERs with identities. A peer sends ``[recipient, payload]``; the forwarder receives
``[sender, recipient, payload]`` and sends ``[recipient, sender, payload]``. That is the least a
Python router can do per message, so the platform's router is measured against it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import zmq
from stats import LatencyStats, Throughput


def forwarder(address: str, ready: mp.Event, stop: mp.Event) -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.set_hwm(0)
    router.bind(address)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    ready.set()
    while not stop.is_set():
        if not poller.poll(100):
            continue
        while True:
            try:
                sender, recipient, *rest = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                router.send_multipart([recipient, sender, *rest])
            except zmq.ZMQError:
                pass
    router.close(0)
    ctx.term()


def _dealer(ctx: zmq.Context, address: str, identity: bytes) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.set_hwm(0)
    sock.connect(address)
    return sock


def _sink(address: str, count: int, ready: mp.Event, result: mp.Queue, deadline_s: float) -> None:
    ctx = zmq.Context()
    sock = _dealer(ctx, address, b"sink")
    sock.send_multipart([b"", b"hello"])  # makes the forwarder know us (it drops unknown recipients)
    ready.set()
    received = 0
    first = last = None
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    end = time.monotonic() + deadline_s
    while received < count and time.monotonic() < end:
        if not poller.poll(200):
            continue
        while received < count:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frames[-1] == b"ping":  # the publisher checks the path before measuring
                sock.send_multipart([frames[0], b"pong"])
                continue
            now = time.perf_counter()
            first = first or now
            last = now
            received += 1
    result.put((received, first, last))
    sock.close(0)
    ctx.term()


def throughput(messages: int, timeout_s: float) -> Throughput:
    """One publisher to one receiver in another process through the forwarder."""
    address = f"ipc://@volttron-bench-raw-tp-{os.getpid()}"
    ready, stop, sink_ready = mp.Event(), mp.Event(), mp.Event()
    fwd = mp.Process(target=forwarder, args=(address, ready, stop), daemon=True)
    fwd.start()
    ready.wait(10)
    result: mp.Queue = mp.Queue()
    sink = mp.Process(target=_sink, args=(address, messages, sink_ready, result, timeout_s), daemon=True)
    sink.start()
    sink_ready.wait(10)
    ctx = zmq.Context()
    pub = _dealer(ctx, address, b"pub")
    _wait_for_path(pub, b"sink", timeout_s)
    payload = b'{"bus": "", "headers": {}, "message": 42}'
    start = time.perf_counter()
    for _ in range(messages):
        pub.send_multipart([b"sink", b"devices/x", payload])
    received, first, last = result.get(timeout=timeout_s + 10)
    end = last or time.perf_counter()
    stop.set()
    sink.join(5)
    fwd.join(5)
    pub.close(0)
    ctx.term()
    return Throughput(sent=messages, received=received, seconds=end - start)


def rpc_round_trip(calls: int, timeout_s: float) -> LatencyStats:
    """Sequential request/response through the forwarder to an echo peer in another process."""
    address = f"ipc://@volttron-bench-raw-rpc-{os.getpid()}"
    ready, stop = mp.Event(), mp.Event()
    fwd = mp.Process(target=forwarder, args=(address, ready, stop), daemon=True)
    fwd.start()
    ready.wait(10)
    echo_ready = mp.Event()
    echo = mp.Process(target=_echo, args=(address, echo_ready, stop), daemon=True)
    echo.start()
    echo_ready.wait(10)
    ctx = zmq.Context()
    sock = _dealer(ctx, address, b"caller")
    _wait_for_path(sock, b"echo", timeout_s)
    sock.RCVTIMEO = int(timeout_s * 1000)
    request = b'{"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "1"}'
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        sock.send_multipart([b"echo", request])
        sock.recv_multipart()
        samples.append(time.perf_counter() - t0)
    stop.set()
    echo.join(5)
    fwd.join(5)
    sock.close(0)
    ctx.term()
    return LatencyStats.of(samples)


def _wait_for_path(sock: zmq.Socket, peer: bytes, timeout_s: float) -> None:
    """Ping ``peer`` through the forwarder until it answers (it may not be registered yet)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.send_multipart([peer, b"ping"])
        if sock.poll(100):
            sock.recv_multipart()
            while sock.poll(50):  # answers to earlier pings that were only late
                sock.recv_multipart()
            return
    raise TimeoutError(f"no path to {peer!r} through the forwarder")


def _echo(address: str, ready: mp.Event, stop: mp.Event) -> None:
    ctx = zmq.Context()
    sock = _dealer(ctx, address, b"echo")
    sock.send_multipart([b"", b"hello"])
    ready.set()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(100):
            continue
        sender, payload = sock.recv_multipart()
        if sender:
            sock.send_multipart([sender, payload])
    sock.close(0)
    ctx.term()
