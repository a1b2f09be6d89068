"""A raw pyzmq ROUTER in a thread playing the platform, for byte-exact wire tests.

With ``forward=True`` it also routes peer-to-peer messages as the platform does, which the
message-bus contract tests use.

The agent under test runs in the test's greenlets; the router runs in a plain thread with blocking
pyzmq (no gevent), so the two never share a hub. Tests read what the router received with
``router.expect(predicate)`` and make it send frames with ``router.send(frames)``.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import pytest
import zmq

from volttron.client.testing.waiting import WaitTimeout, wait_until
from volttron.client.vip.agent import Agent
from volttron.utils.keys import KeyPair, generate_keypair, to_z85

Frames = list[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RawRouter:
    """A ROUTER bound to ``tcp://127.0.0.1:<port>``; answers hello with welcome unless told not to."""

    def __init__(
        self, port: int, keys: KeyPair | None = None, auto_welcome: bool = True, forward: bool = False
    ) -> None:
        self.forward = forward
        self.port = port
        self.address = f"tcp://127.0.0.1:{port}"
        self.keys = keys
        self.auto_welcome = auto_welcome
        self.received: queue.Queue[Frames] = queue.Queue()
        self.history: list[Frames] = []
        self._outgoing: queue.Queue[Frames] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "router thread did not start"

    def _run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.LINGER, 0)
        if self.keys is not None:
            sock.curve_server = True
            sock.curve_secretkey = to_z85(self.keys.secret)
        sock.bind(self.address)
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                while not self._outgoing.empty():
                    try:
                        sock.send_multipart(self._outgoing.get_nowait())
                    except zmq.ZMQError:
                        pass  # unknown recipient: like the platform, drop it
                if not poller.poll(5):
                    continue
                frames = sock.recv_multipart()
                self.history.append(frames)
                self.received.put(frames)
                if self.forward and len(frames) >= 6 and frames[1]:
                    # route like the platform: [recipient, sender, VIP1, user = sender, id, subsystem, ...]
                    try:
                        sock.send_multipart([frames[1], frames[0], b"VIP1", frames[0], *frames[4:]])
                    except zmq.ZMQError:
                        pass
                    continue
                if self.auto_welcome and len(frames) >= 7 and frames[5] == b"hello" and frames[6] == b"hello":
                    sender = frames[0]
                    sock.send_multipart(
                        [
                            sender,
                            b"",
                            b"VIP1",
                            sender,
                            frames[4],
                            b"hello",
                            b"welcome",
                            b"1.0",
                            b"raw-router",
                            sender,
                        ]
                    )
        finally:
            sock.close(0)
            ctx.term()

    def send(self, frames: Frames) -> None:
        self._outgoing.put(list(frames))

    def expect(self, predicate: Callable[[Frames], bool], timeout: float = 5.0) -> Frames:
        """The next received message matching ``predicate`` (earlier non-matching ones are skipped)."""
        def matching() -> Frames | None:
            while True:
                try:
                    frames = self.received.get_nowait()
                except queue.Empty:
                    return None
                if predicate(frames):
                    return frames

        try:
            return wait_until(matching, timeout, "a matching message", interval=0.002)
        except WaitTimeout:
            history = self.history[-5:]
            raise AssertionError(f"no matching message within {timeout} s; history: {history}") from None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def raw_router() -> Iterator[Callable[..., RawRouter]]:
    made: list[RawRouter] = []

    def make(port: int | None = None, **kwargs: Any) -> RawRouter:
        router = RawRouter(port or free_port(), **kwargs)
        made.append(router)
        return router

    yield make
    for router in made:
        router.close()


@pytest.fixture
def run_agent() -> Iterator[Callable[..., Agent]]:
    """``run_agent(agent, wait=True)``: run it in a greenlet (stopped at teardown)."""
    running: list[Agent] = []

    def run(agent: Agent, wait: bool = True) -> Agent:
        event = gevent.event.Event()
        gevent.spawn(agent.core.run, event)
        running.append(agent)
        if wait:
            assert event.wait(10), f"agent {agent.core.identity} was not welcomed"
        return agent

    yield run
    for agent in running:
        agent.core.stop(timeout=5)


@pytest.fixture
def keys() -> dict[str, KeyPair]:
    return {"server": generate_keypair(), "agent": generate_keypair()}
