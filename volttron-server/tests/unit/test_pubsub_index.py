"""The pub/sub index: prefix semantics, and a matching cost independent of unrelated subscriptions."""

from __future__ import annotations

import pytest

from volttron.server.services.pubsub.index import ALL_PLATFORMS, INTERNAL, PubSubIndex, SubscriptionLimitError


def test_plain_string_prefix_matching() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["devices"])
    index.subscribe(b"b", ["devices/"])
    index.subscribe(b"c", [""])
    index.subscribe(b"d", ["devices/x/y"])
    assert index.match("devices/x") == {b"a", b"b", b"c"}
    assert index.match("devicesX") == {b"a", b"c"}  # not segment based, as the original
    assert index.match("other") == {b"c"}
    assert index.match("devices/x/y/z") == {b"a", b"b", b"c", b"d"}
    assert index.match("") == {b"c"}


def test_one_copy_per_subscriber_however_many_prefixes_match() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["", "d", "de", "devices", "devices/x"])
    index.subscribe(b"a", ["devices"], platform=ALL_PLATFORMS)
    assert index.match("devices/x") == {b"a"}


def test_buses_are_separate_namespaces() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["t"], bus="")
    index.subscribe(b"b", ["t"], bus="other")
    assert index.match("topic") == {b"a"}
    assert index.match("topic", bus="other") == {b"b"}
    assert index.match("topic", bus="none") == set()


def test_both_platform_buckets_deliver_locally_and_unsubscribe_separately() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["x"], platform=INTERNAL)
    index.subscribe(b"a", ["x"], platform=ALL_PLATFORMS)
    assert index.unsubscribe(b"a", ["x"], platform=INTERNAL) == 1
    assert index.match("xy") == {b"a"}
    assert index.unsubscribe(b"a", ["x"], platform=ALL_PLATFORMS) == 1
    assert index.match("xy") == set()
    assert index.statistics()["subscriptions"] == 0


def test_unsubscribe_none_means_all_prefixes_and_bus_none_all_buses() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["x", "y"], bus="")
    index.subscribe(b"a", ["z"], bus="b2")
    index.subscribe(b"b", ["x"])
    assert index.unsubscribe(b"a", None, bus="") == 2
    assert index.match("z", bus="b2") == {b"a"}
    assert index.unsubscribe(b"a", None, bus=None) == 1
    assert index.match("x") == {b"b"}
    assert index.unsubscribe(b"nobody", None) == 0


def test_drop_peer_removes_everything_and_unused_lengths() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["aaaa", "bb"], bus="")
    index.subscribe(b"a", ["c"], bus="x", platform=ALL_PLATFORMS)
    index.subscribe(b"b", ["bb"])
    assert index.drop_peer(b"a") == 3
    assert index.match("aaaa") == set()
    assert index.match("bb") == {b"b"}
    # only length 2 is left in use: one probe per match
    assert index.statistics() == {"subscribers": 1, "subscriptions": 1, "buses": 1, "probes": 2, "refused": 0}


def test_replace_makes_the_set_exact() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["old"])
    index.replace(b"a", {INTERNAL: {"": ["new"]}, ALL_PLATFORMS: {"b": ["n"]}})
    assert index.match("old") == set()
    assert index.match("new") == {b"a"}
    assert sorted(index.subscriptions_of(b"a")) == [(ALL_PLATFORMS, "b", "n"), (INTERNAL, "", "new")]
    with pytest.raises(ValueError):
        index.replace(b"a", {"elsewhere": {"": ["x"]}})


def test_listing() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["devices/a", "devices/b", "other"])
    index.subscribe(b"b", ["devices/c"])
    index.subscribe(b"a", ["devices/z"], bus="bus2")
    assert sorted(index.listing(b"a", "devices")) == [("", "devices/a", True), ("", "devices/b", True)]
    assert ("", "devices/c", False) in index.listing(b"a", "devices", subscribed=False)
    assert index.listing(b"a", "devices/a/more", reverse=True) == [("", "devices/a", True)]
    assert index.listing(b"a", "devices", bus=None) == [("", "devices/a", True), ("", "devices/b", True),
                                                         ("bus2", "devices/z", True)]
    assert index.listing(b"a", "", bus="missing") == []


def test_match_cost_does_not_grow_with_unrelated_subscriptions() -> None:
    """10,000 unrelated subscriptions (of 40 different lengths) add no prefix probes to a publish."""
    index = PubSubIndex()
    index.subscribe(b"listener", ["devices/building1"])
    topic = "devices/building1/floor2/ahu3/all"
    index.probes = 0
    index.match(topic)
    baseline = index.probes
    for i in range(10_000):
        index.subscribe(f"peer{i % 50}".encode(), [f"unrelated/{i:05d}/" + "x" * (i % 40)])
    index.probes = 0
    found = index.match(topic)
    assert found == {b"listener"}
    # One probe per prefix length in use that fits in the topic: bounded by len(topic) whatever the
    # number of subscriptions (a scan of all subscriptions would make 10,001 comparisons).
    assert index.probes <= len(topic) + 1
    assert index.probes < 50, index.probes
    assert baseline == 1


def test_subscriptions_per_peer_are_limited_all_or_nothing() -> None:
    index = PubSubIndex(max_per_peer=3, max_prefix_chars=10)
    index.subscribe(b"a", ["x", "y"])
    index.subscribe(b"a", ["x", "y"], bus="")  # held already: costs nothing
    with pytest.raises(SubscriptionLimitError, match="at most 3 per peer"):
        index.subscribe(b"a", ["z", "w"], platform=ALL_PLATFORMS)  # both buckets count together
    assert index.match("w") == set() and index.match("z") == set()  # nothing of the refused request
    index.subscribe(b"b", ["x", "y", "z"])  # another peer has its own allowance
    with pytest.raises(SubscriptionLimitError, match="characters"):
        index.subscribe(b"a", ["0123456789"])
    with pytest.raises(SubscriptionLimitError):
        index.replace(b"a", {INTERNAL: {"": ["p", "q", "r", "s"]}})
    assert sorted(p for _, _, p in index.subscriptions_of(b"a")) == ["x", "y"]  # replace refused whole
    index.unsubscribe(b"a", ["x"])
    index.subscribe(b"a", ["z", "w"])  # room again after an unsubscribe
    assert index.statistics()["refused"] == 3


def test_detached_removal_keeps_what_the_peer_took_again() -> None:
    index = PubSubIndex()
    index.subscribe(b"a", ["one", "two", "three"])
    keys = index.detach_peer(b"a")
    assert len(keys) == 3 and index.statistics()["subscribers"] == 0
    index.subscribe(b"a", ["two"])  # the peer came back before the removal finished
    index.remove_detached(b"a", keys[:1])
    index.remove_detached(b"a", keys[1:])
    assert index.match("one") == set() and index.match("three") == set()
    assert index.match("two") == {b"a"}
    assert list(index.subscriptions_of(b"a")) == [(INTERNAL, "", "two")]
