"""How the web service reaches agents: one small interface, so the HTTP side can be tested alone.

:class:`AgentCaller` is what the HTTP handlers use; the web agent implements it over VIP RPC.
Implementations raise what an RPC caller sees: :class:`~volttron.client.vip.agent.errors.Unreachable`
(no such peer), :class:`~volttron.client.vip.agent.errors.ResultTimeout` (no answer in time),
:class:`~volttron.utils.jsonrpc.Error` and its subclasses (the peer answered with an error).
"""

from __future__ import annotations

from typing import Any, Protocol


class AgentCaller(Protocol):
    """Calls methods of platform peers on behalf of the web service."""

    def call(self, peer: str, method: str, args: list[Any], kwargs: dict[str, Any], timeout: float) -> Any:
        """The result of ``peer.method(*args, **kwargs)``, waiting at most ``timeout`` seconds."""

    def notify(self, peer: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Call ``peer.method`` without waiting for (or getting) an answer."""
