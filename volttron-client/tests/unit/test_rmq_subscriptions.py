"""A peer's subscriptions as broker bindings (reference §2.6, §6.3)."""

from __future__ import annotations

import pytest

from volttron.client.messagebus.rmq_subscriptions import SubscriptionRequestError, SubscriptionTable


def table() -> SubscriptionTable:
    return SubscriptionTable("inst")


def test_subscribing_adds_a_binding_once() -> None:
    subs = table()
    change = subs.subscribe({"prefix": "devices/a", "bus": "", "all_platforms": False})
    assert change.add == {"__pubsub__.inst.devices.a.#"} and not change.remove
    again = subs.subscribe({"prefix": ["devices/a", "devices/a/"], "bus": ""})
    assert not again  # both prefixes need the binding that exists
    assert subs.bindings() == {"__pubsub__.inst.devices.a.#"}


def test_a_binding_goes_with_the_last_prefix_that_needs_it() -> None:
    subs = table()
    subs.subscribe({"prefix": ["devices/a", "devices/a/"]})
    assert not subs.unsubscribe({"internal": {"prefix": ["devices/a"], "bus": ""}})
    change = subs.unsubscribe({"prefix": ["devices/a/"], "bus": ""})  # the bare form is internal
    assert change.remove == {"__pubsub__.inst.devices.a.#"} and subs.bindings() == set()


def test_unsubscribe_everything_and_all_platforms() -> None:
    subs = table()
    subs.subscribe({"prefix": "x", "all_platforms": True})
    subs.subscribe({"prefix": "y"})
    change = subs.unsubscribe({"all": {"prefix": None, "bus": ""}})
    assert change.remove == {"__pubsub__.*.x.#"} and subs.bindings() == {"__pubsub__.inst.y.#"}


def test_synchronize_replaces_the_whole_set() -> None:
    subs = table()
    subs.subscribe({"prefix": "old"})
    change = subs.synchronize({"subscriptions": {"internal": {"": ["new"]}, "all": {"": ["far"]}}})
    assert change.add == {"__pubsub__.inst.new.#", "__pubsub__.*.far.#"}
    assert change.remove == {"__pubsub__.inst.old.#"}


@pytest.mark.parametrize("bus,topic,expected", [
    ("", "devices/a/b", True),
    ("other", "devices/a/b", False),
    ("", "devices/ab", False),
])
def test_wants_filters_by_bus_and_word_prefix(bus: str, topic: str, expected: bool) -> None:
    subs = table()
    subs.subscribe({"prefix": "devices/a", "bus": ""})
    assert subs.wants(bus, topic) is expected


def test_listing_reports_own_subscriptions() -> None:
    subs = table()
    subs.subscribe({"prefix": ["devices/a", "alerts"]})
    assert subs.listing({"prefix": "devices"}) == [["", "devices/a", True]]
    assert subs.listing({"prefix": "devices/a/b/c", "reverse": True}) == [["", "devices/a", True]]
    assert len(subs) == 2


@pytest.mark.parametrize("body", [
    {"prefix": 3},
    {"prefix": "x", "bus": 1},
    {"internal": "nope"},
])
def test_bad_requests_say_why(body: dict) -> None:
    subs = table()
    with pytest.raises(SubscriptionRequestError):
        if "internal" in body:
            subs.unsubscribe(body)
        else:
            subs.subscribe(body)
    with pytest.raises(SubscriptionRequestError):
        subs.synchronize({"subscriptions": {"elsewhere": {}}})
