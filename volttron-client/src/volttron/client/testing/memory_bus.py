"""An in-memory VIP router and connection: agents run in one process with no network.

:class:`MemoryRouter` does what the platform's router does for the subsystems it knows (hello,
peerlist, ping, query, pubsub, agentstop, error frames) and forwards everything else with the
user frame set to the sender's identity. Every message it sees is kept in ``router.log`` as
``(sender, Message)`` for assertions. Give an agent ``connection_factory=router.factory``.

Besides connected agents, the router has *services*: peers that live in the test process as a
function (:meth:`MemoryRouter.add_service`), called with each message routed to them, and that send
with :meth:`MemoryRouter.send_as`. The testing kit's stand-ins for platform services (the
configuration store, ``platform.auth``, the peers a test answers for) are services.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gevent
from gevent.queue import Queue

from volttron.client.messagebus.base import (
    BusClosed,
    BusEvent,
    Connection,
    ConnectionParams,
    EventCallback,
    Message,
)

ServiceHandler = Callable[[Message], None]
"""A service's handler: called with each message routed to it (``message.peer`` is the sender)."""


class MemoryConnection(Connection):
    """A connection to a :class:`MemoryRouter`."""

    name = "memory"
    reports_disconnects = True

    def __init__(self, params: ConnectionParams, router: MemoryRouter) -> None:
        """A connection of ``params.identity`` to ``router`` (made by :meth:`MemoryRouter.factory`)."""
        super().__init__(params)
        self.router = router
        self.inbox: Queue[Message | None] = Queue()  # None: closed
        self._closed = False
        self.on_event: EventCallback | None = None

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    @property
    def identity(self) -> str:
        """The identity this connection speaks for."""
        return self.params.identity

    @property
    def pending(self) -> int:
        """Messages delivered and not yet received."""
        return self.inbox.qsize()

    def open(self, on_event: EventCallback) -> None:
        """Attach to the router; the link comes up at once."""
        self.on_event = on_event
        self.router.attach(self)

    def events(self) -> EventCallback:
        """The ``on_event`` callback :meth:`open` was given."""
        if self.on_event is None:
            raise BusClosed("not open")
        return self.on_event

    def send(self, message: Message, timeout: float | None = None) -> None:
        """Route ``message`` now (in the caller's greenlet)."""
        if self._closed:
            raise BusClosed("closed")
        self.router.route(self, message)

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next delivered message; None after ``timeout``."""
        if self._closed and self.inbox.empty():
            raise BusClosed("closed")
        try:
            item = self.inbox.get(timeout=timeout)
        except gevent.queue.Empty:
            return None
        if item is None:
            raise BusClosed("closed")
        return item

    def close(self, linger: float = 1.0) -> None:
        """Detach from the router."""
        if not self._closed:
            self._closed = True
            self.router.detach(self)
            self.inbox.put(None)

    def deliver(self, message: Message) -> None:
        """Queue ``message`` for :meth:`recv` (the router's side)."""
        if not self._closed:
            self.inbox.put(message)


class MemoryRouter:
    """The router side; see the module docstring."""

    def __init__(self) -> None:
        self.connections: dict[str, MemoryConnection] = {}
        self.peers: list[str] = []
        self.by_platform: dict[str, dict[str, dict[str, set[str]]]] = {}
        """``{peer: {platform: {bus: prefixes}}}``: the subscriptions as agents sent them."""
        self.log: list[tuple[str, Message]] = []
        self.query_values: dict[str, Any] = {"instance-name": "testplatform", "serverkey": "K" * 43}
        self.refuse: set[str] = set()  # identities never welcomed
        self.services: dict[str, ServiceHandler] = {}

    @property
    def subscriptions(self) -> dict[str, dict[str, set[str]]]:
        """``{peer: {bus: prefixes}}`` over both platforms (``internal`` and ``all``)."""
        merged: dict[str, dict[str, set[str]]] = {}
        for peer, platforms in self.by_platform.items():
            buses = merged.setdefault(peer, {})
            for platform_buses in platforms.values():
                for bus, prefixes in platform_buses.items():
                    if prefixes:
                        buses.setdefault(bus, set()).update(prefixes)
        return merged

    def factory(self, params: ConnectionParams) -> MemoryConnection:
        """The ``connection_factory`` of agents on this router."""
        return MemoryConnection(params, self)

    # ----- services (peers living in the test process)

    def add_service(self, identity: str, handler: ServiceHandler) -> None:
        """Make ``identity`` a peer whose messages ``handler`` receives (it joins the peer list)."""
        self.services[identity] = handler
        self._add_peer(identity)

    def remove_service(self, identity: str) -> None:
        """Remove a service; its peers hear it dropped."""
        if self.services.pop(identity, None) is not None:
            self._drop_peer(identity)

    def send_as(self, identity: str, message: Message) -> None:
        """Route ``message`` as if peer ``identity`` had sent it (a service, or any name)."""
        self._route_from(identity, message)

    def busy(self) -> bool:
        """True while a connected agent has messages it has not received yet."""
        return any(conn.pending for conn in list(self.connections.values()))

    # ----- connections

    def attach(self, conn: MemoryConnection) -> None:
        """A connection opened: the link comes up (in another greenlet, as a socket would report)."""
        if conn.identity in self.connections:
            return  # like a ROUTER without handover: the newcomer is never heard
        self.connections[conn.identity] = conn
        gevent.spawn(conn.events(), BusEvent.CONNECTED, "memory")

    def detach(self, conn: MemoryConnection) -> None:
        """A connection closed."""
        if self.connections.get(conn.identity) is conn:
            del self.connections[conn.identity]

    def bounce(self, identity: str) -> None:
        """Simulate a platform restart for one peer: disconnect, forget its state, reconnect."""
        conn = self.connections[identity]
        self.by_platform.pop(identity, None)
        if identity in self.peers:
            self.peers.remove(identity)
        conn.events()(BusEvent.DISCONNECTED, "memory")
        gevent.spawn(conn.events(), BusEvent.CONNECTED, "memory")

    def messages(self, subsystem: str | None = None, sender: str | None = None) -> list[Message]:
        """The logged messages, filtered by subsystem and sender."""
        return [
            m
            for s, m in self.log
            if (subsystem is None or m.subsystem == subsystem) and (sender is None or s == sender)
        ]

    def _to(self, identity: str, message: Message) -> bool:
        service = self.services.get(identity)
        if service is not None:
            service(message)
            return True
        conn = self.connections.get(identity)
        if conn is None:
            return False
        conn.deliver(message)
        return True

    def _add_peer(self, identity: str) -> None:
        if identity not in self.peers:
            for peer in self.peers:
                self._to(peer, Message("", "peerlist", [b"add", identity.encode()], "", ""))
            self.peers.append(identity)

    def _drop_peer(self, identity: str) -> None:
        if identity in self.peers:
            self.peers.remove(identity)
            self.by_platform.pop(identity, None)
            for peer in self.peers:
                self._to(peer, Message("", "peerlist", [b"drop", identity.encode()], "", ""))

    def route(self, conn: MemoryConnection, message: Message) -> None:
        """Route what ``conn`` sent."""
        sender = conn.identity
        if self.connections.get(sender) is not conn:
            return  # a duplicate identity's messages never reach the router
        self._route_from(sender, message)

    def _route_from(self, sender: str, message: Message) -> None:
        self.log.append((sender, message))
        self._add_peer(sender)
        if message.peer:
            forwarded = Message(sender, message.subsystem, list(message.args), message.id, sender)
            if not self._to(message.peer, forwarded) and message.peer != sender:
                self._drop_peer(message.peer)
                self._error(sender, message, 113, "No route to host", message.peer)
            return
        handler = getattr(self, "_handle_" + message.subsystem, None)
        if handler is None:
            self._error(sender, message, 93, "Protocol not supported", "")
        else:
            handler(sender, message)

    def _error(self, sender: str, message: Message, errnum: int, text: str, recipient: str) -> None:
        self._to(
            sender,
            Message(
                "",
                "error",
                [str(errnum).encode(), text.encode(), recipient.encode(), message.subsystem.encode()],
                message.id,
                "",
            ),
        )

    def _handle_hello(self, sender: str, message: Message) -> None:
        if sender in self.refuse:
            return
        self._to(
            sender,
            Message("", "hello", [b"welcome", b"1.0", b"memory-router", sender.encode()], message.id, sender),
        )

    def _handle_ping(self, sender: str, message: Message) -> None:
        self._to(sender, Message("", "ping", [b"pong", *message.args[1:]], message.id, sender))

    def _handle_peerlist(self, sender: str, message: Message) -> None:
        self._to(
            sender, Message("", "peerlist", [b"listing", *[p.encode() for p in self.peers]], message.id, "")
        )

    def _handle_query(self, sender: str, message: Message) -> None:
        value = self.query_values.get(message.text(0))
        frame = (
            b""
            if value is None
            else (value.encode() if isinstance(value, str) else json.dumps(value).encode())
        )
        self._to(sender, Message("", "query", [b"", frame], message.id, ""))

    def _handle_agentstop(self, sender: str, message: Message) -> None:
        self._drop_peer(message.text(0))

    def _handle_error(self, sender: str, message: Message) -> None:
        pass

    def _handle_pubsub(self, sender: str, message: Message) -> None:
        op = message.args[0]
        platforms = self.by_platform.setdefault(sender, {})
        if op == b"subscribe":
            body = json.loads(message.args[1])
            prefixes = body["prefix"] if isinstance(body["prefix"], list) else [body["prefix"]]
            platform = "all" if body.get("all_platforms") else "internal"
            platforms.setdefault(platform, {}).setdefault(body["bus"], set()).update(prefixes)
            self._to(sender, Message("", "pubsub", [b"request_response", b"true"], message.id, sender))
        elif op == b"synchronize":
            body = json.loads(message.args[2])["subscriptions"]
            self.by_platform[sender] = {
                platform: {bus: set(prefixes) for bus, prefixes in buses.items()}
                for platform, buses in body.items()
            }
        elif op == b"unsubscribe":
            body = json.loads(message.args[1])
            for platform, spec in body.items():
                buses = platforms.get(platform, {})
                if spec["prefix"] is None:
                    buses.pop(spec["bus"], None)
                else:
                    buses.get(spec["bus"], set()).difference_update(spec["prefix"])
            self._to(sender, Message("", "pubsub", [b"request_response", b"true"], message.id, sender))
        elif op == b"publish":
            topic = message.text(1)
            body = json.loads(message.args[2])
            out = json.dumps(
                {"sender": sender, "bus": body["bus"], "headers": body["headers"], "message": body["message"]}
            ).encode()
            count = 0
            for peer, buses in list(self.subscriptions.items()):
                if any(topic.startswith(p) for p in buses.get(body["bus"], ())):
                    count += self._to(
                        peer, Message("", "pubsub", [b"publish", message.args[1], out], message.id, sender)
                    )
            self._to(
                sender, Message("", "pubsub", [b"request_response", str(count).encode()], message.id, sender)
            )
        elif op == b"list":
            query = json.loads(message.args[1]) if len(message.args) > 1 else {}
            prefix, reverse = query.get("prefix", ""), query.get("reverse", False)
            subs = self.subscriptions.get(sender, {})
            rows = [
                [bus, p, True]
                for bus, ps in subs.items()
                for p in sorted(ps)
                if (prefix.startswith(p) if reverse else p.startswith(prefix))
            ]
            self._to(
                sender,
                Message("", "pubsub", [b"list_response", json.dumps(rows).encode()], message.id, sender),
            )
