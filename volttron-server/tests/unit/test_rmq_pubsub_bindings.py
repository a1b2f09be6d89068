"""The RabbitMQ router's pub/sub bindings without a broker: which keys, the bound, held requests."""

from __future__ import annotations

import json

import gevent
import pytest

from volttron.client.messagebus.base import BusError
from volttron.client.testing.waiting import wait_until
from volttron.server.router.rmq.pubsub_bindings import (
    MAX_KEY_BYTES,
    PubSubBinder,
    binding_key,
    fit,
    minimal,
    plan,
    prefix_words,
    request_prefixes,
)

INSTANCE = "inst"


@pytest.mark.parametrize("prefix,words", [
    ("", ()),
    ("devices", ()),
    ("devices/", ("devices",)),
    ("devices/cam", ("devices",)),
    ("devices/campus/", ("devices", "campus")),
    ("devices/a.b", ("devices", "a")),  # a dot is a word boundary on the broker too
    ("a//", ("a", "")),
])
def test_a_prefix_binds_its_complete_words(prefix: str, words: tuple[str, ...]) -> None:
    assert prefix_words(prefix) == words


def test_binding_keys_and_their_length() -> None:
    assert binding_key(INSTANCE, ()) == "__pubsub__.inst.#"
    assert binding_key(INSTANCE, ("devices", "campus")) == "__pubsub__.inst.devices.campus.#"
    long = tuple(f"w{n:03d}" for n in range(200))
    fitted = fit(INSTANCE, long)
    assert long[:len(fitted)] == fitted and 0 < len(fitted) < len(long)
    assert len(binding_key(INSTANCE, fitted).encode("utf-8")) <= MAX_KEY_BYTES
    assert len(binding_key(INSTANCE, long[:len(fitted) + 1]).encode("utf-8")) > MAX_KEY_BYTES


def test_keys_under_another_key_are_left_out() -> None:
    assert minimal([("a", "b"), ("a",), ("a", "c", "d"), ("b", "x"), ("b", "x")]) == {("a",), ("b", "x")}
    assert minimal([("a",), ()]) == {()}


def test_the_plan_dedupes_prefixes_and_falls_back_past_the_bound() -> None:
    wanted, overflow = plan(INSTANCE, ["devices/cam", "devices/campus/", "devices/x/", "heartbeat/"])
    assert (wanted, overflow) == ({("devices",), ("heartbeat",)}, False)
    assert plan(INSTANCE, []) == (frozenset(), False)
    many = [f"p/{n}/" for n in range(11)]
    assert plan(INSTANCE, many, limit=10) == ({()}, True)
    assert plan(INSTANCE, many * 1000 + ["p/0/x/"], limit=11)[1] is False  # many prefixes, 11 keys


def frames(sender: bytes, op: bytes, *args: bytes) -> list[bytes]:
    return [sender, b"", b"VIP1", sender, b"id", b"pubsub", op, *args]


def test_request_prefixes() -> None:
    sub = frames(b"a", b"subscribe", json.dumps({"prefix": ["x/", "y"], "bus": ""}).encode())
    assert request_prefixes(sub) == ["x/", "y"]
    assert request_prefixes(frames(b"a", b"subscribe", b'{"prefix": "z/"}')) == ["z/"]
    sync = frames(b"a", b"synchronize", b"connected",
                  json.dumps({"subscriptions": {"internal": {"": ["i/"]}, "all": {"b": ["j/"]}}}).encode())
    assert sorted(request_prefixes(sync)) == ["i/", "j/"]
    for bad in (frames(b"a", b"subscribe", b"not json"), frames(b"a", b"subscribe", b"[1]"),
                frames(b"a", b"publish", b"t", b"{}"), frames(b"a", b"subscribe")):
        assert request_prefixes(bad) == []


class FakeLink:
    """Bindings made when ``release`` is set (a broker round trip), with a count of calls."""

    def __init__(self) -> None:
        self.linked = True
        self.bound: set[str] = set()
        self.calls = 0
        self.release = gevent.event.Event()
        self.release.set()
        self.fail = False

    @property
    def pubsub_bound(self) -> frozenset[str]:
        return frozenset(self.bound)

    def set_pubsub_bindings(self, keys: frozenset[str]) -> None:
        self.calls += 1
        self.release.wait()
        if self.fail:
            raise BusError("link dropped")
        self.bound = set(keys)


class Subscriptions:
    """What the pub/sub service would hold: served requests add their prefixes."""

    def __init__(self) -> None:
        self.prefixes: list[str] = []
        self.served: list[list[bytes]] = []

    def serve(self, request: list[bytes]) -> None:
        self.served.append(request)
        self.prefixes.extend(request_prefixes(request))


@pytest.fixture
def binder():
    made: list[PubSubBinder] = []

    def make(link: FakeLink, subs: Subscriptions, limit: int = 1000) -> PubSubBinder:
        b = PubSubBinder(INSTANCE, link, lambda: list(subs.prefixes), subs.serve, limit=limit)
        b.start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def test_a_subscription_is_served_once_its_binding_is_made_and_later_requests_keep_their_order(
        binder) -> None:
    link, subs = FakeLink(), Subscriptions()
    b = binder(link, subs)
    wait_until(lambda: b.passes == 1, 5, "the first pass")
    assert link.bound == set()  # nobody subscribed: no binding at all
    link.release.clear()
    first = frames(b"z", b"subscribe", b'{"prefix": "devices/cam"}')
    then = frames(b"z", b"publish", b"devices/campus/x", b"{}")
    b.request(first)
    b.request(then)
    other = frames(b"y", b"list", b"{}")
    b.request(other)  # another peer is not held up
    assert subs.served == [other]
    link.release.set()
    wait_until(lambda: len(subs.served) == 3, 5, "the held requests")
    assert subs.served == [other, first, then]
    assert link.bound == {"__pubsub__.inst.devices.#"}
    covered = frames(b"x", b"subscribe", b'{"prefix": ["devices/a/", "devices/b"]}')
    b.request(covered)
    assert subs.served[-1] == covered  # the binding covers it already: served at once
    wider = frames(b"x", b"subscribe", b'{"prefix": "devices"}')  # binds __pubsub__.inst.#
    b.request(wider)
    assert subs.served[-1] == covered
    wait_until(lambda: subs.served[-1] == wider, 5, "the wider subscription")
    assert link.bound == {"__pubsub__.inst.#"}


def test_many_prefixes_are_few_broker_calls_and_past_the_bound_one_binding(binder, caplog) -> None:
    link, subs = FakeLink(), Subscriptions()
    b = binder(link, subs, limit=50)
    wait_until(lambda: b.passes == 1, 5, "the first pass")
    request = frames(b"z", b"subscribe", json.dumps({"prefix": [f"d/{n % 40}/x{n}" for n in range(10_000)]})
                     .encode())
    b.request(request)
    wait_until(lambda: subs.served == [request], 5, "the subscription")
    assert len(link.bound) == 40 and link.calls == 2
    more = frames(b"z", b"subscribe", json.dumps({"prefix": [f"e/{n}/" for n in range(11)]}).encode())
    b.request(more)
    wait_until(lambda: subs.served[-1] == more, 5, "the subscription past the bound")
    assert link.bound == {"__pubsub__.inst.#"} and b.fallback
    assert sum("more than 50 pub/sub bindings" in r.getMessage() for r in caplog.records) == 1


def test_a_failed_binding_releases_the_requests_and_a_dropped_peer_is_forgotten(binder) -> None:
    link, subs = FakeLink(), Subscriptions()
    b = binder(link, subs)
    wait_until(lambda: b.passes == 1, 5, "the first pass")
    link.release.clear()
    link.fail = True
    gone = frames(b"gone", b"subscribe", b'{"prefix": "g/"}')
    held = frames(b"z", b"subscribe", b'{"prefix": "h/"}')
    b.request(gone)
    b.request(held)
    b.forget(b"gone")
    link.release.set()
    wait_until(lambda: subs.served, 5, "the request served without its binding")
    assert subs.served == [held]
    link.fail = False
    b.changed()
    wait_until(lambda: link.bound == {"__pubsub__.inst.h.#"}, 5, "the binding made later")


def test_while_the_link_is_down_nothing_waits(binder) -> None:
    link, subs = FakeLink(), Subscriptions()
    link.linked = False
    b = binder(link, subs)
    request = frames(b"z", b"subscribe", b'{"prefix": "d/"}')
    b.request(request)
    assert subs.served == [request]


def test_a_peer_flooding_requests_behind_a_held_one_holds_at_most_the_bound(binder) -> None:
    """An agent that sends thousands of requests while its subscription waits for a binding gets no
    more than MAX_HELD of them queued in the router; the rest are served at once."""
    link, subs = FakeLink(), Subscriptions()
    b = binder(link, subs)
    wait_until(lambda: b.passes == 1, 5, "the first pass")
    link.release.clear()
    first = frames(b"z", b"subscribe", b'{"prefix": "devices/cam"}')
    b.request(first)
    flood = [frames(b"z", b"publish", b"t", str(n).encode()) for n in range(b.MAX_HELD + 500)]
    for request in flood:
        b.request(request)
    assert len(subs.served) == 501  # past the bound: served, not held
    assert b.statistics()["holding"] == b.MAX_HELD
    link.release.set()
    wait_until(lambda: len(subs.served) == len(flood) + 1, 5, "the held requests")
    assert b.statistics()["holding"] == 0
