"""The subscription index of the pub/sub service (docs/protocol.md §2.6).

Matching is plain string prefix, as in the original platform: a subscription to ``devices`` matches
``devices/x`` and ``devicesX``; the empty prefix matches every topic. Buses are independent
namespaces. Subscriptions are kept per platform bucket (``internal`` for this platform only,
``all`` for every connected platform); local delivery serves both buckets.

Finding the subscribers of a topic does not look at every subscription: per bus, the index keeps a
dict from prefix to subscribers and the set of prefix lengths in use. For a topic it looks up
``topic[:n]`` for each length ``n`` in use that is not longer than the topic, so the cost is bounded
by the length of the topic, whatever the number of unrelated subscriptions.

Each peer may hold at most ``max_per_peer`` subscriptions (every bucket and bus together) whose
prefixes total at most ``max_prefix_chars`` characters; a request that would pass either is refused
whole with :class:`SubscriptionLimitError`. Forgetting a peer can be done in two steps,
:meth:`PubSubIndex.detach_peer` (at once: the peer's own record) and
:meth:`PubSubIndex.remove_detached` (in slices the caller spreads out), so that a peer with many
subscriptions never holds up the router while it goes away.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping

Peer = Hashable
"""A subscriber's identity (the router uses the identity frame's bytes)."""

INTERNAL = "internal"
ALL_PLATFORMS = "all"
PLATFORMS = (INTERNAL, ALL_PLATFORMS)
DEFAULT_MAX_PER_PEER = 10_000
DEFAULT_MAX_PREFIX_CHARS = 1_000_000

Key = tuple[str, str, str]
"""``(platform, bus, prefix)``: one subscription of one peer."""


class SubscriptionLimitError(ValueError):
    """A peer asked for more subscriptions than it may hold; the text says which limit."""


class _BusIndex:
    """Prefix -> subscribers for one bus, with both platform buckets and their union."""

    __slots__ = ("buckets", "union", "lengths", "_length_counts")

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, set[Peer]]] = {INTERNAL: {}, ALL_PLATFORMS: {}}
        self.union: dict[str, frozenset[Peer]] = {}
        self.lengths: tuple[int, ...] = ()
        self._length_counts: dict[int, int] = {}

    def refresh(self, prefix: str) -> None:
        """Recompute the union entry of ``prefix`` after a change in either bucket."""
        peers = self.buckets[INTERNAL].get(prefix, set()) | self.buckets[ALL_PLATFORMS].get(prefix, set())
        had = prefix in self.union
        if peers:
            self.union[prefix] = frozenset(peers)
            if not had:
                self._count_length(len(prefix), +1)
        elif had:
            del self.union[prefix]
            self._count_length(len(prefix), -1)

    def _count_length(self, length: int, delta: int) -> None:
        count = self._length_counts.get(length, 0) + delta
        if count:
            self._length_counts[length] = count
        else:
            self._length_counts.pop(length, None)
        self.lengths = tuple(sorted(self._length_counts))

    def empty(self) -> bool:
        return not self.union


class PubSubIndex:
    """Who subscribes to what, and who gets a published topic.

    ``probes`` counts prefix look-ups made by :meth:`match` so tests can check that matching cost does
    not grow with the number of subscriptions.
    """

    def __init__(self, max_per_peer: int = DEFAULT_MAX_PER_PEER,
                 max_prefix_chars: int = DEFAULT_MAX_PREFIX_CHARS) -> None:
        self._buses: dict[str, _BusIndex] = {}
        # peer -> {(platform, bus, prefix)}: what to remove when a peer goes away
        self._by_peer: dict[Peer, set[Key]] = {}
        self._chars: dict[Peer, int] = {}
        self.max_per_peer = max_per_peer
        self.max_prefix_chars = max_prefix_chars
        self.probes = 0
        self.refused = 0

    # -- changes -----------------------------------------------------------------------------
    def subscribe(self, peer: Peer, prefixes: Iterable[str], bus: str = "", platform: str = INTERNAL) -> None:
        """Subscribe ``peer`` to each of ``prefixes`` on ``bus`` in the ``platform`` bucket.

        All or nothing: :class:`SubscriptionLimitError` when the peer would pass a limit.
        """
        _check_platform(platform)
        mine = self._by_peer.get(peer, set())
        new = [p for p in dict.fromkeys(prefixes) if (platform, bus, p) not in mine]
        self._check_limits(peer, len(mine) + len(new), self._chars.get(peer, 0) + sum(map(len, new)))
        if not new:
            return
        index = self._buses.get(bus)
        if index is None:
            index = self._buses[bus] = _BusIndex()
        bucket = index.buckets[platform]
        mine = self._by_peer.setdefault(peer, mine)
        for prefix in new:
            bucket.setdefault(prefix, set()).add(peer)
            mine.add((platform, bus, prefix))
            index.refresh(prefix)
        self._chars[peer] = self._chars.get(peer, 0) + sum(map(len, new))

    def _check_limits(self, peer: Peer, count: int, chars: int) -> None:
        if count > self.max_per_peer:
            self.refused += 1
            raise SubscriptionLimitError(
                f"subscriptions limit reached: {count} subscriptions asked, at most {self.max_per_peer} "
                "per peer")
        if chars > self.max_prefix_chars:
            self.refused += 1
            raise SubscriptionLimitError(
                f"subscriptions limit reached: {chars} characters of prefixes asked, at most "
                f"{self.max_prefix_chars} per peer")

    def unsubscribe(self, peer: Peer, prefixes: Iterable[str] | None = None, bus: str | None = "",
                    platform: str = INTERNAL) -> int:
        """Remove subscriptions of ``peer``; returns how many were removed.

        ``prefixes`` None removes every prefix; ``bus`` None means every bus.
        """
        _check_platform(platform)
        mine = self._by_peer.get(peer)
        if not mine:
            return 0
        wanted = None if prefixes is None else set(prefixes)
        doomed = [key for key in mine
                  if key[0] == platform and (bus is None or key[1] == bus)
                  and (wanted is None or key[2] in wanted)]
        self._remove(peer, doomed)
        return len(doomed)

    def drop_peer(self, peer: Peer) -> int:
        """Remove every subscription of ``peer`` (it went away); returns how many there were."""
        doomed = list(self._by_peer.get(peer, ()))
        self._remove(peer, doomed)
        return len(doomed)

    def detach_peer(self, peer: Peer) -> list[Key]:
        """Forget ``peer``'s own record at once; its subscriptions stay in the index until
        :meth:`remove_detached` is given them. Returns them."""
        self._chars.pop(peer, None)
        return list(self._by_peer.pop(peer, ()))

    def remove_detached(self, peer: Peer, keys: Iterable[Key]) -> None:
        """Remove subscriptions :meth:`detach_peer` returned, except those ``peer`` took again since."""
        held = self._by_peer.get(peer, ())
        self._remove(peer, [key for key in keys if key not in held], keep_record=True)

    def replace(self, peer: Peer, subscriptions: Mapping[str, Mapping[str, Iterable[str]]]) -> None:
        """Make ``{platform: {bus: [prefix, ...]}}`` the whole subscription set of ``peer``.

        All or nothing: :class:`SubscriptionLimitError` (nothing changed) when it passes a limit.
        """
        for platform in subscriptions:
            _check_platform(platform)
        wanted = {(platform, bus, prefix) for platform, buses in subscriptions.items()
                  for bus, prefixes in buses.items() for prefix in prefixes}
        self._check_limits(peer, len(wanted), sum(len(key[2]) for key in wanted))
        self.drop_peer(peer)
        for platform, buses in subscriptions.items():
            for bus, prefixes in buses.items():
                self.subscribe(peer, prefixes, bus, platform)

    def _remove(self, peer: Peer, keys: Iterable[Key], keep_record: bool = False) -> None:
        mine = None if keep_record else self._by_peer.get(peer)
        for key in keys:
            platform, bus, prefix = key
            index = self._buses.get(bus)
            if index is None:
                continue
            bucket = index.buckets[platform]
            peers = bucket.get(prefix)
            if peers is not None:
                peers.discard(peer)
                if not peers:
                    del bucket[prefix]
            index.refresh(prefix)
            if index.empty():
                del self._buses[bus]
            if mine is not None and key in mine:
                mine.discard(key)
                self._chars[peer] -= len(prefix)
        if mine is not None and not mine:
            del self._by_peer[peer]
            self._chars.pop(peer, None)

    # -- queries -----------------------------------------------------------------------------
    def match(self, topic: str, bus: str = "") -> set[Peer]:
        """Every peer with a subscription (either bucket) on ``bus`` that is a prefix of ``topic``.

        Each peer appears once however many of its prefixes match.
        """
        index = self._buses.get(bus)
        if index is None:
            return set()
        union = index.union
        found: set[Peer] = set()
        size = len(topic)
        probes = 0
        for length in index.lengths:
            if length > size:
                break
            probes += 1
            peers = union.get(topic[:length])
            if peers is not None:
                found.update(peers)
        self.probes += probes
        return found

    def listing(self, peer: Peer, prefix: str = "", bus: str | None = "", platform: str = INTERNAL,
                subscribed: bool = True, reverse: bool = False) -> list[tuple[str, str, bool]]:
        """``[(bus, prefix, is_member)]`` as the ``list`` operation answers (docs/protocol.md §2.6).

        A subscription prefix is listed when it starts with ``prefix`` (``reverse``: when ``prefix``
        starts with it). With ``subscribed`` only those ``peer`` holds are listed.
        """
        _check_platform(platform)
        if bus is None:
            buses = list(self._buses.items())
        else:
            buses = [(bus, self._buses[bus])] if bus in self._buses else []
        results = []
        for name, index in buses:
            for sub_prefix, peers in index.buckets[platform].items():
                hit = prefix.startswith(sub_prefix) if reverse else sub_prefix.startswith(prefix)
                if not hit:
                    continue
                member = peer in peers
                if member or not subscribed:
                    results.append((name, sub_prefix, member))
        return results

    def subscriptions_of(self, peer: Peer) -> Iterator[tuple[str, str, str]]:
        """``(platform, bus, prefix)`` for every subscription ``peer`` holds."""
        return iter(sorted(self._by_peer.get(peer, ())))

    def statistics(self) -> dict[str, int]:
        """Counts for status output: subscribers, subscriptions, buses and prefix probes so far."""
        return {
            "subscribers": len(self._by_peer),
            "subscriptions": sum(len(v) for v in self._by_peer.values()),
            "buses": len(self._buses),
            "probes": self.probes,
            "refused": self.refused,
        }


def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise ValueError(f"platform bucket must be one of {PLATFORMS}, not {platform!r}")
