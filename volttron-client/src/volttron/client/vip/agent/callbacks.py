"""Typed signatures of the callbacks an agent hands to its subsystems.

A type checker holds an agent's callbacks to these shapes, e.g.::

    def on_alert(self, peer: str, sender: str, bus: str, topic: str,
                 headers: dict[str, Any], message: Any) -> None: ...

    self.vip.pubsub.subscribe('pubsub', 'alerts', self.on_alert)   # checked against SubscriptionCallback
    self.vip.config.subscribe(self.configure, actions=['NEW', 'UPDATE'], pattern='config')

The parameters are positional (the subsystems call them so), so a callback may name them as it likes.
What a callback returns is ignored.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["ConfigCallback", "SubscriptionCallback"]


class SubscriptionCallback(Protocol):
    """``callback(peer, sender, bus, topic, headers, message)``: one pub/sub delivery.

    ``peer`` is ``'pubsub'``, ``sender`` the publisher's identity, ``bus`` the bus name (``''`` by
    default), ``topic`` the full topic, ``headers`` the publish headers, ``message`` the decoded body.
    """

    def __call__(
        self, peer: str, sender: str, bus: str, topic: str, headers: dict[str, Any], message: Any, /
    ) -> object: ...


class ConfigCallback(Protocol):
    """``callback(config_name, action, contents)``: one configuration store change.

    ``action`` is ``'NEW'``, ``'UPDATE'`` or ``'DELETE'``; ``contents`` the parsed configuration
    (``None`` on ``'DELETE'``).
    """

    def __call__(self, config_name: str, action: str, contents: Any, /) -> object: ...
