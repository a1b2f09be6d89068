"""The router's bounds without a socket: byte accounts, connection lifetimes, and their options."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from volttron.server.options import OptionsError, parse_options
from volttron.server.router.connections import ConnectionTracker, send_queue, shut_down
from volttron.server.router.queue_budget import Drain, QueueBudget


class Looks:
    """What the budget sees of each peer's connection, set by the test."""

    def __init__(self) -> None:
        self.state: dict[bytes, Drain] = {}
        self.asked = 0

    def __call__(self, peer: bytes) -> Drain:
        self.asked += 1
        return self.state.get(peer, Drain.STUCK)


def test_a_peer_that_does_not_read_gets_its_bound_and_no_more() -> None:
    looks = Looks()
    now = [0.0]
    budget = QueueBudget(per_peer=100, total=1000, overflow_timeout=5, drained=looks, clock=lambda: now[0])
    assert all(budget.admit(b"a", 10) for _ in range(10))
    assert looks.asked == 0  # under the bound nobody looks: the hot path is two dict operations
    assert not budget.admit(b"a", 10)
    assert budget.dropped[b"a"] == 1 and not budget.overdue(b"a")
    now[0] = 5.0
    assert not budget.admit(b"a", 1) and budget.overdue(b"a")
    assert budget.admit(b"b", 50)  # others are not affected
    looks.state[b"a"] = Drain.EMPTY  # it read everything: a fresh account
    assert budget.admit(b"a", 100) and not budget.overdue(b"a")


def test_a_reader_caught_moving_gets_twice_the_bound() -> None:
    looks = Looks()
    budget = QueueBudget(per_peer=100, total=1000, overflow_timeout=5, drained=looks)
    looks.state[b"a"] = Drain.MOVING
    assert all(budget.admit(b"a", 10) for _ in range(20))
    assert not budget.admit(b"a", 10)


def test_the_total_bound_holds_across_peers_and_stale_accounts_are_refreshed() -> None:
    looks = Looks()
    budget = QueueBudget(per_peer=100, total=150, overflow_timeout=5, drained=looks)
    assert budget.admit(b"a", 100) and budget.admit(b"b", 50)
    assert not budget.admit(b"c", 10)  # nobody drained: the total is full
    looks.state[b"a"] = Drain.EMPTY
    budget._refreshed_all_at = float("-inf")
    assert budget.admit(b"c", 10)  # a's account was stale
    budget.refund(b"c", 10)
    budget.forget(b"b")
    assert budget.total == 0 and budget.statistics()["queued_bytes"] == 0


def test_silent_connections_and_generations() -> None:
    tracker = ConnectionTracker()
    tracker.accepted(7, now=0.0)
    tracker.accepted(8, now=0.0)
    first = tracker.generation(7)
    tracker.seen(b"agent", 8)  # 8 spoke
    assert tracker.silent(accepted_before=1.0) == [(7, first)]
    assert tracker.silent(accepted_before=1.0) == []  # reported once
    tracker.disconnected(7)
    tracker.accepted(7, now=2.0)  # the kernel reuses the number
    assert tracker.generation(7) not in (None, first)


def test_shut_down_and_send_queue_on_a_socket_pair() -> None:
    a, b = socket.socketpair()
    try:
        queued, size = send_queue(a.fileno())
        assert queued == 0 and size > 0
        a.setblocking(False)
        try:
            for _ in range(10_000):  # b reads nothing: a's queue fills
                a.send(b"x" * 65536)
        except BlockingIOError:
            pass
        queued, size = send_queue(a.fileno())
        assert queued * 4 >= size
        assert shut_down(b.fileno())
        assert b.fileno() >= 0  # still open: whoever owns the descriptor closes it
        assert a.recv(1) == b""  # the other end sees the connection end
    finally:
        a.close()
        b.close()
    assert send_queue(10_000) is None and not shut_down(10_000)


def test_limit_options(tmp_path: Path) -> None:
    env = {"VOLTTRON_HOME": str(tmp_path)}
    (tmp_path / "config").write_text("[volttron]\nmax-subscriptions-per-peer = 50\nmax-queued-bytes = 9999\n")
    options = parse_options(["--max-queued-bytes-per-peer", "4096", "--peer-overflow-timeout", "7",
                             "--identity-claim-timeout", "3"], env=env)
    assert (options.max_subscriptions_per_peer, options.max_queued_bytes, options.max_queued_bytes_per_peer,
            options.peer_overflow_timeout, options.identity_claim_timeout) == (50, 9999, 4096, 7, 3)
    with pytest.raises(OptionsError, match="max-subscriptions-per-peer must be at least 1"):
        parse_options(["--max-subscriptions-per-peer", "0"], env=env)
