"""The router hands freed memory back to the system once connections have come and gone (router/heap.py).

The unit tests drive :class:`HeapReleaser` with a fake clock and a fake trim; the integration test
opens and closes real connections to a router in this process and waits for the release. The RSS
itself is measured by ``scripts/bench`` ((e)), not here: how much the allocator hands back depends
on the host's C library and on what else the process did.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq.green as zmq

from volttron.client.testing.waiting import wait_until
from volttron.server.router.heap import HeapReleaser, malloc_trim
from volttron.server.router.routing import VipRouter
from volttron.server.router.zmq_router import RouterSettings, ZmqRouterSocket, make_context


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def releaser(after: int = 3, settle: float = 2.0,
             longest: float = 60.0) -> tuple[HeapReleaser, Clock, list[int]]:
    clock, trims = Clock(), []
    heap = HeapReleaser(after, settle, longest, trim=lambda pad: trims.append(pad) or 1, clock=clock)
    return heap, clock, trims


def test_nothing_is_trimmed_before_enough_connections_changed() -> None:
    heap, clock, trims = releaser(after=3)
    heap.changed()
    heap.changed()
    clock.now += 100
    assert not heap.maybe_release() and trims == []


def test_a_burst_is_trimmed_once_it_has_settled_and_only_once() -> None:
    heap, clock, trims = releaser(after=3, settle=2.0)
    for _ in range(5):
        heap.changed()
        clock.now += 0.5
    assert not heap.maybe_release(), "0.5 s after the last change: the burst may go on"
    clock.now += 1.5
    assert heap.maybe_release() and trims == [0]
    clock.now += 10
    assert not heap.maybe_release(), "nothing changed since: nothing to hand back"
    assert heap.releases == 1


def test_changes_that_never_settle_are_trimmed_after_the_longest_wait() -> None:
    heap, clock, trims = releaser(after=3, settle=2.0, longest=10.0)
    for _ in range(20):  # a change every 0.5 s from 0 to 9.5 s, then one at 10 s
        heap.changed()
        assert not heap.maybe_release()
        clock.now += 0.5
    heap.changed()
    assert heap.maybe_release() and trims == [0]


def churn(every: float, seconds: float) -> int:
    """Trims when a client opens/closes 100 connections every ``every`` s; the loop looks every 0.1 s."""
    heap, clock, trims = releaser(after=100, settle=2.0, longest=60.0)
    next_burst = clock.now
    for _ in range(round(seconds / 0.1)):
        if clock.now >= next_burst:
            for _ in range(100):
                heap.changed()
            next_burst += every
        heap.maybe_release()
        clock.now += 0.1
    return len(trims)


def test_a_client_churning_connections_cannot_make_it_trim_more_often_than_the_bounds_allow() -> None:
    # bursts faster than the settle time never settle: one trim per longest wait (60 s)
    assert churn(every=0.5, seconds=120) <= 2
    # bursts with just enough quiet between them: one trim per burst, never more than one per 2 s
    trims = churn(every=2.3, seconds=120)
    assert 0 < trims <= 120 / 2.0


def test_bad_settings_are_refused() -> None:
    for args in ((0, 1.0, 2.0), (1, -1.0, 2.0), (1, 3.0, 2.0)):
        with pytest.raises(ValueError):
            HeapReleaser(*args, trim=lambda pad: 0)


def test_the_c_library_trim_is_found_and_runs() -> None:
    trim = malloc_trim()
    if trim is None:
        pytest.skip(reason="this C library has no malloc_trim (not glibc)")
    assert trim(0) in (0, 1)


@pytest.mark.integration
def test_the_router_releases_after_connections_come_and_go(tmp_path: Path) -> None:
    if malloc_trim() is None:
        pytest.skip(reason="this C library has no malloc_trim (not glibc)")
    address = f"ipc://@{tmp_path}/heap.socket"
    context = make_context()
    socket = ZmqRouterSocket(RouterSettings(addresses=(address,), heap_release_after=20,
                                            heap_release_settle=0.2, heap_release_longest=5.0),
                             context, b"rid")
    socket.bind()
    router = VipRouter(b"rid", socket.send)
    router.add_drop_listener(socket.forget)
    socket.serve(router.route, router.drop_peer)
    peers = []
    try:
        for n in range(15):  # 15 connections opened and closed: 30 changes
            peer = context.socket(zmq.DEALER)
            peer.setsockopt(zmq.IDENTITY, f"peer{n}".encode())
            peer.setsockopt(zmq.LINGER, 0)
            peer.connect(address)
            peer.send_multipart([b"", b"VIP1", b"", b"1", b"hello", b"hello"])
            peers.append(peer)
        for peer in peers:
            assert peer.poll(5000), "no welcome"
        assert socket.statistics()["heap_releases"] == 0
        for peer in peers:
            peer.close(0)
        # every peer gone: most as disconnects, some dropped as unreachable by the peerlist
        # announcements of the others' departures (their own disconnect is then not counted)
        wait_until(lambda: not router.peers and socket.statistics()["connections"] == 0, timeout=10)
        wait_until(lambda: socket.statistics()["heap_releases"] == 1, timeout=10)
    finally:
        for peer in peers:
            peer.close(0)
        socket.close()
