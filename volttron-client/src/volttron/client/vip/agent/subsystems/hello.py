"""The ``hello`` subsystem (docs/protocol.md §2.1).

``vip.hello(peer='')`` resolves to ``[version, responder, my_identity]``. Peers answer a hello with
``['welcome', '1.0', <own identity>, <requester>]``. The connection handshake itself
(``connect.hello.<n>``) is the core's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import RequestingSubsystem
from volttron.utils.frames import decode_frame

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core

VIP_VERSION = b"1.0"


class Hello(RequestingSubsystem):
    """Say hello to a peer (or the router) and answer peers' hellos."""

    name = "hello"

    def __init__(self, core: Core) -> None:
        super().__init__(core)

    def hello(self, peer: str = "") -> AsyncResult:
        """Send hello to ``peer``; the result is ``[version, responder, my_identity]``."""
        return self._request(peer, [b"hello"], f"hello to {peer or 'the router'!r}")

    __call__ = hello

    def _handle(self, message: Message) -> None:
        args = message.args
        if not args:
            return
        op = args[0]
        if op == b"hello":
            identity = self.core.identity.encode("iso-8859-1")
            self.reply(message, [b"welcome", VIP_VERSION, identity, message.peer.encode("iso-8859-1")])
        elif op == b"welcome":
            result = self._results.pop(message.id)
            if result is not None:
                result.set([decode_frame(a) for a in args[1:]])
