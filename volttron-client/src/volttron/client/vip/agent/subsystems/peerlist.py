"""The ``peerlist`` subsystem (docs/protocol.md §1.7).

``vip.peerlist().get()`` lists the connected peers. The router announces ``['add', peer]`` and
``['drop', peer]`` (plus the bus name on RabbitMQ); they fire ``onadd`` / ``ondrop`` with
``(sender, peer=..., message_bus=...)`` and keep :attr:`PeerList.peers_list` current.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.dispatch import Signal
from volttron.client.vip.agent.errors import VIPError
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import RequestingSubsystem
from volttron.utils.frames import TEXT_ENCODING

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core

_log = logging.getLogger(__name__)


class PeerList(RequestingSubsystem):
    """The peers the router knows, and notifications as they come and go."""

    name = "peerlist"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.onadd = Signal("onadd")
        self.ondrop = Signal("ondrop")
        self.peers_list: set[str] = set()

    def list(self) -> AsyncResult:
        """The identities of the connected peers."""
        return self._request("", [b"list"], "peer list")

    __call__ = list

    def list_with_messagebus(self) -> AsyncResult:
        """``{identity: bus}`` (RabbitMQ routers only)."""
        return self._request("", [b"list_with_messagebus"], "peer list with message bus")

    def add_peer(self, peer: str, message_bus: str | None = None) -> None:
        """Tell the router about a peer on another bus (used by a bus proxy)."""
        self._notify(b"add", peer, message_bus)

    def drop_peer(self, peer: str, message_bus: str | None = None) -> None:
        """Tell the router a peer on another bus is gone (used by a bus proxy)."""
        self._notify(b"drop", peer, message_bus)

    def _notify(self, op: bytes, peer: str, message_bus: str | None) -> None:
        args = [op, peer.encode(TEXT_ENCODING)]
        if message_bus:
            args.append(message_bus.encode(TEXT_ENCODING))
        self.core.send_vip("", "peerlist", args)

    def _handle(self, message: Message) -> None:
        args = message.args
        if not args:
            return
        op = args[0]
        if op in (b"add", b"drop") and len(args) >= 2:
            peer = message.text(1)
            bus = message.text(2) if len(args) > 2 else None
            if op == b"add":
                self.peers_list.add(peer)
                self.onadd.send(self, peer=peer, message_bus=bus)
            else:
                self.peers_list.discard(peer)
                self.ondrop.send(self, peer=peer, message_bus=bus)
            return
        result = self._results.pop(message.id)
        if result is None:
            return
        if op == b"listing":
            peers = message.texts(1)
            self.peers_list = set(peers)
            result.set(peers)
        elif op == b"listing_with_messagebus":
            try:
                result.set(json.loads(message.text(1)) if len(args) > 1 else {})
            except ValueError as exc:
                result.set_exception(VIPError(-1, f"bad peer list: {exc}", "", "peerlist"))
        elif op == b"error":
            detail = message.text(1) if len(args) > 1 else "peerlist error"
            result.set_exception(VIPError(-1, detail, "", "peerlist"))
        else:
            _log.debug("unknown peerlist operation %r", op)
