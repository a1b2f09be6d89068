"""One peer's pub/sub subscriptions as broker bindings (docs/protocol.md §2.6, §6.3).

On RabbitMQ the broker does the fan-out, so the requests the ``pubsub`` subsystem addresses to the
router (``subscribe``, ``unsubscribe``, ``synchronize``, ``list``) are answered by the connection
itself from this table, which says which binding keys the peer's pub/sub queue needs. Several
prefixes may need the same binding (``devices/a`` and ``devices/a/`` both bind
``__pubsub__.<instance>.devices.a.#``); a binding goes away when its last prefix does.

Pure bookkeeping: no broker calls, so it is tested without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from volttron.client.messagebus.rmq_wire import binding_key, prefix_matches

INTERNAL = "internal"
ALL = "all"
PLATFORMS = (INTERNAL, ALL)

Key = tuple[str, str, str]
"""(platform, bus, prefix)"""


class SubscriptionRequestError(ValueError):
    """A pub/sub request whose body does not say what to (un)subscribe."""


@dataclass
class BindingChange:
    """Binding keys to add and to remove after a request."""

    add: set[str] = field(default_factory=set)
    remove: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


class SubscriptionTable:
    """The subscriptions of one peer on one instance and the bindings they need."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self._keys: set[Key] = set()
        self._match_cache: dict[tuple[str, str], bool] = {}

    # -- requests ---------------------------------------------------------------------------
    def subscribe(self, body: dict[str, Any]) -> BindingChange:
        """``{"prefix": str | [str], "bus": str, "all_platforms": bool}``."""
        platform = ALL if body.get("all_platforms") else INTERNAL
        bus = _bus(body.get("bus"))
        return self._replace(self._keys | {(platform, bus, p) for p in _prefixes(body.get("prefix"))})

    def unsubscribe(self, body: dict[str, Any]) -> BindingChange:
        """``{"internal"|"all": {"prefix": [..] | null, "bus": str}}``; a bare ``{"prefix", "bus"}``
        means internal."""
        if "prefix" in body and not any(p in body for p in PLATFORMS):
            body = {INTERNAL: body}
        gone: set[Key] = set()
        for platform in PLATFORMS:
            request = body.get(platform)
            if request is None:
                continue
            if not isinstance(request, dict):
                raise SubscriptionRequestError(f"unsubscribe: {platform!r} must be an object")
            bus = request.get("bus")
            prefixes = request.get("prefix")
            chosen = None if prefixes is None else set(_prefixes(prefixes))
            gone |= {
                key for key in self._keys
                if key[0] == platform and (bus is None or key[1] == bus)
                and (chosen is None or key[2] in chosen)
            }
        return self._replace(self._keys - gone)

    def synchronize(self, body: dict[str, Any]) -> BindingChange:
        """``{"subscriptions": {"internal"|"all": {bus: [prefixes]}}}`` replaces every subscription."""
        table = body.get("subscriptions")
        if not isinstance(table, dict):
            raise SubscriptionRequestError("synchronize: 'subscriptions' must be an object")
        wanted: set[Key] = set()
        for platform, buses in table.items():
            if platform not in PLATFORMS or not isinstance(buses, dict):
                raise SubscriptionRequestError(f"synchronize: unknown platform {platform!r}")
            for bus, prefixes in buses.items():
                wanted |= {(platform, _bus(bus), p) for p in _prefixes(prefixes)}
        return self._replace(wanted)

    def listing(self, body: dict[str, Any]) -> list[list[Any]]:
        """``[[bus, prefix, true], ...]`` of this peer's subscriptions under the requested prefix/bus.

        The broker keeps no index of other peers' subscriptions, so ``subscribed=false`` lists the
        same rows: every one of them is ours.
        """
        prefix = body.get("prefix") or ""
        bus = body.get("bus")
        reverse = bool(body.get("reverse"))
        platforms = PLATFORMS if body.get("all_platforms") else (INTERNAL,)
        rows = set()
        for platform, key_bus, key_prefix in self._keys:
            if platform not in platforms or (bus not in (None, "") and key_bus != bus):
                continue
            hit = prefix.startswith(key_prefix) if reverse else key_prefix.startswith(prefix)
            if hit:
                rows.add((key_bus, key_prefix))
        return [[b, p, True] for b, p in sorted(rows)]

    # -- state ------------------------------------------------------------------------------
    def bindings(self) -> set[str]:
        """Every binding key the current subscriptions need."""
        return {binding_key(self.instance, prefix, platform == ALL) for platform, _, prefix in self._keys}

    def wants(self, bus: str, topic: str) -> bool:
        """Whether a publish on ``bus``/``topic`` matches a subscription (word-based prefixes)."""
        cached = self._match_cache.get((bus, topic))
        if cached is None:
            cached = any(b == bus and prefix_matches(p, topic) for _, b, p in self._keys)
            if len(self._match_cache) > 4096:
                self._match_cache.clear()
            self._match_cache[(bus, topic)] = cached
        return cached

    def __len__(self) -> int:
        return len(self._keys)

    def _replace(self, keys: set[Key]) -> BindingChange:
        before = self.bindings()
        self._keys = keys
        self._match_cache.clear()
        after = self.bindings()
        return BindingChange(add=after - before, remove=before - after)


def _prefixes(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if all(isinstance(p, str) for p in items):
            return items
    raise SubscriptionRequestError("prefix must be text or a list of text")


def _bus(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SubscriptionRequestError("bus must be text")
    return value
