"""The ``channel`` subsystem: binary streams between two peers (docs/protocol.md §2.7).

Both peers open a channel with the same name, each naming the other::

    channel = self.vip.channel('platform.control', 'install-1')   # or name=None: a random name
    channel.send(b'chunk')                                         # VIP: ['install-1', b'chunk']
    data = channel.recv(timeout=30)
    channel.close()

On the wire a message is subsystem ``channel`` with arguments ``[name, data...]``, sent to the
peer. The receiver looks the channel up by ``(sender, name)``; data for a channel nobody opened is
dropped (as in the original), so the protocol using a channel must have the receiver open it
first. Each data frame is received separately, in order.
"""

from __future__ import annotations

import logging
import secrets
import string
from typing import TYPE_CHECKING, Any

from gevent.queue import Empty, Queue

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.errors import ResultTimeout, VIPError
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.utils.errors import VolttronError

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core

_log = logging.getLogger(__name__)

NAME_LENGTH = 30
_NAME_ALPHABET = string.ascii_letters + string.digits
_CLOSED = object()


class ChannelClosed(VolttronError):
    """The channel was closed locally, or its peer failed or left."""


class VipChannel:
    """One end of a channel to ``peer``; created by :meth:`Channel.create`."""

    def __init__(self, owner: Channel, peer: str, name: str, maxsize: int) -> None:
        self._owner = owner
        self.peer = peer
        self.name = name
        self._queue: Queue[Any] = Queue(maxsize)
        self._closed = False
        self._error: BaseException | None = None

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or when the peer is gone."""
        return self._closed

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """Send ``data`` as one frame."""
        self.send_multipart([data], timeout)

    def send_multipart(self, frames: list[bytes], timeout: float | None = None) -> None:
        """Send ``frames`` in one VIP message; the peer receives them one by one."""
        if self._closed:
            raise self._closed_error()
        try:
            self._owner.core.send_vip(
                self.peer, "channel", [self.name.encode("iso-8859-1"), *frames], timeout=timeout
            )
        except VIPError as exc:
            raise ChannelClosed(f"channel {self.name!r} to {self.peer!r}: {exc}") from exc

    def recv(self, timeout: float | None = None) -> bytes:
        """The next data frame.

        Raises :class:`ResultTimeout` after ``timeout`` seconds, :class:`ChannelClosed` at the end.
        """
        if self._closed and self._queue.empty():
            raise self._closed_error()
        try:
            item: bytes = self._queue.get(timeout=timeout)  # or _CLOSED
        except Empty:
            raise ResultTimeout(
                timeout, f"no data on channel {self.name!r} from {self.peer!r} within {timeout} s"
            ) from None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # keep telling later readers
            raise self._closed_error()
        return item

    def _closed_error(self) -> ChannelClosed:
        reason = f": {self._error}" if self._error is not None else ""
        error = ChannelClosed(f"channel {self.name!r} to {self.peer!r} is closed{reason}")
        error.__cause__ = self._error
        return error

    def close(self) -> None:
        """Stop receiving; data arriving later is dropped."""
        if not self._closed:
            self._closed = True
            self._owner._forget(self)
            self._wake()

    def _deliver(self, frames: list[bytes]) -> None:
        for frame in frames:
            if self._queue.full():
                _log.warning("channel %r from %r is full; data dropped", self.name, self.peer)
                return
            self._queue.put_nowait(bytes(frame))

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if not self._queue.full():
            self._queue.put_nowait(_CLOSED)

    def __enter__(self) -> VipChannel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Channel(SubsystemBase):
    """Open channels: ``vip.channel(peer, name=None)``."""

    def __init__(self, core: Core, maxsize: int = 1024) -> None:
        super().__init__(core)
        self.maxsize = maxsize
        self._channels: dict[tuple[str, str], VipChannel] = {}
        core.register("channel", self._handle, self._handle_error)

    def create(self, peer: str, name: str | None = None) -> VipChannel:
        """A channel to ``peer`` called ``name`` (30 random letters and digits by default)."""
        if name is None:
            name = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(NAME_LENGTH))
        key = (peer, name)
        if key in self._channels:
            raise ValueError(f"channel {name!r} to {peer!r} is already open")
        channel = VipChannel(self, peer, name, self.maxsize)
        self._channels[key] = channel
        return channel

    __call__ = create

    def _forget(self, channel: VipChannel) -> None:
        if self._channels.get((channel.peer, channel.name)) is channel:
            del self._channels[(channel.peer, channel.name)]

    def _handle(self, message: Message) -> None:
        if not message.args:
            return
        name = message.text(0)
        channel = self._channels.get((message.peer, name))
        if channel is None:
            _log.debug("data for unknown channel %r from %r dropped", name, message.peer)
            return
        channel._deliver(message.args[1:])

    def _handle_error(self, error: VIPError, message: Message) -> None:
        for channel in [c for c in self._channels.values() if c.peer == (error.peer or message.peer)]:
            channel._fail(error)
            self._forget(channel)

    def peer_dropped(self, sender: Any, peer: str = "", **kwargs: Any) -> None:
        """Close the channels to ``peer`` (connected to the peer list's ``ondrop``)."""
        for channel in [c for c in self._channels.values() if c.peer == peer]:
            channel._fail(ChannelClosed(f"peer {peer!r} left the platform"))
            self._forget(channel)

    def on_stop(self) -> None:
        for channel in list(self._channels.values()):
            channel._fail(ChannelClosed("the agent is stopping"))
        self._channels.clear()
