"""Ten thousand malformed messages from an authenticated peer do not disturb the platform or other peers."""

from __future__ import annotations

import random
import time

import pytest

pytestmark = pytest.mark.integration

MAX_FRAME = 64 * 1024


def _garbage(rng: random.Random, size: int | None = None) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40) if size is None else size))


def malformed_message(rng: random.Random) -> list[bytes]:
    """One bad message of a randomly chosen kind (never addressed to the observer)."""
    kind = rng.randrange(11)
    text = _garbage(rng)
    if kind == 0:  # too few frames
        return [_garbage(rng) for _ in range(rng.randint(1, 4))]
    if kind == 1:  # bad signature
        return [b"", rng.choice([b"VIP0", b"vip1", b"", _garbage(rng)]), b"", b"id", b"hello", b"hello"]
    if kind == 2:  # unknown subsystem, garbage name
        return [b"", b"VIP1", b"", b"id", text or b"x", text]
    if kind == 3:  # broken JSON in pubsub operations
        op = rng.choice([b"subscribe", b"unsubscribe", b"publish", b"list", b"synchronize"])
        return [b"", b"VIP1", b"", b"id", b"pubsub", op, b"{" + text, text]
    if kind == 4:  # unknown pubsub operation
        return [b"", b"VIP1", b"", b"id", b"pubsub", text]
    if kind == 5:  # non-Latin-1/UTF-8 garbage everywhere
        return [b"", b"VIP1", _garbage(rng), _garbage(rng), b"query", b"\xff\xfe" + text]
    if kind == 6:  # garbage recipient: the router answers 113
        return [b"nobody." + text, b"VIP1", b"", b"id", b"RPC", text]
    if kind == 7:  # router subsystems with bad arguments
        sub = rng.choice([b"peerlist", b"agentstop", b"quit", b"ping", b"hello", b"error", b"query"])
        return [b"", b"VIP1", b"", b"id", sub, *[_garbage(rng) for _ in range(rng.randint(0, 3))]]
    if kind == 8:  # protected-update forgeries
        return [b"", b"VIP1", b"", b"id", b"pubsub", rng.choice([b"auth_update", b"protected_update"]), text]
    if kind == 9:  # valid JSON of the wrong shape
        op = rng.choice([b"subscribe", b"publish", b"synchronize"])
        return [b"", b"VIP1", b"", b"id", b"pubsub", op, b"connected", b'[1, {"prefix": 5}]']
    # an empty frame list is impossible to send; use one oversized frame instead (a few of them)
    if rng.random() < 0.01:
        return [b"", b"VIP1", b"", b"id", b"pubsub", b"publish", b"t", b"x" * (MAX_FRAME + 1)]
    return [b"", b"VIP1", b"", b"id", b"ping"] + [_garbage(rng, 2000)]


def test_malformed_flood(platform_factory) -> None:
    platform = platform_factory(["--max-message-size", str(MAX_FRAME)]).start()
    observer = platform.client("observer")
    observer.hello()
    # mallory's receive queue is unbounded so the router can answer every message it sends
    mallory = platform.client("mallory", address=platform.vip_address, hwm=0)
    mallory.hello()
    rng = random.Random(20240522)
    deadline = time.monotonic() + 60
    for i in range(10_000):
        mallory.send_frames(malformed_message(rng))
        if i % 500 == 499:
            mallory.drain(0.001)  # keep its replies (errors) from piling up
            assert time.monotonic() < deadline, "flood took too long"
    # the platform is up and answers the other peer promptly, which saw no error at all
    assert platform.running()
    assert observer.request("", "ping", "ping", timeout=5).args == [b"pong"]
    # an oversized frame makes libzmq drop mallory's connection, and with it whatever mallory had
    # queued on it; its socket reconnects by itself, so a retried ping gets through
    for attempt in range(5):
        try:
            assert mallory.request("", "ping", "ping", timeout=2).args == [b"pong"]
            break
        except AssertionError:
            if attempt == 4:
                raise
    seen = observer.drain(0.3)
    assert [m.frames for m in seen if m.subsystem != b"peerlist"] == []
    assert all(m.args[0] in (b"add", b"drop") and m.args[1] == b"mallory" for m in seen)
    assert observer.request("", "query", "instance-name").args[0] == b""
    assert "Traceback" not in platform.log_text()
