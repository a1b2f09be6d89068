"""The test's side of pub/sub and RPC in an :class:`~volttron.client.testing.harness.AgentHarness`.

The agent runs its real ``vip.pubsub`` and ``vip.rpc`` on the harness's memory router; these
objects drive them from the outside and read what went over the bus::

    harness.pubsub.deliver("devices/campus/a", {"temp": 20.5}, sender="platform.driver")
    assert harness.pubsub.published[-1].topic == "record/summary"
    harness.rpc.respond("platform.historian", "query", {"values": []})     # a peer that answers
    assert harness.rpc.invoke("set_point", "ahu1", 21.5, caller="ui") == "ok"
    assert harness.rpc.calls[-1].method == "query"

Any other attribute is the agent's own subsystem's (``harness.pubsub.subscriptions()`` is
``agent.vip.pubsub.subscriptions()``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from volttron.client.messagebus.base import Message
from volttron.client.testing.services import RpcPeer
from volttron.utils.errors import FrameError, VolttronError
from volttron.utils.jsonrpc import INTERNAL_ERROR, Error, decode_params

if TYPE_CHECKING:
    from volttron.client.testing.harness import AgentHarness


class UnknownMethodError(VolttronError, LookupError):
    """``invoke`` named a method the agent does not export."""


@dataclass(frozen=True)
class Publication:
    """One message the agent published (``headers`` include the compatibility headers pub/sub adds)."""

    topic: str
    message: Any
    headers: dict[str, Any] = field(default_factory=dict)
    bus: str = ""


@dataclass(frozen=True)
class RpcCall:
    """One call the agent made (``notify`` calls have ``notify=True``)."""

    peer: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    notify: bool = False
    external_platform: str | None = None


class PubSubControl:
    """``harness.pubsub``; see the module docstring."""

    def __init__(self, harness: AgentHarness) -> None:
        self._harness = harness
        self._cleared = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._harness.agent.vip.pubsub, name)

    def deliver(
        self,
        topic: str,
        message: Any = None,
        headers: dict[str, Any] | None = None,
        sender: str = "test.publisher",
        bus: str = "",
    ) -> int:
        """Publish as ``sender`` through the router and let the agent's callbacks run; how many ran."""
        harness = self._harness
        body = {"bus": bus, "headers": dict(headers or {}), "message": message}
        try:
            frame = json.dumps(body).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise FrameError(
                f"headers and message delivered on {topic!r} must be JSON serialisable: {exc}"
            ) from exc
        with harness.driving():
            harness.settle()
            routed = self._router_matches(topic, bus)
            expected = len(harness.agent.vip.pubsub._match(bus, topic)) if routed else 0
            frames = [b"publish", topic.encode("iso-8859-1"), frame]
            harness.router.send_as(sender, Message("", "pubsub", frames, "deliver", sender))
            harness.settle()
        return expected

    def _router_matches(self, topic: str, bus: str) -> bool:
        prefixes = self._harness.router.subscriptions.get(self._harness.core.identity, {}).get(bus, ())
        return any(topic.startswith(p) for p in prefixes)

    def is_subscribed(self, topic: str, bus: str = "") -> bool:
        """True when a publication on ``topic`` would reach a callback of the agent."""
        return bool(self._harness.agent.vip.pubsub._match(bus, topic))

    def prefixes(self, bus: str = "") -> list[str]:
        """The prefixes the agent is subscribed to on ``bus``, on any platform, sorted."""
        subscriptions = self._harness.agent.vip.pubsub.subscriptions()
        return sorted({p for buses in subscriptions.values() for p in buses.get(bus, ())})

    @property
    def published(self) -> list[Publication]:
        """Every publication the agent sent (since :meth:`clear`), oldest first."""
        identity = self._harness.core.identity
        found = []
        for sender, message in self._harness.router.log[self._cleared:]:
            if sender != identity or message.subsystem != "pubsub" or message.args[:1] != [b"publish"]:
                continue
            body = json.loads(message.args[2])
            found.append(Publication(message.text(1), body.get("message"), body.get("headers") or {},
                                     body.get("bus") or ""))
        return found

    def published_on(self, prefix: str = "", bus: str = "") -> list[Publication]:
        """The publications whose topic starts with ``prefix`` on ``bus``, oldest first."""
        return [p for p in self.published if p.topic.startswith(prefix) and p.bus == bus]

    def clear(self) -> None:
        """Forget the publications kept so far."""
        self._cleared = len(self._harness.router.log)


class RpcControl:
    """``harness.rpc``; see the module docstring."""

    def __init__(self, harness: AgentHarness) -> None:
        self._harness = harness
        self._peers: dict[str, RpcPeer] = {}
        self._pushed: dict[str, dict[str, Any]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._harness.agent.vip.rpc, name)

    # ----- peers the agent calls

    def respond(self, peer: str, method: str, answer: Any) -> None:
        """Answer calls of ``method`` on ``peer``: a value, a callable computing it, or an exception."""
        self.add_peer(peer, {method: answer})

    def add_peer(self, peer: str, methods: Mapping[str, Any] | None = None) -> None:
        """Make ``peer`` reachable (its methods answered as by :meth:`respond`)."""
        existing = self._peers.get(peer)
        if existing is None:
            existing = self._peers[peer] = RpcPeer(self._harness.router, peer)
        existing.methods.update(methods or {})

    def remove_peer(self, peer: str) -> None:
        """Make ``peer`` unreachable again (the agent hears it dropped)."""
        existing = self._peers.pop(peer, None)
        if existing is not None:
            existing.close()

    @property
    def calls(self) -> list[RpcCall]:
        """Every call and notification the agent sent, oldest first (read from the router's log)."""
        identity = self._harness.core.identity
        found: list[RpcCall] = []
        for sender, message in self._harness.router.log:
            if sender != identity:
                continue
            if message.subsystem == "RPC":
                for frame in message.args:
                    found.extend(_requests(message.peer, frame.decode("iso-8859-1"), None))
            elif message.subsystem == "external_rpc" and message.args[:1] == [b"send_platform"]:
                envelope = json.loads(message.args[1])
                for text in envelope.get("args", []):
                    found.extend(_requests(envelope.get("to_peer", ""), text, envelope.get("to_platform")))
        return found

    def calls_to(self, peer: str, method: str | None = None) -> list[RpcCall]:
        """The calls the agent made to ``peer`` (and ``method``), oldest first."""
        return [c for c in self.calls if c.peer == peer and (method is None or c.method == method)]

    # ----- calling the agent

    def invoke(
        self,
        method: str,
        *args: Any,
        caller: str = "test.caller",
        capabilities: Iterable[str] | Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> Any:
        """Call the agent's exported ``method`` over the bus as peer ``caller`` holding ``capabilities``.

        Returns the result (after its JSON round trip). The method's exception arrives as the
        caller would receive it: a :class:`~volttron.utils.jsonrpc.RemoteError` (also an instance
        of the builtin class for builtin exceptions), :class:`~volttron.utils.jsonrpc.Unauthorized`
        when ``@RPC.allow`` requires a capability the caller lacks; a result that cannot be sent is a
        :class:`~volttron.utils.errors.FrameError`.
        """
        harness = self._harness
        exports = harness.agent.vip.rpc.exports
        if method not in exports:
            known = ", ".join(sorted(exports)) or "none"
            raise UnknownMethodError(f"the agent exports no method {method!r} (exports: {known})")
        try:
            json.dumps([args, kwargs])
        except (TypeError, ValueError) as exc:
            raise FrameError(f"arguments of {method!r} must be JSON serialisable: {exc}") from exc
        with harness.driving():
            self._grant(caller, capabilities)
            peer = self._peers.get(caller)
            if peer is None:
                peer = self._peers[caller] = RpcPeer(harness.router, caller)
            result = peer.call(harness.core.identity, method, *args, **kwargs)
            try:
                value = harness.wait(result, timeout, f"the answer of {method!r}")
            except Error as exc:
                detail = (exc.data or {}).get("detail", "") if isinstance(exc.data, dict) else ""
                if exc.code == INTERNAL_ERROR and "not JSON serialisable" in str(detail):
                    raise FrameError(f"{detail}") from exc
                raise
            harness.settle()
        return value

    def _grant(self, caller: str, capabilities: Iterable[str] | Mapping[str, Any] | None) -> None:
        harness = self._harness
        if harness.agent.vip.auth is None:
            return
        table = harness.auth.table
        table[caller] = _capability_map(capabilities)
        if table != self._pushed:
            harness.wait(harness.auth.call(harness.core.identity, "auth.update", table), 10, "auth.update")
            self._pushed = {k: dict(v) for k, v in table.items()}


def _requests(peer: str, text: str, platform: str | None) -> list[RpcCall]:
    try:
        obj = json.loads(text)
    except ValueError:
        return []
    found = []
    for item in obj if isinstance(obj, list) else [obj]:
        if isinstance(item, dict) and isinstance(item.get("method"), str):
            try:
                args, kwargs = decode_params(item.get("params"))
            except Error:
                args, kwargs = [], {}
            found.append(RpcCall(peer, item["method"], tuple(args), kwargs, item.get("id") is None, platform))
    return found


def _capability_map(capabilities: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    if capabilities is None:
        return {}
    if isinstance(capabilities, Mapping):
        return dict(capabilities)
    if isinstance(capabilities, str):
        return {capabilities: None}
    return {str(c): None for c in capabilities}

