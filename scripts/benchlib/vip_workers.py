"""Benchmark workers that use the real client (``build_agent``, ``vip.pubsub``, ``vip.rpc``).

Each worker runs in its own process (forked by :mod:`main`); gevent and the client are imported
inside the worker, so the orchestrating process never owns a hub or a ZeroMQ context. Workers
report on one ``multiprocessing`` queue as tuples ``(kind, identity, ...)`` (``"ready"`` once
connected and subscribed, ``"error"`` with a one-line reason) and are coordinated with events
that they poll cooperatively (never a blocking wait that would freeze their agent). Every loop is
bounded in count and in time.

Clocks: ``time.perf_counter()`` is CLOCK_MONOTONIC on Linux, one clock for every process on the
host, so a time stamped in one process can be subtracted from one read in another.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

THROUGHPUT_TOPIC = "bench/tp"
PING_TOPIC = "bench/lat/ping"
PONG_TOPIC = "bench/lat/pong"
ECHO_IDENTITY = "bench.echo"


@dataclass(frozen=True)
class Peer:
    """How one worker connects: address, identity and (with authentication) its keys.

    ``message_bus`` ``"rmq"``: ``address`` is the broker's ``amqp://`` URL of the platform's vhost and
    instance; the broker password is derived from the keys.
    """

    address: str
    identity: str
    home: str
    publickey: str | None = None
    secretkey: str | None = None
    serverkey: str | None = None
    message_bus: str = "zmq"


def _connect(peer: Peer, agent_class: Any = None) -> Any:
    from volttron.client.runner import build_agent
    from volttron.client.vip.agent import Agent

    return build_agent(address=peer.address, identity=peer.identity, publickey=peer.publickey,
                       secretkey=peer.secretkey, serverkey=peer.serverkey, volttron_home=peer.home,
                       timeout=15, agent_class=agent_class or Agent, message_bus=peer.message_bus)


def _wait_event(event: Any, timeout: float) -> bool:
    """Wait for a multiprocessing event without blocking the gevent hub."""
    import gevent

    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() >= deadline:
            return False
        gevent.sleep(0.005)
    return True


def _used_since(before: tuple[float, float]) -> tuple[float, float]:
    from stats import cpu_by_thread

    after = cpu_by_thread()
    return after[0] - before[0], after[1] - before[1]


def _fail(out: mp.Queue, name: str, exc: BaseException) -> None:
    out.put(("error", name, f"{type(exc).__name__}: {exc}"))


# -- (a), (b): throughput ---------------------------------------------------------------------------

def subscriber(peer: Peer, expected: int, published: Any, out: mp.Queue, timeout: float,
               quiet: float = 1.0) -> None:
    """Count deliveries on :data:`THROUGHPUT_TOPIC` until ``expected`` arrived, or the platform went quiet.

    "Quiet": the publisher has had every publish acknowledged (``published`` is set, so the router
    has sent or dropped every delivery) and nothing arrived for ``quiet`` seconds.
    """
    import gevent

    try:
        agent = _connect(peer)
        state = {"count": 0, "first": 0.0, "last": 0.0}

        def on_message(peer_: str, sender: str, bus: str, topic: str, headers: dict, message: Any) -> None:
            now = time.perf_counter()
            if not state["count"]:
                state["first"] = now
            state["count"] += 1
            state["last"] = now

        agent.vip.pubsub.subscribe("pubsub", THROUGHPUT_TOPIC, on_message).get(timeout=10)
        cpu = _used_since((0.0, 0.0))
        out.put(("ready", peer.identity))
        deadline = time.monotonic() + timeout
        while state["count"] < expected and time.monotonic() < deadline:
            if published.is_set() and time.perf_counter() - max(state["last"], 0.0) > quiet:
                break
            gevent.sleep(0.01)
        out.put(("sub", peer.identity, state["count"], state["first"], state["last"], _used_since(cpu)))
        agent.core.stop(timeout=5)
    except BaseException as exc:
        _fail(out, peer.identity, exc)


def publisher(peer: Peer, messages: int, subscribers: int, go: Any, published: Any, out: mp.Queue,
              timeout: float, quiet: float = 2.0) -> None:
    """Publish ``messages`` small messages back to back, then wait for the acknowledgements.

    Reports how many acknowledgements never came (the router drops a reply to a peer whose queue is
    full rather than block) and how many said fewer than ``subscribers`` subscribers. It stops
    waiting once every publish is acknowledged, or none more arrived for ``quiet`` seconds.
    """
    import gevent

    try:
        agent = _connect(peer)
        out.put(("ready", peer.identity))
        if not _wait_event(go, timeout):
            raise TimeoutError("never told to start")
        cpu = _used_since((0.0, 0.0))
        publish = agent.vip.pubsub.publish
        acks = [0]

        def count(_result: Any) -> None:
            acks[0] += 1

        start = time.perf_counter()
        pending = [publish("pubsub", THROUGHPUT_TOPIC, message={"n": i}) for i in range(messages)]
        sent = time.perf_counter()
        for p in pending:
            p.rawlink(count)
        deadline = time.monotonic() + timeout
        done, progress_at = 0, time.monotonic()
        while done < messages and time.monotonic() < deadline and time.monotonic() - progress_at < quiet:
            gevent.sleep(0.01)
            if acks[0] > done:
                done, progress_at = acks[0], time.monotonic()
        published.set()
        acked = [p.value for p in pending if p.ready() and p.successful()]
        short = sum(1 for c in acked if c != subscribers)
        out.put(("pub", peer.identity, start, sent, messages - len(acked), short, _used_since(cpu)))
        agent.core.stop(timeout=5)
    except BaseException as exc:
        published.set()
        _fail(out, peer.identity, exc)


# -- (c), (d): latency and RPC -------------------------------------------------------------------

def responder(peer: Peer, stop: Any, out: mp.Queue, timeout: float) -> None:
    """Answer pings (publishing when each arrived) and serve the ``echo`` RPC method."""
    try:
        from volttron.client.vip.agent import RPC, Agent

        class Echo(Agent):
            @RPC.export
            def echo(self, value: Any) -> Any:
                return value

        agent = _connect(peer, Echo)

        def on_ping(peer_: str, sender: str, bus: str, topic: str, headers: dict, message: Any) -> None:
            arrived = time.perf_counter()
            agent.vip.pubsub.publish("pubsub", PONG_TOPIC, message=[message[0], arrived - message[1]])

        agent.vip.pubsub.subscribe("pubsub", PING_TOPIC, on_ping).get(timeout=10)
        out.put(("ready", peer.identity))
        _wait_event(stop, timeout)
        agent.core.stop(timeout=5)
    except BaseException as exc:
        _fail(out, peer.identity, exc)


def driver(peer: Peer, samples: int, go: Any, out: mp.Queue, timeout: float) -> None:
    """One publish at a time to the responder (one-way latency), then sequential RPC calls."""
    try:
        from gevent.event import AsyncResult

        agent = _connect(peer)
        answer: dict[str, Any] = {}

        def on_pong(peer_: str, sender: str, bus: str, topic: str, headers: dict, message: Any) -> None:
            waiter = answer.get(message[0])
            if waiter is not None:
                waiter.set(message[1])

        agent.vip.pubsub.subscribe("pubsub", PONG_TOPIC, on_pong).get(timeout=10)
        out.put(("ready", peer.identity))
        if not _wait_event(go, timeout):
            raise TimeoutError("never told to start")
        deadline = time.monotonic() + timeout
        one_way = []
        for i in range(samples + samples // 10):  # the first tenth warms up and is not counted
            if time.monotonic() > deadline:
                break
            waiter = answer[i] = AsyncResult()
            agent.vip.pubsub.publish("pubsub", PING_TOPIC, message=[i, time.perf_counter()])
            latency = waiter.get(timeout=5)
            del answer[i]
            if i >= samples // 10:
                one_way.append(latency)
        call = agent.vip.rpc.call
        round_trip = []
        for i in range(samples + samples // 10):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            if call(ECHO_IDENTITY, "echo", i).get(timeout=5) != i:
                raise AssertionError("echo answered something else")
            if i >= samples // 10:
                round_trip.append(time.perf_counter() - t0)
        out.put(("driver", peer.identity, one_way, round_trip))
        agent.core.stop(timeout=5)
    except BaseException as exc:
        _fail(out, peer.identity, exc)
