"""The baseline: a raw pyzmq ROUTER forwarder in Python, no VIP, no gevent.

Peers are DEALERs with identities. A peer sends ``[recipient, payload]``; the forwarder receives
``[sender, recipient, payload]`` and sends ``[recipient, sender, payload]``. That is the least a
Python router can do per message, so the platform's router is measured against it. With
``curve`` every connection is encrypted as the platform's are (CURVE, no ZAP handler: any client
key is accepted), which shows what encryption alone costs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass

import zmq
from stats import Throughput, cpu_by_thread


@dataclass(frozen=True)
class Curve:
    """Z85 key pairs of the forwarder and of every client."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def generate(cls) -> Curve:
        return cls(*zmq.curve_keypair(), *zmq.curve_keypair())


def forwarder(address: str, ready: mp.Event, stop: mp.Event, curve: Curve | None = None,
              acknowledge: bool = False) -> None:
    """Forward ``[sender, recipient, *rest]`` as ``[recipient, sender, *rest]``.

    With ``acknowledge`` a VIP-shaped message (8 frames and more) is also answered as the platform
    answers a publish: ``[sender, "", VIP1, sender, msg_id, "pubsub", "request_response", "1"]``.
    """
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.set_hwm(0)
    if curve is not None:
        router.curve_server = True
        router.curve_secretkey = curve.server_secret
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
                if acknowledge and len(rest) >= 6:
                    router.send_multipart([sender, b"", b"VIP1", sender, rest[2], b"pubsub",
                                           b"request_response", b"1"])
            except zmq.ZMQError:
                pass
    router.close(0)
    ctx.term()


def _dealer(ctx: zmq.Context, address: str, identity: bytes, curve: Curve | None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.set_hwm(0)
    if curve is not None:
        sock.curve_serverkey = curve.server_public
        sock.curve_publickey = curve.client_public
        sock.curve_secretkey = curve.client_secret
    sock.connect(address)
    return sock


def _sink(address: str, count: int, ready: mp.Event, result: mp.Queue, deadline_s: float,
          curve: Curve | None) -> None:
    ctx = zmq.Context()
    sock = _dealer(ctx, address, b"sink", curve)
    sock.send_multipart([b"", b"hello"])  # makes the forwarder know us (it drops unknown recipients)
    ready.set()
    cpu = cpu_by_thread()
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
    after = cpu_by_thread()
    result.put((received, first, last, (after[0] - cpu[0], after[1] - cpu[1])))
    sock.close(0)
    ctx.term()


VIP_SHAPE = [b"VIP1", b"", b"1700000000.1", b"pubsub", b"publish", b"devices/x"]
"""The frames a VIP publish carries between recipient and payload (reference §1.2, §2.6)."""


def throughput(messages: int, timeout_s: float, curve: Curve | None = None,
               vip_shaped: bool = False, acknowledged: bool = False) -> Throughput:
    """One publisher to one receiver in another process through the forwarder.

    Messages are ``[recipient, topic, payload]``, or with ``vip_shaped`` as many frames as a VIP
    publish (8 with the recipient), to show what the frame count alone costs. ``acknowledged``
    (VIP-shaped too) adds what the protocol adds to every publish: the forwarder answers each with a
    VIP acknowledgement (7 frames) and the publisher reads them, so this is the floor a Python router
    of this protocol can reach.
    """
    vip_shaped = vip_shaped or acknowledged
    address = f"ipc://@volttron-bench-raw-tp-{os.getpid()}"
    ready, stop, sink_ready = mp.Event(), mp.Event(), mp.Event()
    fwd = mp.Process(target=forwarder, args=(address, ready, stop, curve, acknowledged), daemon=True)
    fwd.start()
    ready.wait(10)
    result: mp.Queue = mp.Queue()
    sink = mp.Process(target=_sink, args=(address, messages, sink_ready, result, timeout_s, curve),
                      daemon=True)
    sink.start()
    sink_ready.wait(10)
    ctx = zmq.Context()
    pub = _dealer(ctx, address, b"pub", curve)
    _wait_for_path(pub, b"sink", timeout_s)
    payload = b'{"bus": "", "headers": {}, "message": 42}'
    fwd_before, pub_before = cpu_by_thread(fwd.pid), cpu_by_thread()
    start = time.perf_counter()
    frames = [b"sink", *VIP_SHAPE, payload] if vip_shaped else [b"sink", b"devices/x", payload]
    acks = 0
    for i in range(messages):
        pub.send_multipart(frames)
        if acknowledged and not i % 64:
            acks += _read_acks(pub, 0)
    if acknowledged:
        deadline = time.monotonic() + timeout_s
        while acks < messages and time.monotonic() < deadline:
            acks += _read_acks(pub, 200)
    received, first, last, sink_cpu = result.get(timeout=timeout_s + 10)
    end = last or time.perf_counter()
    per = 1e6 / messages
    cpu = {}
    for name, pid, before in (("forwarder", fwd.pid, fwd_before), ("publisher", None, pub_before)):
        after = cpu_by_thread(pid)
        cpu[f"{name} main thread"] = (after[0] - before[0]) * per
        cpu[f"{name} libzmq threads"] = (after[1] - before[1]) * per
    cpu["sink main thread"], cpu["sink libzmq threads"] = sink_cpu[0] * per, sink_cpu[1] * per
    stop.set()
    sink.join(5)
    fwd.join(5)
    pub.close(0)
    ctx.term()
    return Throughput(sent=messages, received=received, seconds=end - start, cpu_us=cpu,
                      unacknowledged=messages - acks if acknowledged else 0)


def _read_acks(sock: zmq.Socket, timeout_ms: int) -> int:
    """Read the acknowledgements waiting (after up to ``timeout_ms`` for the first); how many."""
    count = 0
    while sock.poll(timeout_ms if not count else 0):
        sock.recv_multipart()
        count += 1
    return count


VIP_REQUEST_HEAD = [b"echo", b"VIP1", b"", b"r0123456789abcdef", b"RPC"]
"""The frames a VIP agent sends before an RPC request's JSON (recipient, signature, user, id, subsystem)."""


def rpc_round_trip(calls: int, timeout_s: float, curve: Curve | None = None,
                   vip_shaped: bool = False) -> list[float]:
    """Sequential request/response through the forwarder to an echo peer in another process.

    With ``vip_shaped`` request and answer have the frames of a VIP RPC message (6 from a peer, 7 at
    the forwarder), as an agent's call and its answer have: what the frame count alone costs the raw
    forwarder and its peers.
    Returns each call's round trip, in seconds.
    """
    address = f"ipc://@volttron-bench-raw-rpc-{os.getpid()}"
    ready, stop = mp.Event(), mp.Event()
    fwd = mp.Process(target=forwarder, args=(address, ready, stop, curve), daemon=True)
    fwd.start()
    ready.wait(10)
    echo_ready = mp.Event()
    echo = mp.Process(target=_echo, args=(address, echo_ready, stop, curve), daemon=True)
    echo.start()
    echo_ready.wait(10)
    ctx = zmq.Context()
    sock = _dealer(ctx, address, b"caller", curve)
    _wait_for_path(sock, b"echo", timeout_s)
    sock.RCVTIMEO = int(timeout_s * 1000)
    request = b'{"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "r0123456789abcdef"}'
    frames = [*VIP_REQUEST_HEAD, request] if vip_shaped else [b"echo", request]
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        sock.send_multipart(frames)
        sock.recv_multipart()
        samples.append(time.perf_counter() - t0)
    stop.set()
    echo.join(5)
    fwd.join(5)
    sock.close(0)
    ctx.term()
    return samples


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


def _echo(address: str, ready: mp.Event, stop: mp.Event, curve: Curve | None) -> None:
    ctx = zmq.Context()
    sock = _dealer(ctx, address, b"echo", curve)
    sock.send_multipart([b"", b"hello"])
    ready.set()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(100):
            continue
        sender, *rest = sock.recv_multipart()
        if sender:  # the request's frames back: an answer as large as the request, in as many frames
            sock.send_multipart([sender, *rest])
    sock.close(0)
    ctx.term()
