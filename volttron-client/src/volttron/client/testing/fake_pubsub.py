"""``agent.vip.pubsub`` in a unit test: publications are kept, the test delivers messages.

::

    harness.pubsub.deliver("devices/campus/a", {"temp": 20.5}, sender="platform.driver")
    assert harness.pubsub.published[-1].topic == "record/summary"

Subscriptions (``@PubSub.subscribe`` and ``vip.pubsub.subscribe``) match by prefix, per bus,
exactly as on the platform. A delivery calls the matching callbacks at once, in the test's
greenlet: an exception in a callback reaches the test (the platform would only log it). Headers and
messages go through JSON as on the wire, so a value that could not be sent fails here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.client.vip.agent.subsystems.pubsub import SUBSCRIPTIONS
from volttron.utils.errors import FrameError

Callback = Callable[[str, str, str, str, dict, Any], Any]
PLATFORMS = ("internal", "all")


@dataclass(frozen=True)
class Publication:
    """One message the agent published."""

    topic: str
    message: Any
    headers: dict[str, Any] = field(default_factory=dict)
    bus: str = ""


class FakePubSub(SubsystemBase):
    """See the module docstring."""

    def __init__(self, core: Any, owner: Any = None) -> None:
        super().__init__(core)
        self.owner = owner
        self.published: list[Publication] = []
        """Every publication, oldest first."""
        self._subscriptions: dict[str, dict[str, dict[str, dict[Callback, None]]]] = {
            p: {} for p in PLATFORMS
        }

    # ----- life cycle

    def on_setup(self, annotations: dict[str, list[tuple[Any, Any]]]) -> None:
        for method, (_peer, prefix, bus, all_platforms) in annotations.get(SUBSCRIPTIONS, ()):
            for one in _prefixes(prefix):
                self._add("all" if all_platforms else "internal", bus, one, method)

    # ----- the agent's API

    def subscribe(
        self,
        peer: str,
        prefix: str | list[str],
        callback: Callback,
        bus: str = "",
        all_platforms: bool = False,
        persistent_queue: Any = None,
    ) -> AsyncResult:
        """Call ``callback(peer, sender, bus, topic, headers, message)`` for topics under ``prefix``."""
        for one in _prefixes(prefix):
            self._add("all" if all_platforms else "internal", bus, one, callback)
        return _done(True)

    def unsubscribe(
        self,
        peer: str,
        prefix: str | list[str] | None,
        callback: Callback | None,
        bus: str = "",
        all_platforms: bool = False,
    ) -> AsyncResult:
        """Stop ``callback`` (None: all) receiving ``prefix`` (None: all prefixes) on ``bus``."""
        prefixes = self._subscriptions["all" if all_platforms else "internal"].get(bus, {})
        for one in list(prefixes) if prefix is None else _prefixes(prefix):
            callbacks = prefixes.get(one)
            if callbacks is None:
                continue
            if callback is None:
                callbacks.clear()
            else:
                callbacks.pop(callback, None)
            if not callbacks:
                del prefixes[one]
        return _done(True)

    def publish(
        self, peer: str, topic: str, headers: dict[str, Any] | None = None, message: Any = None, bus: str = ""
    ) -> AsyncResult:
        """Keep the publication; the result resolves to how many of this agent's subscriptions match."""
        headers = _through_json(dict(headers or {}), f"headers of the publication on {topic!r}")
        message = _through_json(message, f"message published on {topic!r}")
        self.published.append(Publication(topic, message, headers, bus))
        return _done(len(self._match(bus, topic)))

    def list(
        self,
        peer: str,
        prefix: str = "",
        bus: str = "",
        subscribed: bool = True,
        reverse: bool = False,
        all_platforms: bool = False,
    ) -> AsyncResult:
        """``[[bus, prefix, True], ...]`` of this agent's subscriptions under ``prefix``."""
        found = []
        for platform in ("all",) if all_platforms else PLATFORMS:
            for one_bus, prefixes in self._subscriptions[platform].items():
                for one in prefixes:
                    matches = prefix.startswith(one) if reverse else one.startswith(prefix)
                    if matches and (not bus or bus == one_bus):
                        found.append([one_bus, one, True])
        return _done(found)

    def synchronize(self, peer: str | None = None) -> None:
        """Nothing to synchronize with."""

    def subscriptions(self) -> dict[str, dict[str, list[str]]]:
        """``{platform: {bus: [prefixes]}}``, as the real subsystem reports them."""
        return {
            p: {b: list(prefixes) for b, prefixes in buses.items()}
            for p, buses in self._subscriptions.items()
        }

    # ----- the test's API

    def deliver(
        self,
        topic: str,
        message: Any = None,
        headers: dict[str, Any] | None = None,
        sender: str = "test.publisher",
        bus: str = "",
    ) -> int:
        """Deliver a publication to the agent's matching callbacks now; returns how many were called."""
        headers = _through_json(dict(headers or {}), f"headers delivered on {topic!r}")
        message = _through_json(message, f"message delivered on {topic!r}")
        callbacks = self._match(bus, topic)
        for callback in callbacks:
            callback("pubsub", sender, bus, topic, dict(headers), message)
        return len(callbacks)

    def is_subscribed(self, topic: str, bus: str = "") -> bool:
        """True when a publication on ``topic`` would reach a callback of the agent."""
        return bool(self._match(bus, topic))

    def prefixes(self, bus: str = "") -> list[str]:
        """The prefixes the agent is subscribed to on ``bus``, on any platform, sorted."""
        return sorted({one for buses in self._subscriptions.values() for one in buses.get(bus, {})})

    def published_on(self, prefix: str = "", bus: str = "") -> list[Publication]:
        """The publications whose topic starts with ``prefix`` on ``bus``, oldest first."""
        return [p for p in self.published if p.topic.startswith(prefix) and p.bus == bus]

    def clear(self) -> None:
        """Forget the publications kept so far."""
        self.published.clear()

    # ----- internals

    def _add(self, platform: str, bus: str, prefix: str, callback: Callback) -> None:
        self._subscriptions[platform].setdefault(bus, {}).setdefault(prefix, {})[callback] = None

    def _match(self, bus: str, topic: str) -> list[Callback]:
        found: dict[Callback, None] = {}
        for buses in self._subscriptions.values():
            for prefix, callbacks in buses.get(bus, {}).items():
                if topic.startswith(prefix):
                    found.update(callbacks)
        return list(found)


def _prefixes(prefix: str | Iterable[str] | None) -> list[str]:
    if prefix is None:
        return []
    if isinstance(prefix, str):
        return [prefix]
    return [str(p) for p in prefix]


def _through_json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise FrameError(f"{what} must be JSON serialisable: {exc}") from exc


def _done(value: Any) -> AsyncResult:
    result = AsyncResult(description="fake pubsub request")
    result.set(value)
    return result
