"""The AMQP frames of a publish and of a delivery, made and read without pika's frame objects.

pika builds a publish as three frame objects (``Basic.Publish``, a content header, the body), each
marshalled through generic code, and reads every incoming frame into a frame object, its method or
properties through generic decoders, before a content assembler joins the three. In a profile of an
agent in the pub/sub benchmark that was the largest piece of each process's Python per message:
about 9 µs of a publish, about 14.5 µs of a delivery.

:class:`PublishFrames` makes the bytes of a publish on one channel: the method frame, the same for
every publish with one exchange and routing key, is remembered whole; the content header and the
body frames (cut at the connection's negotiated ``frame_max``, as pika cuts them) are put around
the properties :mod:`~.rmq_properties` encoded. The bytes are those pika sends (a test compares
them); :func:`publish` hands them to pika's output path as one buffer, with pika's counters kept.

:class:`FrameReader` takes the place of a connection's ``_on_data_available``: a complete
``Basic.Deliver`` with its content header and body frames, for a channel whose content assembler
is idle and a consumer pika knows, is decoded here and handed to that consumer as pika's channel
would (``callback(channel, method, properties, body)``); the properties are decoded into a
:class:`DeliveredProperties` (a pika ``BasicProperties``), with header tables of long strings
decoded here and remembered by their bytes. Anything else - other methods (confirmations, channel
closes), heartbeats, a delivery to a cancelled or unknown consumer, a frame shape this does not
expect, a table value of another type - goes through pika's own decoder and dispatch one frame at a
time, exactly as pika would have handled it. An incomplete delivery is waited for (pika delivers
nothing before its last frame either), unless its body is large: then its frames go to pika as
they come.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from volttron.client.messagebus.rmq_pika import Basic, BasicProperties, frame_module, pika_data
from volttron.client.messagebus.rmq_pika import exceptions as pika_errors
from volttron.client.messagebus.rmq_properties import BASIC_CLASS, EncodedProperties, short_string

_log = logging.getLogger(__name__)

FRAME_END = 0xCE
_END = b"\xce"
_PUBLISH_ID = b"\x00\x3c\x00\x28"  # basic (60), publish (40)
_DELIVER_ID = b"\x00\x3c\x00\x3c"  # basic (60), deliver (60)
_FRAME = struct.Struct(">BHI")
_HEADER = struct.Struct(">BHIHHQ")
_BODY_SIZE = struct.Struct(">Q")
_U32 = struct.Struct(">I")
METHODS_KEPT = 1024
"""Publish method frames remembered per channel (all are forgotten when there are more)."""
TABLES_KEPT = 256
"""Decoded headers tables remembered per connection (all are forgotten when there are more)."""
TABLE_BYTES_KEPT = 1024
"""The largest encoded headers table remembered (VIP's are about 200 bytes; what peers send decides
the rest, so larger ones are decoded each time rather than held)."""
WAIT_LIMIT = 256 * 1024
"""A delivery's body up to this size is waited for whole; a larger one goes to pika frame by frame."""
_DELIVER_NAME = Basic.Deliver.NAME


class PublishFrames:
    """The frames of publishes on one channel of one connection (see the module docstring)."""

    def __init__(self, channel_number: int, body_max: int) -> None:
        if not 0 < channel_number < 65536 or body_max <= 0:
            raise ValueError(f"no frames for channel {channel_number} with bodies of {body_max} bytes")
        self.channel_number = channel_number
        self.body_max = body_max
        self._methods: dict[tuple[str, str], bytes] = {}

    def method_frame(self, exchange: str, routing_key: str) -> bytes:
        """The ``Basic.Publish`` frame (ticket 0, neither mandatory nor immediate), remembered."""
        frame = self._methods.get((exchange, routing_key))
        if frame is None:
            payload = b"".join((_PUBLISH_ID, b"\x00\x00", short_string(exchange), short_string(routing_key),
                                b"\x00"))
            frame = _FRAME.pack(1, self.channel_number, len(payload)) + payload + _END
            if len(self._methods) >= METHODS_KEPT:
                self._methods.clear()
            self._methods[exchange, routing_key] = frame
        return frame

    def frames(self, exchange: str, routing_key: str, properties: bytes, body: bytes) -> tuple[bytes, int]:
        """The bytes of a publish (method, content header, body frames) and how many frames they are.

        Raises ValueError for an exchange or routing key longer than a short string holds.
        """
        size = len(body)
        channel = self.channel_number
        header = _HEADER.pack(2, channel, 12 + len(properties), BASIC_CLASS, 0, size)
        method = self.method_frame(exchange, routing_key)
        if not size:
            return b"".join((method, header, properties, _END)), 2
        body_max = self.body_max
        if size <= body_max:
            return b"".join((method, header, properties, _END, _FRAME.pack(3, channel, size), body, _END)), 3
        pieces: list[bytes | memoryview] = [method, header, properties, _END]
        view = memoryview(body)
        for start in range(0, size, body_max):
            chunk = view[start:start + body_max]
            pieces += (_FRAME.pack(3, channel, len(chunk)), chunk, _END)
        return b"".join(pieces), 2 + (size + body_max - 1) // body_max


def publish_frames(channel: Any) -> PublishFrames | None:
    """A :class:`PublishFrames` for an open pika channel, or None when its connection is not what this
    knows (pika's own ``basic_publish`` is used then)."""
    connection = getattr(channel, "connection", None)
    body_max = getattr(connection, "_body_max_length", None)
    if not (isinstance(body_max, int) and callable(getattr(connection, "_adapter_emit_data", None))
            and isinstance(getattr(connection, "bytes_sent", None), int)
            and isinstance(getattr(connection, "frames_sent", None), int)
            and isinstance(getattr(channel, "channel_number", None), int)
            and hasattr(channel, "_state") and hasattr(channel, "OPEN")):
        _log.debug("publishes go through pika's basic_publish (its connection has changed)")
        return None
    try:
        return PublishFrames(channel.channel_number, body_max)
    except ValueError:
        return None


def publish(frames: PublishFrames | None, channel: Any, exchange: str, routing_key: str, body: bytes,
            properties: Any) -> None:
    """Publish ``body`` on ``channel`` as its ``basic_publish`` would, through ``frames`` when it can.

    The channel must be open (pika's ``ChannelWrongStateError`` otherwise); the bytes go to pika's
    output path in one piece, its sent bytes and frames counted as pika counts them.
    """
    if frames is None or type(properties) is not EncodedProperties or type(body) is not bytes:
        channel.basic_publish(exchange, routing_key, body, properties)
        return
    if channel._state != channel.OPEN:
        channel._raise_if_not_open()
    try:
        data, count = frames.frames(exchange, routing_key, properties.encoded, body)
    except ValueError as exc:  # a key longer than a short string: pika's own error
        raise pika_errors.ShortStringTooLong(str(exc)) from exc
    connection = channel.connection
    connection.bytes_sent += len(data)
    connection.frames_sent += count
    connection._adapter_emit_data(data)


class DeliveredProperties(BasicProperties):  # type: ignore[misc]
    """pika's ``BasicProperties`` of a delivery, with only what the message carries set on it."""

    content_type = content_encoding = headers = delivery_mode = priority = correlation_id = None
    reply_to = expiration = message_id = timestamp = type = user_id = app_id = cluster_id = None

    def __init__(self) -> None:  # the properties are set by the reader
        pass


_SHORT_STRING, _TABLE, _OCTET, _LONG_LONG = "shortstr", "table", "octet", "timestamp"
_PROPERTIES = (  # AMQP 0-9-1 §4.2.6.1, in the order they are encoded: (flag, name, type)
    (1 << 15, "content_type", _SHORT_STRING), (1 << 14, "content_encoding", _SHORT_STRING),
    (1 << 13, "headers", _TABLE), (1 << 12, "delivery_mode", _OCTET), (1 << 11, "priority", _OCTET),
    (1 << 10, "correlation_id", _SHORT_STRING), (1 << 9, "reply_to", _SHORT_STRING),
    (1 << 8, "expiration", _SHORT_STRING), (1 << 7, "message_id", _SHORT_STRING),
    (1 << 6, "timestamp", _LONG_LONG), (1 << 5, "type", _SHORT_STRING), (1 << 4, "user_id", _SHORT_STRING),
    (1 << 3, "app_id", _SHORT_STRING), (1 << 2, "cluster_id", _SHORT_STRING),
)

_NO_PROPERTIES: dict[str, Any] = {name: None for _, name, _ in _PROPERTIES}


def _text(data: bytes) -> str | bytes:
    """A short or long string as pika decodes it: text when UTF-8, else the bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


class _Unusual(Exception):
    """A shape this module leaves to pika."""


class FrameReader:
    """A connection's frame reader (its ``_on_data_available``); see the module docstring."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._tables: dict[bytes, dict[Any, Any]] = {}
        self._prefixes: dict[int, str] = {}
        self._plans: dict[int, tuple[tuple[str, str], ...]] = {}
        """Per flag word, the properties it announces (name, type), in order."""
        self.fast = 0
        """Deliveries decoded here."""
        self.slow = 0
        """Frames left to pika."""

    def data_available(self, data: bytes) -> None:
        """Read the frames in what the connection has buffered and ``data``, handling each."""
        connection = self._connection
        buffer = connection._frame_buffer
        buffer = buffer + data if buffer else data
        end = len(buffer)
        pos = 0
        try:
            while end - pos >= 7:
                if buffer[pos] == 1 and buffer[pos + 7:pos + 11] == _DELIVER_ID:
                    used = self._delivery(buffer, pos, end)
                    if used > 0:
                        connection.bytes_received += used - pos
                        pos = used
                        continue
                    if used == 0:
                        break  # a delivery not complete yet: wait for the rest
                if buffer[pos:pos + 4] == b"AMQP":
                    used, frame = frame_module.decode_frame(buffer[pos:])
                else:
                    size = _U32.unpack_from(buffer, pos + 3)[0]
                    if pos + size + 8 > end:
                        break
                    used, frame = frame_module.decode_frame(buffer[pos:pos + size + 8])
                if frame is None:
                    break
                pos += used
                connection.bytes_received += used
                self.slow += 1
                connection._process_frame(frame)
        finally:
            connection._frame_buffer = buffer[pos:] if pos < end else b""

    def _delivery(self, buffer: bytes, pos: int, end: int) -> int:
        """Handle the delivery whose method frame starts at ``pos``: where it ends (> 0), 0 to wait
        for more data, -1 to leave the frame to pika."""
        channel_number, size = _FRAME.unpack_from(buffer, pos)[1:]
        header_at = pos + size + 8
        if header_at > end:
            return 0 if size < WAIT_LIMIT else -1
        connection = self._connection
        channel = connection._channels.get(channel_number)
        assembler = getattr(channel, "_content_assembler", None)
        if buffer[header_at - 1] != FRAME_END or getattr(assembler, "_method_frame", True) is not None:
            return -1  # no such channel, or one amid a message pika is assembling
        prefix = self._prefixes.get(channel_number)
        if prefix is None:
            prefix = self._prefixes[channel_number] = str(channel_number)
        pending = connection.callbacks._stack.get(prefix)
        if pending and _DELIVER_NAME in pending:
            return -1
        try:
            method = self._deliver_method(buffer, pos + 11, header_at - 1)
        except (_Unusual, IndexError, struct.error):
            return -1
        if header_at + 7 > end:
            return 0
        kind, number, header_size = _FRAME.unpack_from(buffer, header_at)
        body_at = header_at + header_size + 8
        if kind != 2 or number != channel_number or header_size < 14:
            return -1
        if body_at > end:
            return 0 if header_size < WAIT_LIMIT else -1
        if buffer[body_at - 1] != FRAME_END:
            return -1
        class_id, _weight, body_size = struct.unpack_from(">HHQ", buffer, header_at + 7)
        if class_id != BASIC_CLASS:
            return -1
        fragments = []
        seen = 0
        at = body_at
        while seen < body_size:
            if at + 7 > end:
                return 0 if body_size < WAIT_LIMIT else -1
            kind, number, fragment_size = _FRAME.unpack_from(buffer, at)
            if kind != 3 or number != channel_number or fragment_size > body_size - seen:
                return -1  # not the body frame expected, or longer than the body: pika's error
            after = at + fragment_size + 8
            if after > end:
                return 0 if body_size < WAIT_LIMIT else -1
            if buffer[after - 1] != FRAME_END:
                return -1
            fragments.append(buffer[at + 7:after - 1])
            seen += fragment_size
            at = after
        if seen != body_size:
            return -1  # longer than announced: pika's error
        tag = method.consumer_tag
        consumers = getattr(channel, "_consumers", None)
        cancelled = getattr(channel, "_cancelled", None)
        if not isinstance(consumers, dict) or cancelled is None or tag in cancelled:
            return -1
        callback = consumers.get(tag)
        if callback is None:
            return -1
        properties = self._properties(buffer, header_at + 19, body_at - 1)
        body = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        connection.frames_received += 2 + len(fragments)
        self.fast += 1
        callback(channel, method, properties, body)
        return at

    @staticmethod
    def _deliver_method(buffer: bytes, at: int, end: int) -> Any:
        """The ``Basic.Deliver`` in ``buffer[at:end]`` (its arguments exactly fill it)."""
        method = Basic.Deliver.__new__(Basic.Deliver)
        length = buffer[at]
        method.consumer_tag = _text(buffer[at + 1:at + 1 + length])
        at += 1 + length
        method.delivery_tag = _BODY_SIZE.unpack_from(buffer, at)[0]
        method.redelivered = (buffer[at + 8] & 1) != 0
        at += 9
        length = buffer[at]
        method.exchange = _text(buffer[at + 1:at + 1 + length])
        at += 1 + length
        length = buffer[at]
        method.routing_key = _text(buffer[at + 1:at + 1 + length])
        if at + 1 + length != end:
            raise _Unusual("the method's arguments do not fill its frame")
        return method

    def _properties(self, buffer: bytes, at: int, end: int) -> Any:
        """The content header's properties in ``buffer[at:end]``; pika decodes a shape this does not."""
        try:
            return self._decode_properties(buffer, at, end)
        except Exception:  # noqa: BLE001 - whatever the shape, pika's decoder has the last word
            properties = BasicProperties()
            properties.decode(buffer[at:end])
            return properties

    def _decode_properties(self, buffer: bytes, at: int, end: int) -> Any:
        flags = (buffer[at] << 8) | buffer[at + 1]
        plan = self._plans.get(flags)
        if plan is None:
            if flags & 1:
                raise _Unusual("a second flag word")
            plan = tuple((name, kind) for bit, name, kind in _PROPERTIES if flags & bit)
            if len(self._plans) < 64:  # the few shapes peers send; anything else is planned each time
                self._plans[flags] = plan
        at += 2
        properties = DeliveredProperties()
        properties.__dict__ = values = _NO_PROPERTIES.copy()  # all fourteen, as pika's (for == and repr)
        for name, kind in plan:
            if kind is _SHORT_STRING:
                length = buffer[at]
                data = buffer[at + 1:at + 1 + length]
                try:
                    values[name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    values[name] = data
                at += 1 + length
            elif kind is _TABLE:
                after = at + 4 + _U32.unpack_from(buffer, at)[0]
                values[name] = self._table(buffer[at:after])
                at = after
            elif kind is _OCTET:
                values[name] = buffer[at]
                at += 1
            else:
                values[name] = _BODY_SIZE.unpack_from(buffer, at)[0]
                at += 8
        if at > end:
            raise _Unusual("the properties run past their frame")
        return properties

    def _table(self, encoded: bytes) -> dict[Any, Any]:
        """A headers table (with its size) as pika decodes it; a copy of the one remembered when all its
        values are long strings and it is small (others are decoded each time, by pika if not all
        long strings)."""
        table = self._tables.get(encoded)
        if table is None:
            table = self._decode_table(encoded)
            if table is None:
                decoded, used = pika_data.decode_table(encoded, 0)
                if used != len(encoded):  # an entry overruns the table: pika's decoder reads on from there
                    raise _Unusual("the table's entries overrun it")
                return decoded
            if len(encoded) > TABLE_BYTES_KEPT:
                return table
            if len(self._tables) >= TABLES_KEPT:
                self._tables.clear()
            self._tables[encoded] = table
        return dict(table)

    @staticmethod
    def _decode_table(encoded: bytes) -> dict[Any, Any] | None:
        """A table of long strings (None when a value has another type)."""
        end = len(encoded)
        at = 4
        table: dict[Any, Any] = {}
        while at < end:
            length = encoded[at]
            key = _text(encoded[at + 1:at + 1 + length])
            at += 1 + length
            if encoded[at:at + 1] != b"S":
                return None
            size = _U32.unpack_from(encoded, at + 1)[0]
            table[key] = _text(encoded[at + 5:at + 5 + size])
            at += 5 + size
        if at != end:
            raise _Unusual("the table's entries overrun it")
        return table


def read_frames_here(connection: Any) -> FrameReader | None:
    """Make an open pika connection read its frames with a :class:`FrameReader`; the reader, or None
    when the connection is not what this knows (pika keeps reading then)."""
    if not (isinstance(getattr(connection, "_frame_buffer", None), bytes)
            and isinstance(getattr(connection, "bytes_received", None), int)
            and isinstance(getattr(connection, "frames_received", None), int)
            and isinstance(getattr(connection, "_channels", None), dict)
            and isinstance(getattr(getattr(connection, "callbacks", None), "_stack", None), dict)
            and callable(getattr(connection, "_process_frame", None))
            and callable(getattr(connection, "_on_data_available", None))):
        _log.debug("pika reads the frames (its connection has changed)")
        return None
    reader = FrameReader(connection)
    connection._on_data_available = reader.data_available
    return reader
