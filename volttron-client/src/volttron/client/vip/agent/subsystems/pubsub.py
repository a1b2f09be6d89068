"""The ``pubsub`` subsystem (docs/protocol.md §2.6).

Every request goes to the router (the ``peer`` argument, ``'pubsub'`` by convention, is kept for
compatibility and ignored). Matching is plain string prefix: ``''`` matches every topic. Buses
(``bus=''`` by default) are separate namespaces.

::

    @PubSub.subscribe('pubsub', 'devices/campus')
    def on_device(self, peer, sender, bus, topic, headers, message): ...

    self.vip.pubsub.subscribe('pubsub', 'alerts', self.on_alert)
    self.vip.pubsub.publish('pubsub', 'devices/x', headers={...}, message=42)   # AsyncResult

Subscriptions live here and are sent whole (``synchronize``) after every welcome, so they survive
a platform restart. Deliveries run in one in-order executor apart from the receive loop (see
:mod:`~volttron.client.vip.agent.dispatch`), so a callback may wait on an RPC call.
"""

from __future__ import annotations

import builtins
import json
import logging
import struct
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.callbacks import SubscriptionCallback
from volttron.client.vip.agent.decorators import annotate, dualmethod
from volttron.client.vip.agent.dispatch import SerialExecutor
from volttron.client.vip.agent.errors import VIPError
from volttron.client.vip.agent.publish_window import PublishWindow
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import RequestingSubsystem
from volttron.utils.frames import decode_frame
from volttron.utils.identities import is_remote_principal
from volttron.utils.jsonapi import decode, encode
from volttron.utils.jsonrpc import Error as JsonRpcError

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core

_log = logging.getLogger(__name__)

SUBSCRIPTIONS = "pubsub.subscriptions"
PLATFORMS = ("internal", "all")
COMPATIBILITY_HEADERS = (("min_compatible_version", "3.0"), ("max_compatible_version", ""))
_PLAIN_PUBLISH_HEAD = json.dumps({"bus": "", "headers": dict(COMPATIBILITY_HEADERS), "message": None}
                                 ).encode("ascii")[:-len(b"null}")]
"""A publish body without headers on the default bus, up to its message."""
_CACHE_LIMIT = 4096
_RESYNC_INTERVAL = 5.0

Callback = SubscriptionCallback
F = TypeVar("F", bound=Callable[..., Any])


class PubSub(RequestingSubsystem):
    """Publish to topics and receive what others publish."""

    name = "pubsub"

    def __init__(self, core: Core, owner: Any = None) -> None:
        super().__init__(core)
        self.owner = owner
        # platform -> bus -> prefix -> callbacks (insertion ordered, no duplicates)
        self._subscriptions: dict[str, dict[str, dict[str, dict[Callback, None]]]] = {
            p: {} for p in PLATFORMS
        }
        self._match_cache: dict[tuple[str, str, bool], tuple[Callback, ...]] = {}
        self._executor = SerialExecutor("pubsub")
        self._last_resync = 0.0
        self.window = PublishWindow()
        """Bounds the publishes awaiting their acknowledgement (:mod:`..publish_window`)."""

    # ------------------------------------------------------------------ life cycle

    def on_setup(self, annotations: dict[str, list[tuple[Any, Any]]]) -> None:
        for method, (_peer, prefix, bus, all_platforms) in annotations.get(SUBSCRIPTIONS, ()):
            for one in _prefixes(prefix):
                self._add("all" if all_platforms else "internal", bus, one, method)

    def on_connected(self) -> None:
        self.synchronize()

    def on_disconnected(self) -> None:
        self.window.reset()

    def on_stop(self) -> None:
        self._executor.stop()

    # ------------------------------------------------------------------ subscribing

    def _subscribe_decorator(
        cls,
        peer: str,
        prefix: str | list[str],
        bus: str = "",
        all_platforms: bool = False,
        persistent_queue: Any = None,
    ) -> Callable[[F], F]:
        """Decorator: subscribe the method to ``prefix`` when the agent sets up."""

        def decorate(method: F) -> F:
            return annotate(method, SUBSCRIPTIONS, (peer, prefix, bus, all_platforms))

        return decorate

    @dualmethod.with_class_form(_subscribe_decorator)
    def subscribe(
        self,
        peer: str,
        prefix: str | list[str],
        callback: SubscriptionCallback,
        bus: str = "",
        all_platforms: bool = False,
        persistent_queue: Any = None,
    ) -> AsyncResult:
        """Call ``callback(peer, sender, bus, topic, headers, message)`` for topics under ``prefix``.

        On the class, ``@PubSub.subscribe(peer, prefix, bus='', all_platforms=False)`` decorates a
        method to subscribe it when the agent sets up.
        """
        platform = "all" if all_platforms else "internal"
        for one in _prefixes(prefix):
            self._add(platform, bus, one, callback)
        if not self.core.connected:
            return _done("subscribe")  # sent with every subscription at the next welcome
        body = {"prefix": prefix, "bus": bus, "all_platforms": all_platforms}
        return self._request("", [b"subscribe", _dumpb(body)], f"subscribe to {prefix!r}")

    def unsubscribe(
        self,
        peer: str,
        prefix: str | list[str] | None,
        callback: Callback | None,
        bus: str = "",
        all_platforms: bool = False,
    ) -> AsyncResult:
        """Stop ``callback`` (None: every callback) receiving ``prefix`` (None: every prefix)."""
        platform = "all" if all_platforms else "internal"
        emptied = self._drop(platform, bus, prefix, callback)
        if prefix is None and callback is None:
            body_prefix: list[str] | None = None
        elif emptied:
            body_prefix = emptied
        else:
            return _done("unsubscribe")  # other callbacks still use the prefixes: nothing to tell
        if not self.core.connected:
            return _done("unsubscribe")  # the next welcome sends what is left
        body = {platform: {"prefix": body_prefix, "bus": bus}}
        return self._request("", [b"unsubscribe", _dumpb(body)], f"unsubscribe from {prefix!r}")

    def list(
        self,
        peer: str,
        prefix: str = "",
        bus: str = "",
        subscribed: bool = True,
        reverse: bool = False,
        all_platforms: bool = False,
    ) -> AsyncResult:
        """``[[bus, prefix, is_member], ...]`` of the router's subscriptions matching the filter."""
        body = {
            "prefix": prefix,
            "all_platforms": all_platforms,
            "subscribed": subscribed,
            "reverse": reverse,
            "bus": bus,
        }
        return self._request("", [b"list", _dumpb(body)], "subscription list")

    def synchronize(self, peer: str | None = None) -> None:
        """Send every local subscription to the router, replacing what it holds for this agent."""
        subscriptions = {
            platform: {bus: list(prefixes) for bus, prefixes in buses.items() if prefixes}
            for platform, buses in self._subscriptions.items()
        }
        body = _dumpb({"subscriptions": subscriptions})
        try:
            self.core.send_vip("", "pubsub", [b"synchronize", b"connected", body])
        except VIPError as exc:
            _log.warning("subscriptions not synchronized: %s", exc)

    def subscriptions(self) -> dict[str, dict[str, builtins.list[str]]]:
        """``{platform: {bus: [prefixes]}}`` held locally."""
        return {
            p: {b: list(prefixes) for b, prefixes in buses.items()}
            for p, buses in self._subscriptions.items()
        }

    def _add(self, platform: str, bus: str, prefix: str, callback: Callback) -> None:
        self._subscriptions[platform].setdefault(bus, {}).setdefault(prefix, {})[callback] = None
        self._match_cache.clear()

    def _drop(
        self, platform: str, bus: str, prefix: str | builtins.list[str] | None, callback: Callback | None
    ) -> builtins.list[str]:
        prefixes = self._subscriptions[platform].get(bus, {})
        chosen = list(prefixes) if prefix is None else _prefixes(prefix)
        emptied = []
        for one in chosen:
            callbacks = prefixes.get(one)
            if callbacks is None:
                continue
            if callback is None:
                callbacks.clear()
            else:
                callbacks.pop(callback, None)
            if not callbacks:
                del prefixes[one]
                emptied.append(one)
        self._match_cache.clear()
        return emptied

    # ------------------------------------------------------------------ publishing

    def publish(
        self, peer: str, topic: str, headers: dict[str, Any] | None = None, message: Any = None, bus: str = ""
    ) -> AsyncResult:
        """Publish ``message`` on ``topic``; the result resolves to the number of subscribers.

        The compatibility headers ``min_compatible_version``/``max_compatible_version`` are added.
        Nothing waits for the router's acknowledgement unless the caller calls ``get()``.
        """
        try:
            if headers or bus:
                headers = dict(headers) if headers else {}
                headers.update(COMPATIBILITY_HEADERS)
                body = encode({"bus": bus, "headers": headers, "message": message}).encode("ascii")
            else:  # the common case: the same bytes, without encoding the constant part each time
                body = b"".join((_PLAIN_PUBLISH_HEAD, encode(message).encode("ascii"), b"}"))
        except (TypeError, ValueError) as exc:
            from volttron.utils.errors import FrameError

            raise FrameError(
                f"publish on {topic!r}: headers and message must be JSON serialisable: {exc}"
            ) from exc
        self.window.wait_for_room(not self.core.in_receive_loop())
        result = self._request("", [b"publish", topic.encode("iso-8859-1"), body], f"publish on {topic!r}")
        if not result.ready():  # not failed at once, not answered while the send yielded
            self.window.sent(result.ident)
        return result

    # ------------------------------------------------------------------ receiving

    def _handle(self, message: Message) -> None:
        args = message.args
        if not args:
            return
        op = args[0]
        if op == b"publish":
            if len(args) >= 3:
                executor = self._executor
                # another platform's publish (the router names its sender <platform>:<identity>)
                # is for the all_platforms subscriptions only
                executor.submit(self._deliver, args[1], args[2], is_remote_principal(message.user))
                executor.wait_capacity()
        elif op == b"request_response":
            self.window.answered(message.id)
            result = self._results.pop(message.id)
            if result is not None:
                result.set(_decode_count(args[1]) if len(args) > 1 else None)
        elif op == b"list_response":
            result = self._results.pop(message.id)
            if result is not None:
                try:
                    result.set(json.loads(args[1]) if len(args) > 1 else [])
                except ValueError as exc:
                    result.set_exception(VIPError(-1, f"bad list response: {exc}", "", "pubsub"))
        else:
            _log.debug("ignored pubsub operation %r", op)

    def _deliver(self, topic_frame: bytes, body_frame: bytes, remote: bool = False) -> None:
        topic = topic_frame.decode("iso-8859-1")
        try:
            body = decode(body_frame.decode("iso-8859-1"))  # Latin-1 text, as the original reads frames
        except ValueError:
            _log.warning("dropped a publication on %r whose body is not JSON", topic)
            return
        if type(body) is not dict:
            _log.warning("dropped a publication on %r whose body is not an object", topic)
            return
        bus = body.get("bus") or ""
        callbacks = self._match_cache.get((bus, topic, remote))
        if callbacks is None:
            callbacks = self._match(bus, topic, remote)
        if not callbacks:
            self._resync_later()
            return
        sender: Any = body.get("sender")
        headers = body.get("headers") or {}
        payload = body.get("message")
        for callback in callbacks:
            try:
                callback("pubsub", sender, bus, topic, headers, payload)
            except Exception:
                _log.exception("pubsub callback %r failed on %r", callback, topic)

    def _match(self, bus: str, topic: str, remote: bool = False) -> tuple[Callback, ...]:
        found: dict[Callback, None] = {}
        for platform, buses in self._subscriptions.items():
            if remote and platform != "all":
                continue
            for prefix, callbacks in buses.get(bus, {}).items():
                if topic.startswith(prefix):
                    found.update(callbacks)
        matched = tuple(found)
        if len(self._match_cache) >= _CACHE_LIMIT:
            self._match_cache.clear()
        self._match_cache[(bus, topic, remote)] = matched
        return matched

    def _resync_later(self) -> None:
        # The router sent something we do not want: its view is stale. Say so, at most every 5 s.
        now = time.monotonic()
        if now - self._last_resync > _RESYNC_INTERVAL:
            self._last_resync = now
            self.core.spawn(self.synchronize)

    def _handle_error(self, error: VIPError, message: Message) -> None:
        self.window.answered(message.id)
        result = self._results.pop(message.id)
        if result is None:
            return
        if error.errno == -32001:  # protected topic: the router's JSON-RPC style refusal
            result.set_exception(JsonRpcError(-32001, "unauthorized", {"detail": error.msg}))
        else:
            result.set_exception(error)

    def statistics(self) -> dict[str, Any]:
        """Subscription and delivery counters."""
        count = sum(len(p) for buses in self._subscriptions.values() for p in buses.values())
        return {"subscriptions": count, "deliveries": self._executor.statistics(),
                "unacknowledged_publishes": len(self.window), "publish_waits": self.window.waits}


def _prefixes(prefix: str | Iterable[str] | None) -> list[str]:
    if prefix is None:
        return []
    if isinstance(prefix, str):
        return [prefix]
    return [str(p) for p in prefix]


def _done(description: str) -> AsyncResult:
    result = AsyncResult(description=description)
    result.set(True)
    return result


def _dumpb(obj: Any) -> bytes:
    return encode(obj).encode("ascii")


def _decode_count(frame: bytes) -> Any:
    if frame.isdigit() and len(frame) < 10:
        return int(frame)  # what every router sends today: ASCII digits
    value = decode_frame(frame)
    if isinstance(value, str) and len(frame) == 4:
        return struct.unpack("<I", frame)[0]  # the 9.x router packs counts (docs/protocol.md §1.3)
    return value
