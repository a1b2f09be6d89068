"""Hardening battery: a soak of a real platform (``slow`` only; never run by default).

Ten raw VIP peers publish 1,000 messages/s in total (each peer subscribes to its own topic, so each
publish is delivered once) while one of them calls 50 RPC/s on another, which answers them, for
``VOLTTRON_SOAK_SECONDS`` (default 600). Promise: no error reply, every publish acknowledged and
delivered, every RPC answered, and the platform's RSS grows by under 5 % after the warm-up (the
first fifth of the run, at least 10 s). Run it with ``-m slow`` or ``VOLTTRON_TEST_SLOW=1``.
Figures are reported as in test_hardening_network.py (terminal, ``record_property``, JSON file).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import psutil
import pytest
import zmq

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PEERS = 10
PUBLISH_RATE = 1000.0
RPC_RATE = 50.0


def test_soak_publishes_and_rpc_without_errors_or_memory_growth(request, slow_enabled, report) -> None:
    if not slow_enabled:
        pytest.skip(reason="soak: run with -m slow or VOLTTRON_TEST_SLOW=1 "
                           "(VOLTTRON_SOAK_SECONDS sets the length)")
    duration = float(os.environ.get("VOLTTRON_SOAK_SECONDS", "600"))
    warmup = max(10.0, duration / 5)
    platform = request.getfixturevalue("running_platform")  # started only when the soak runs
    server = psutil.Process(platform.process.pid)
    peers = [platform.client(f"soak{i}", hwm=0) for i in range(PEERS)]
    for i, peer in enumerate(peers):
        peer.hello()
        request_body = json.dumps({"prefix": f"soak/{i}/", "bus": "", "all_platforms": False})
        assert peer.request("", "pubsub", "subscribe", request_body).args[0] == b"request_response"
    caller, responder = peers[0], peers[1]
    by_socket = {peer.socket: peer for peer in peers}
    poller = zmq.Poller()
    for peer in peers:
        poller.register(peer.socket, zmq.POLLIN)
    body = json.dumps({"bus": "", "headers": {}, "message": {"value": 42.0, "units": "F"}})
    published = acked = delivered = rpc_sent = rpc_answered = 0
    errors: list[list[bytes]] = []
    rpc_pending: dict[bytes, float] = {}
    rpc_worst = 0.0
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    next_sample = started
    hard_deadline = started + duration + 120

    def handle(peer: Any, frames: list[bytes]) -> None:
        nonlocal acked, delivered, rpc_answered, rpc_worst
        subsystem, args = frames[4], frames[5:]
        if subsystem == b"pubsub" and args[:1] == [b"request_response"]:
            acked += 1
        elif subsystem == b"pubsub" and args[:1] == [b"publish"]:
            delivered += 1
        elif subsystem == b"RPC" and peer is responder:
            request_json = json.loads(args[0])
            reply = {"jsonrpc": "2.0", "id": request_json["id"], "result": request_json["params"][0]}
            peer.send(frames[0], "RPC", json.dumps(reply), msg_id=frames[3])
        elif subsystem == b"RPC" and peer is caller:
            answer = json.loads(args[0])
            sent_at = rpc_pending.pop(frames[3], None)
            if sent_at is None or "result" not in answer:
                errors.append(frames)
                return
            rpc_worst = max(rpc_worst, time.monotonic() - sent_at)
            rpc_answered += 1
        elif subsystem == b"peerlist":
            return
        else:
            errors.append(frames)

    while True:
        now = time.monotonic()
        elapsed = now - started
        if elapsed >= duration:
            break
        assert now < hard_deadline
        while published < int(elapsed * PUBLISH_RATE):
            peer = peers[published % PEERS]
            topic = f"soak/{(published + 1) % PEERS}/value"
            peer.send("", "pubsub", "publish", topic, body, msg_id=f"p{published}")
            published += 1
        while rpc_sent < int(elapsed * RPC_RATE):
            msg_id = f"r{rpc_sent}".encode()
            call = {"jsonrpc": "2.0", "id": msg_id.decode(), "method": "echo", "params": [rpc_sent]}
            rpc_pending[msg_id] = time.monotonic()
            caller.send("soak1", "RPC", json.dumps(call), msg_id=msg_id)
            rpc_sent += 1
        for sock, _ in poller.poll(1):
            peer = by_socket[sock]
            for _ in range(1000):
                try:
                    handle(peer, sock.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
        late = [m for m, t in rpc_pending.items() if now - t > 5.0]
        assert not late, f"RPC calls unanswered after 5 s: {late[:5]}"
        assert not errors, f"error replies: {errors[:3]}"
        if now >= next_sample:
            samples.append((elapsed, server.memory_info().rss))
            next_sample = now + 5.0
    # let the last messages arrive
    deadline = time.monotonic() + 30
    while (acked < published or delivered < published or rpc_pending) and time.monotonic() < deadline:
        for sock, _ in poller.poll(50):
            for _ in range(1000):
                try:
                    handle(by_socket[sock], sock.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
    samples.append((time.monotonic() - started, server.memory_info().rss))
    base = next(rss for t, rss in samples if t >= warmup)
    growth = (samples[-1][1] - base) / base * 100
    report("seconds", round(duration))
    report("published", published)
    report("delivered", delivered)
    report("publish_acks", acked)
    report("rpc_calls", rpc_sent)
    report("rpc_answered", rpc_answered)
    report("rpc_worst_s", round(rpc_worst, 3))
    report("errors", len(errors))
    report("rss_after_warmup_mb", round(base / 2**20, 1))
    report("rss_end_mb", round(samples[-1][1] / 2**20, 1))
    report("rss_growth_after_warmup_pct", round(growth, 2))
    assert (acked, delivered, rpc_answered) == (published, published, rpc_sent)
    assert not errors and platform.running()
    assert "Traceback" not in platform.log_text()
    assert growth < 5.0, f"RSS grew {growth:.1f} % after the warm-up"
