"""The message-bus connection interface every VIP back-end implements.

The agent core and its subsystems are written once against this module: a :class:`Message` goes
out through :meth:`Connection.send` and comes back from :meth:`Connection.recv`, and the connection
reports its state through :class:`BusEvent` callbacks. The router is peer ``""`` on every bus.

Back-ends are chosen by name with :func:`connection_class` and imported only then, so the ZeroMQ
and RabbitMQ libraries are loaded only by the process that uses them. Their exceptions never pass
this boundary: a back-end raises :class:`BusError` (``raise BusError(...) from exc``).

Errors::

    VolttronError
     +-- BusError            the connection failed or was used wrongly
          +-- BusClosed      the connection is closed (or was never opened)
          +-- BusTimeout     a send could not be queued in time (peer gone or back-pressure)
"""

from __future__ import annotations

import difflib
import enum
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from volttron.utils.errors import VolttronError
from volttron.utils.frames import TEXT_ENCODING

BACKENDS: Mapping[str, str] = {
    "zmq": "volttron.client.messagebus.zmq",
    "rmq": "volttron.client.messagebus.rmq",
}
"""Bus name -> module defining ``CONNECTION_CLASS``. A plain mapping: nothing registers itself."""


class BusError(VolttronError):
    """A message-bus failure, translated from the back-end's own exception."""


class BusClosed(BusError):
    """The connection is closed or not open."""


class BusTimeout(BusError):
    """A message could not be handed to the bus within the time allowed."""


class BusEvent(enum.Enum):
    """What a connection reports about its link to the router."""

    CONNECTED = "connected"
    """The link is up and messages can flow (for ZeroMQ: the handshake succeeded)."""
    DISCONNECTED = "disconnected"
    """The link dropped; the back-end reconnects by itself and reports CONNECTED again."""
    CONNECT_RETRIED = "connect_retried"
    """A connection attempt failed and will be retried."""
    HANDSHAKE_FAILED = "handshake_failed"
    """The router refused the security handshake (wrong server key, or our key not authorised)."""


EventCallback = Callable[[BusEvent, str], None]


@dataclass(slots=True)
class Message:
    """One VIP message.

    ``peer`` is the other end: the recipient when sending, the sender when received (``""`` is the
    router). ``user`` is the user id the router vouches for (the sender's identity on our router).
    ``id`` is opaque and echoed in replies. Text fields hold Latin-1 text, so no byte is ever lost;
    ``args`` stay raw bytes for the subsystem to decode only what it needs.
    """

    peer: str
    subsystem: str
    args: list[bytes] = field(default_factory=list)
    id: str = ""
    user: str = ""
    platform: str = ""
    """The instance a received message came from when a broker link (RabbitMQ federation or shovel)
    delivered it; empty for messages of this platform."""

    def text(self, index: int) -> str:
        """Argument ``index`` as text (Latin-1)."""
        return bytes(self.args[index]).decode(TEXT_ENCODING)

    def texts(self, start: int = 0) -> list[str]:
        """Arguments from ``start`` on, as text."""
        return [bytes(a).decode(TEXT_ENCODING) for a in self.args[start:]]

    def json(self, index: int) -> Any:
        """Argument ``index`` parsed as JSON (raises :class:`~volttron.utils.errors.FrameError`)."""
        from volttron.utils.frames import decode_json

        return decode_json(self.args[index])


@dataclass(frozen=True)
class ConnectionParams:
    """Everything a back-end needs to open a connection.

    ``address`` is the bus address without credentials (``tcp://host:port``, ``ipc://@/path``,
    ``inproc://vip``, ``amqps://...``). Keys are the 43-character URL-safe base64 CURVE keys; a bus
    that does not use them ignores them. ``options`` carries back-end specific settings (for
    example certificates for RabbitMQ, or a shared ``context`` for in-process ZeroMQ).
    """

    address: str
    identity: str
    publickey: str | None = None
    secretkey: str | None = None
    serverkey: str | None = None
    reconnect_interval: float | None = None
    """Seconds between reconnection attempts (None: the back-end's default)."""
    instance_name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class Connection(ABC):
    """A peer's connection to the router of one platform.

    Life cycle: ``open(on_event)`` -> ``send``/``recv`` from greenlets -> ``close()``. ``recv`` is
    meant for one reader; ``send`` may be called from any greenlet and never interleaves two
    messages. Both yield to other greenlets while they wait; neither blocks the process.

    Class attributes describe the back-end, the way kombu transports do, so callers ask instead of
    testing the type.
    """

    name: ClassVar[str] = ""
    """The bus name used with :func:`connection_class`."""
    uses_curve_keys: ClassVar[bool] = False
    """True when the keys in :class:`ConnectionParams` authenticate the peer."""
    reports_disconnects: ClassVar[bool] = False
    """True when DISCONNECTED/CONNECTED events are emitted when the link drops and comes back."""
    pubsub_by_broker: ClassVar[bool] = False
    """True when the connection itself answers the ``pubsub`` requests addressed to the router and a
    broker does the fan-out (RabbitMQ): prefixes then match whole topic words, and a publish
    resolves to 1 once the broker confirmed it rather than to the number of subscribers."""

    def __init__(self, params: ConnectionParams) -> None:
        self.params = params

    @abstractmethod
    def open(self, on_event: EventCallback) -> None:
        """Start connecting; link changes are reported to ``on_event(event, detail)``.

        Returns at once. CONNECTED is reported when messages can flow, possibly before this
        returns for in-process transports.
        """

    @abstractmethod
    def send(self, message: Message, timeout: float | None = None) -> None:
        """Queue ``message`` for the router, waiting at most ``timeout`` seconds (None: no limit).

        Raises :class:`BusTimeout` when it could not be queued in time, :class:`BusClosed` when the
        connection is closed.
        """

    @abstractmethod
    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds; :class:`BusClosed` once closed."""

    @abstractmethod
    def close(self, linger: float = 1.0) -> None:
        """Close, giving queued messages up to ``linger`` seconds to leave; idempotent."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once :meth:`close` was called."""

    def statistics(self) -> dict[str, Any]:
        """Counters for status output (messages sent/received, reconnects...)."""
        return {}


def connection_class(name: str) -> type[Connection]:
    """The :class:`Connection` class of the bus called ``name`` (``"zmq"`` or ``"rmq"``).

    The back-end module is imported now, not before. An unknown name raises :class:`BusError`
    suggesting the closest known one.
    """
    key = (name or "").strip().lower()
    module_name = BACKENDS.get(key)
    if module_name is None:
        close = difflib.get_close_matches(key, list(BACKENDS), n=1, cutoff=0.3)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BusError(f"unknown message bus {name!r} (known: {', '.join(sorted(BACKENDS))}){hint}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BusError(f"message bus {key!r} is not available: {exc}") from exc
    cls = getattr(module, "CONNECTION_CLASS", None)
    if not (isinstance(cls, type) and issubclass(cls, Connection)):
        raise BusError(f"{module_name} defines no CONNECTION_CLASS")
    return cls
