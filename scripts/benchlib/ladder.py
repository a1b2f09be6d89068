"""``scripts/bench --ladder``: where an RPC round trip's time goes, one part swapped in at a time.

(d) compares the platform with a raw pyzmq echo. This climbs from that baseline to (d) in steps,
each replacing one raw part with the platform's, all measured in alternating rounds (as (d) is) so
the steps share the host's moods:

1. the raw echo of (d): 3 frames a message, no encryption (the baseline);
2. the same with CURVE on every connection;
3. the same with request and answer in VIP's frames (the (d) diagnostic row);
4. raw VIP peers (pyzmq, blocking, JSON-RPC bodies) through a minimal VIP router: whole messages
   through the client's compiled helper, no gevent, no checks -- the least a router of the
   protocol can do in Python;
5. the same peers through the platform's router (CURVE, ZAP, every check);
6. the platform with the real agent as the echo and a raw VIP caller;
7. the platform with a raw VIP echo and the real agent as the caller;
8. the platform with agents at both ends: (d) itself.

Each line gives the p50, its multiple of step 1 and what the step added to the one before. Every
endpoint lives in a child process; every wait has a deadline and every loop a bound.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import raw
import rounds
import zmq
from common import FORK, BenchError, progress
from platform_process import BenchPlatform
from vip_workers import Peer, _connect

from volttron.utils.keys import to_z85

AGENT_ECHO, AGENT_CALLER = {6, 8}, {7, 8}
"""The steps whose echo, and whose caller, is the real agent (the others: a raw VIP peer)."""
STEPS = (
    "1. raw echo, 3 frames, plain: the (d) baseline",
    "2. the same, CURVE",
    "3. the same with VIP's frames",
    "4. raw VIP peers, a minimal VIP router (compiled whole messages)",
    "5. raw VIP peers, the platform's router",
    "6. the platform, agent echo, raw VIP caller",
    "7. the platform, raw VIP echo, agent caller",
    "8. the platform, agents at both ends: (d)",
)
Keys = tuple[bytes, bytes, bytes]
"""Z85 public key, secret key, and the router's public key."""


# -- raw VIP peers and a minimal VIP router (child processes) ------------------------------------

def _vip_dealer(ctx: zmq.Context, address: str, identity: str, keys: Keys, timeout: float) -> zmq.Socket:
    """A DEALER that has said hello and been welcomed (or raises TimeoutError)."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys
    sock.connect(address)
    sock.send_multipart([b"", b"VIP1", b"", b"hello-1", b"hello", b"hello"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100) and sock.recv_multipart()[4:6] == [b"hello", b"welcome"]:
            return sock
    raise TimeoutError(f"{identity}: no welcome within {timeout:.0f} s")


def vip_echo(address: str, identity: str, keys: Keys, ready: Any, stop: Any, timeout: float) -> None:
    """Answer every JSON-RPC request with its first parameter, as the agent's ``echo`` does."""
    ctx = zmq.Context()
    sock = _vip_dealer(ctx, address, identity, keys, timeout)
    ready.set()
    deadline = time.monotonic() + timeout + 600
    while not stop.is_set() and time.monotonic() < deadline:
        if not sock.poll(100):
            continue
        frames = sock.recv_multipart()
        if len(frames) < 6 or frames[4] != b"RPC":
            continue
        request = json.loads(frames[5])
        answer = {"jsonrpc": "2.0", "id": request["id"], "result": request["params"][0]}
        sock.send_multipart([frames[0], b"VIP1", b"", frames[3], b"RPC", json.dumps(answer).encode()])
    sock.close(0)
    ctx.term()


def vip_caller(address: str, identity: str, keys: Keys, echo: str, calls: int, out: mp.Queue,
               timeout: float) -> None:
    """Sequential JSON-RPC calls of ``echo`` as VIP messages; puts the round trips on ``out``."""
    ctx = zmq.Context()
    try:
        sock = _vip_dealer(ctx, address, identity, keys, timeout)
        sock.RCVTIMEO = int(timeout * 1000)
        samples = []
        for i in range(calls + calls // 10):  # the first tenth warms up
            ident = f"r{i:016d}"
            body = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [i], "id": ident}).encode()
            t0 = time.perf_counter()
            sock.send_multipart([echo.encode(), b"VIP1", b"", ident.encode(), b"RPC", body])
            if json.loads(sock.recv_multipart()[5])["result"] != i:
                raise AssertionError("the echo answered something else")
            if i >= calls // 10:
                samples.append(time.perf_counter() - t0)
        out.put(("samples", samples))
        sock.close(0)
    except Exception as exc:  # noqa: BLE001 - reported to the parent in one line
        out.put(("error", f"{identity}: {type(exc).__name__}: {exc}"))
    ctx.term()


def vip_router(address: str, secret: bytes, ready: Any, stop: Any, timeout: float) -> None:
    """Forward peer to peer and answer hello: nothing else, whole messages per call, no gevent."""
    from volttron.client.messagebus import zmq_frames

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.setsockopt(zmq.LINGER, 0)
    router.curve_server = True
    router.curve_secretkey = secret
    router.bind(address)
    ready.set()
    recv, send = zmq_frames.recv, zmq_frames.send
    deadline = time.monotonic() + timeout + 600
    while not stop.is_set() and time.monotonic() < deadline:
        if not router.poll(100):
            continue
        for _ in range(1000):
            frames = recv(router)
            if frames is None:
                break
            if len(frames) < 6:
                continue
            sender = frames[0]
            try:
                if frames[1]:
                    frames[0], frames[1], frames[3] = frames[1], sender, sender
                    send(router, frames)
                elif frames[5] == b"hello":
                    send(router, [sender, b"", b"VIP1", sender, frames[4], b"hello", b"welcome", b"1.0",
                                  b"router", sender])
            except zmq.ZMQError:
                pass  # a peer that left
    router.close(0)
    ctx.term()


def agent_caller(peer: Peer, echo: str, calls: int, out: mp.Queue, timeout: float) -> None:
    """The real client: sequential ``vip.rpc.call(echo, 'echo', i).get()``."""
    try:
        agent = _connect(peer)
        call, samples = agent.vip.rpc.call, []
        deadline = time.monotonic() + timeout
        for i in range(calls + calls // 10):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(samples)} calls of {calls} within {timeout:.0f} s")
            t0 = time.perf_counter()
            if call(echo, "echo", i).get(timeout=5) != i:
                raise AssertionError("the echo answered something else")
            if i >= calls // 10:
                samples.append(time.perf_counter() - t0)
        out.put(("samples", samples))
        agent.core.stop(timeout=5)
    except BaseException as exc:
        out.put(("error", f"{peer.identity}: {type(exc).__name__}: {exc}"))


def agent_echo(peer: Peer, ready: Any, stop: Any, timeout: float) -> None:
    """The real agent with an exported ``echo``."""
    from volttron.client.vip.agent import RPC, Agent

    class Echo(Agent):
        @RPC.export
        def echo(self, value: Any) -> Any:
            return value

    import gevent

    agent = _connect(peer, Echo)
    ready.set()
    deadline = time.monotonic() + timeout + 600
    while not stop.is_set() and time.monotonic() < deadline:
        gevent.sleep(0.01)
    agent.core.stop(timeout=5)


# -- orchestration ---------------------------------------------------------------------------------

def _pair(echo: tuple[Callable[..., None], tuple[Any, ...]],
          caller: tuple[Callable[..., None], tuple[Any, ...]], timeout: float) -> list[float]:
    """Start the echo (``target(*args, ready, stop, timeout)``), then the caller; its samples."""
    ready, stop, out = FORK.Event(), FORK.Event(), FORK.Queue()
    echo_process = FORK.Process(target=echo[0], args=(*echo[1], ready, stop, timeout), daemon=True)
    echo_process.start()
    caller_process = None
    try:
        if not ready.wait(timeout):
            raise BenchError("ladder: the echo was not ready in time")
        caller_process = FORK.Process(target=caller[0], args=(*caller[1], out, timeout), daemon=True)
        caller_process.start()
        kind, value = out.get(timeout=timeout + 30)
        if kind == "error":
            raise BenchError(f"ladder: {value}")
        return value
    finally:
        stop.set()
        for process in (caller_process, echo_process):
            if process is not None:
                process.join(10)
                if process.is_alive():
                    process.terminate()


class Ladder:
    """The platform and the minimal router, running while the rounds take their turns."""

    def __init__(self, root: Path, calls: int, rounds_: int, timeout: float) -> None:
        self.calls, self.timeout = calls, timeout
        self.raw_keys = raw.Curve.generate()
        self.platform = BenchPlatform(root / "platform", auth=True)
        self.keys: dict[str, Keys] = {}
        for step in (5, 6, 7, 8):  # an identity per step and round: no reconnection races
            for r in range(rounds_):
                for role in ("echo", "caller"):
                    self._authorize(f"ladder.{role}.{step}.{r}")
        self.turns = dict.fromkeys(range(1, 9), 0)
        self.minimal_address = f"ipc://@volttron-ladder-{os.getpid()}"
        self._minimal_stop = FORK.Event()
        self._minimal: mp.Process | None = None

    def _authorize(self, identity: str) -> None:
        pair = self.platform.authorize(identity)
        assert pair is not None
        self.keys[identity] = (to_z85(pair.public), to_z85(pair.secret), b"")

    def __enter__(self) -> Ladder:
        self.platform.start()
        server = to_z85(self.platform.serverkey or "")
        self.keys = {k: (p, s, server) for k, (p, s, _) in self.keys.items()}
        ready = FORK.Event()
        self._minimal = FORK.Process(target=vip_router, daemon=True, args=(
            self.minimal_address, self.raw_keys.server_secret, ready, self._minimal_stop, self.timeout * 20))
        self._minimal.start()
        if not ready.wait(self.timeout):
            raise BenchError("ladder: the minimal router did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._minimal_stop.set()
        if self._minimal is not None:
            self._minimal.join(10)
        self.platform.stop()

    def measure(self, step: int) -> rounds.Samples:
        """One round of ``step``: (no one-way samples, its round trips)."""
        calls, timeout = self.calls, self.timeout
        if step <= 3:
            curve = None if step == 1 else self.raw_keys
            return [], raw.rpc_round_trip(calls, timeout, curve, vip_shaped=step == 3)
        r = self.turns[step]
        self.turns[step] += 1
        if step == 4:
            c = self.raw_keys
            keys: Keys = (c.client_public, c.client_secret, c.server_public)
            echo_id, caller_id = f"ladder.echo.4.{r}", f"ladder.caller.4.{r}"
            return [], _pair((vip_echo, (self.minimal_address, echo_id, keys)),
                             (vip_caller, (self.minimal_address, caller_id, keys, echo_id, calls)), timeout)
        address = self.platform.address
        echo_id, caller_id = f"ladder.echo.{step}.{r}", f"ladder.caller.{step}.{r}"
        if step in AGENT_ECHO:
            echo = (agent_echo, (self._peer(echo_id),))
        else:
            echo = (vip_echo, (address, echo_id, self.keys[echo_id]))
        if step in AGENT_CALLER:
            caller = (agent_caller, (self._peer(caller_id), echo_id, calls))
        else:
            caller = (vip_caller, (address, caller_id, self.keys[caller_id], echo_id, calls))
        return [], _pair(echo, caller, timeout)

    def _peer(self, identity: str) -> Peer:
        p = self.platform
        pair = p.authorize(identity)
        assert pair is not None
        return Peer(p.address, identity, str(p.home), pair.public, pair.secret, p.serverkey)


def run(calls: int, rounds_: int, timeout: float) -> list[tuple[str, float]]:
    """Every step in ``rounds_`` alternating rounds; ``[(step, p50 in ms)]`` in step order."""
    with tempfile.TemporaryDirectory(prefix="volttron-ladder-") as tmp, \
            Ladder(Path(tmp), calls, rounds_, timeout) as ladder:
        measures = {name: (lambda n=n: ladder.measure(n)) for n, name in enumerate(STEPS, start=1)}
        pooled = rounds.alternate(rounds_, measures)
    figures = []
    for name in STEPS:
        stats = pooled[name][1]
        if stats is None or stats.count < calls * rounds_:
            raise BenchError(f"ladder: {name}: too few samples")
        figures.append((name, stats.p50_ms))
        progress(f"ladder: {name}: p50 {stats.p50_ms:.3f} ms")
    return figures


BASE_OF = {2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5, 8: 5}
"""The step each step adds to: 6 and 7 each swap one peer of step 5 for an agent, 8 both."""


def render(figures: list[tuple[str, float]]) -> str:
    """The ladder as a Markdown table."""
    base = figures[0][1]
    lines = ["| Step | RPC p50 | x step 1 | added |", "|---|---|---|---|"]
    for n, (name, p50) in enumerate(figures, start=1):
        before = BASE_OF.get(n)
        added = "-"
        if before is not None:
            added = f"{(p50 - figures[before - 1][1]) * 1000:+.0f} µs over step {before}"
        lines.append(f"| {name} | {p50:.3f} ms | {p50 / base:.2f}x | {added} |")
    return "\n".join(lines)
