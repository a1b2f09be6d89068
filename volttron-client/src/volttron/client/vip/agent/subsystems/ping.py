"""The ``ping`` subsystem (docs/protocol.md §2.2).

Peers answer ``['ping', ...]`` with the same arguments, the first replaced by ``'pong'``.

Compatibility quirk kept on purpose: ``vip.ping(peer)`` sends ``['drop', peer]`` to the **router**
(as every original version does), which echoes ``['pong', peer]``; the result is ``[peer]``. It
proves the router is there, not the peer. :meth:`Ping.ping_peer` pings the peer itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import RequestingSubsystem
from volttron.utils.frames import decode_frame, encode_frame

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core


class Ping(RequestingSubsystem):
    """Ping the router or a peer, and answer pings."""

    name = "ping"

    def __init__(self, core: Core) -> None:
        super().__init__(core)

    def ping(self, peer: str, *args: Any) -> AsyncResult:
        """The original call: ``['drop', peer]`` to the router; resolves to ``[peer]``."""
        return self._send("", ["drop", peer], f"ping of the router for {peer!r}")

    __call__ = ping

    def ping_peer(self, peer: str, *args: Any) -> AsyncResult:
        """Ping ``peer`` itself; resolves to ``list(args)`` echoed back, or fails with Unreachable."""
        return self._send(peer, ["ping", *args], f"ping of {peer!r}")

    def _send(self, peer: str, args: list[Any], description: str) -> AsyncResult:
        return self._request(peer, [encode_frame(a) for a in args], description)

    def _handle(self, message: Message) -> None:
        args = message.args
        if not args:
            return
        if args[0] == b"ping":
            self.reply(message, [b"pong", *args[1:]])
        elif args[0] == b"pong":
            result = self._results.pop(message.id)
            if result is not None:
                result.set([decode_frame(a) for a in args[1:]])
