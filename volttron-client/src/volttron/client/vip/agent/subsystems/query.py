"""The ``query`` subsystem (docs/protocol.md §2.4): ask the router for a platform property.

``vip.query('serverkey').get()`` (or ``vip.query.query(...)``). Names the router answers include
``addresses``, ``local_address``, ``serverkey``, ``instance-name``, ``bind-web-address``,
``platform-version``, ``message-bus``. An unknown name resolves to None.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.errors import VIPError
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import RequestingSubsystem
from volttron.utils.frames import decode_frame

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core

_log = logging.getLogger(__name__)


class Query(RequestingSubsystem):
    """Query platform properties; also learns the instance name when it is not configured."""

    name = "query"

    def __init__(self, core: Core) -> None:
        super().__init__(core)

    def query(self, prop: str, peer: str = "") -> AsyncResult:
        """The value of ``prop`` (JSON values parsed, text as text, nothing as None)."""
        return self._request(peer, [prop.encode("iso-8859-1")], f"query {prop!r}")

    __call__ = query

    def on_connected(self) -> None:
        if self.core.instance_name is None:
            self.core.spawn(self._learn_instance_name)

    def _learn_instance_name(self) -> None:
        try:
            name = self.query("instance-name").get(timeout=self.core.welcome_timeout)
        except Exception as exc:  # only a convenience: health alerts fall back to the identity
            _log.debug("instance-name query failed: %s", exc)
            return
        if isinstance(name, str) and name and self.core.instance_name is None:
            self.core.instance_name = name

    def _handle(self, message: Message) -> None:
        args = message.args
        result = self._results.pop(message.id)
        if result is None:
            return
        if len(args) >= 2 and args[0] == b"":
            value = args[1]
            result.set(decode_frame(value) if value else None)
        elif len(args) == 1 and args[0] == b"":
            result.set(None)
        else:
            result.set_exception(VIPError(-1, f"unexpected query reply {args[:2]!r}", message.peer, "query"))
