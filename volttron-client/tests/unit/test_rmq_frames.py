"""Publishes we frame ourselves are the bytes pika sends; deliveries we read are what pika hands over.

Both sides are compared with pika's own code: its ``Connection._send_message`` for a publish, and its
``Connection._on_data_available`` (frame decoder, channel dispatch, content assembler) for what a
broker sends, fed the same bytes in chunks of every size that matters.
"""

from __future__ import annotations

import random

import pytest
from pika import channel as pika_channel
from pika import connection as pika_connection
from pika import frame, spec
from pika.callback import CallbackManager

from volttron.client.messagebus.rmq_frames import (
    METHODS_KEPT,
    WAIT_LIMIT,
    DeliveredProperties,
    FrameReader,
    PublishFrames,
    publish,
    publish_frames,
    read_frames_here,
)
from volttron.client.messagebus.rmq_pika import exceptions as pika_errors
from volttron.client.messagebus.rmq_properties import EncodedProperties, PropertiesEncoder
from volttron.client.messagebus.rmq_wire import message_headers

FRAME_MAX = 4096
BODY_MAX = FRAME_MAX - 8
PROPERTY_NAMES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type", "user_id",
                  "app_id", "cluster_id")
VIP_HEADERS = message_headers("inst.bob", "alice")
PUBLISH_HEADERS = {**message_headers("__pubsub__.inst.devices.a.#", "alice"), "topic": "devices/a", "bus": ""}
BODIES = [b"", b'["a", "b"]', b"x" * (BODY_MAX - 1), b"y" * BODY_MAX, b"z" * (BODY_MAX + 1),
          bytes(range(256)) * 50]


class _Output:
    """What pika's ``_send_message`` needs of a connection, keeping what it outputs."""

    def __init__(self) -> None:
        self._body_max_length = BODY_MAX
        self.frames: list[bytes] = []

    def _output_marshaled_frames(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)


def _pika_publish(channel_number: int, exchange: str, key: str, properties, body: bytes) -> bytes:
    output = _Output()
    method = spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=False)
    pika_connection.Connection._send_message(output, channel_number, method, (properties, body))  # type: ignore
    return b"".join(output.frames), len(output.frames)


@pytest.mark.parametrize("body", BODIES, ids=lambda b: f"{len(b)}B")
@pytest.mark.parametrize("key", ["inst.bob", "__pubsub__.inst.devices.a.b.#", "\u00e9" * 127, ""])
@pytest.mark.parametrize("channel_number", [1, 2, 65535])
def test_publish_frames_are_pikas(body: bytes, key: str, channel_number: int) -> None:
    encoder = PropertiesEncoder("inst.alice", "inst.alice", "application/json")
    ours = PublishFrames(channel_number, BODY_MAX)
    for message_id in ("1f0e-22", None, "1f0e-23"):
        encoded = encoder.encode(PUBLISH_HEADERS.items(), message_id, "pubsub")
        properties = spec.BasicProperties(app_id="inst.alice", user_id="inst.alice",
                                          content_type="application/json", headers=PUBLISH_HEADERS,
                                          message_id=message_id, type="pubsub")
        assert ours.frames("volttron", key, encoded.encoded, body) == _pika_publish(
            channel_number, "volttron", key, properties, body)


def test_method_frames_are_remembered_then_forgotten() -> None:
    frames = PublishFrames(1, BODY_MAX)
    first = frames.method_frame("volttron", "inst.bob")
    assert frames.method_frame("volttron", "inst.bob") is first
    for n in range(METHODS_KEPT):
        frames.method_frame("volttron", f"k{n}")
    assert frames.method_frame("volttron", "inst.bob") == first
    with pytest.raises(ValueError):
        frames.frames("volttron", "x" * 256, b"\x00\x00", b"")


class _Channel:
    OPEN = 2

    def __init__(self, connection, state: int = 2) -> None:
        self.connection = connection
        self.channel_number = 3
        self._state = state
        self.published: list[tuple] = []

    def _raise_if_not_open(self) -> None:
        raise pika_errors.ChannelWrongStateError("Channel is closed.")

    def basic_publish(self, *args) -> None:
        self.published.append(args)


class _Emitting(_Output):
    def __init__(self) -> None:
        super().__init__()
        self.bytes_sent = 0
        self.frames_sent = 0

    def _adapter_emit_data(self, data: bytes) -> None:
        self.frames.append(data)


def test_publish_hands_pika_the_bytes_and_counts_them() -> None:
    connection = _Emitting()
    channel = _Channel(connection)
    frames = publish_frames(channel)
    assert frames is not None and frames.body_max == BODY_MAX and frames.channel_number == 3
    encoder = PropertiesEncoder("inst.alice", None, "application/json")
    encoded = encoder.encode(VIP_HEADERS.items(), "1", "rpc")
    body = b"q" * (BODY_MAX * 2 + 5)
    publish(frames, channel, "volttron", "inst.bob", body, encoded)
    properties = spec.BasicProperties(app_id="inst.alice", content_type="application/json",
                                      headers=VIP_HEADERS, message_id="1", type="rpc")
    expected, count = _pika_publish(3, "volttron", "inst.bob", properties, body)
    assert connection.frames == [expected]
    assert (connection.bytes_sent, connection.frames_sent) == (len(expected), count) and count == 5
    assert channel.published == []


def test_publish_leaves_what_it_does_not_frame_to_pika() -> None:
    connection = _Emitting()
    channel = _Channel(connection)
    frames = publish_frames(channel)
    pika_properties = spec.BasicProperties(type="rpc")
    publish(frames, channel, "volttron", "k", b"b", pika_properties)
    publish(None, channel, "volttron", "k", b"b", EncodedProperties(b"\x00\x00"))
    publish(frames, channel, "volttron", "k", bytearray(b"b"), EncodedProperties(b"\x00\x00"))
    assert len(channel.published) == 3 and connection.frames == []
    with pytest.raises(pika_errors.ShortStringTooLong):
        publish(frames, channel, "volttron", "k" * 300, b"b", EncodedProperties(b"\x00\x00"))
    closed = _Channel(connection, state=0)
    with pytest.raises(pika_errors.ChannelWrongStateError):
        publish(frames, closed, "volttron", "k", b"b", EncodedProperties(b"\x00\x00"))
    assert connection.frames == [] and connection.bytes_sent == 0
    assert publish_frames(_Channel(object())) is None


# -- reading ---------------------------------------------------------------------------------------


class _Connection:
    """A pika connection's reading side: its frame buffer, counters, channels, callbacks and dispatch."""

    _process_frame = pika_connection.Connection._process_frame
    _process_callbacks = pika_connection.Connection._process_callbacks
    _is_method_frame = pika_connection.Connection._is_method_frame
    _has_pending_callbacks = pika_connection.Connection._has_pending_callbacks
    _deliver_frame_to_channel = pika_connection.Connection._deliver_frame_to_channel
    _read_frame = pika_connection.Connection._read_frame
    _trim_frame_buffer = pika_connection.Connection._trim_frame_buffer
    _on_data_available = pika_connection.Connection._on_data_available

    def __init__(self) -> None:
        self._frame_buffer = b""
        self.bytes_received = 0
        self.frames_received = 0
        self.callbacks = CallbackManager()
        self._channels: dict = {}
        self._heartbeat_checker = None
        self.calls: list[tuple] = []
        self.is_open = True
        for number in (1, 2):
            channel = pika_channel.Channel(self, number, None)
            channel._state = channel.OPEN
            channel._consumers["ctag"] = self._consumer(number, "ctag")
            channel._consumers["other"] = self._consumer(number, "other")
            self._channels[number] = channel
        self.callbacks.add(2, spec.Basic.Ack, self._on_ack, one_shot=False)

    def _on_ack(self, frame_value) -> None:
        self.calls.append(("ack", frame_value.method.delivery_tag, frame_value.method.multiple))

    def _consumer(self, number: int, tag: str):
        def consume(channel, method, properties, body) -> None:
            assert channel is self._channels[number]
            assert isinstance(method, spec.Basic.Deliver) and isinstance(properties, spec.BasicProperties)
            seen = dict(vars(properties))  # all fourteen, as pika's decoder sets them
            assert set(seen) == set(PROPERTY_NAMES) and properties.encode() is not None
            self.calls.append((number, tag, vars_of(method), seen, body))
        return consume

    def state(self) -> tuple:
        return self.calls, self.bytes_received, self.frames_received, self._frame_buffer


def vars_of(method) -> dict:
    return {n: getattr(method, n) for n in ("consumer_tag", "delivery_tag", "redelivered", "exchange",
                                            "routing_key")}


def _delivery(channel: int, properties: spec.BasicProperties, body: bytes, tag: str = "ctag",
              key: str = "inst.bob", delivery_tag: int = 7, redelivered: bool = False) -> bytes:
    method = spec.Basic.Deliver(consumer_tag=tag, delivery_tag=delivery_tag, redelivered=redelivered,
                                exchange="volttron", routing_key=key)
    pieces = [frame.Method(channel, method).marshal(), frame.Header(channel, len(body), properties).marshal()]
    for start in range(0, len(body), BODY_MAX):
        pieces.append(frame.Body(channel, body[start:start + BODY_MAX]).marshal())
    return b"".join(pieces)


def _vip(message_id: str | None = "1f-2", headers: dict | None = None, **more) -> spec.BasicProperties:
    return spec.BasicProperties(content_type="application/json",
                                headers=VIP_HEADERS if headers is None else headers, message_id=message_id,
                                type="rpc", user_id="inst.alice", app_id="inst.alice", **more)


ACK = frame.Method(2, spec.Basic.Ack(delivery_tag=12, multiple=True)).marshal()
HEARTBEAT = frame.Heartbeat().marshal()

STREAMS = {
    "vip": _delivery(1, _vip(), b'["x"]') + _delivery(1, _vip(None), b'["y"]', delivery_tag=8),
    "publication": _delivery(1, _vip(headers=PUBLISH_HEADERS, message_id="m"), b'{"message": 1}',
                             key="__pubsub__.inst.devices.a.#"),
    "bodies": b"".join(_delivery(1, _vip(), body, delivery_tag=n) for n, body in enumerate(BODIES)),
    "mixed": (_delivery(1, _vip(), b"a") + ACK + HEARTBEAT + _delivery(2, _vip(), b"b", tag="other")
              + ACK + _delivery(1, _vip(), b"c", redelivered=True)),
    "unusual properties": b"".join(_delivery(1, p, b"u") for p in (
        spec.BasicProperties(),
        spec.BasicProperties(delivery_mode=2, priority=5, timestamp=1_700_000_000, correlation_id="c",
                             reply_to="r", expiration="60000", content_encoding="gzip", cluster_id="k"),
        _vip(headers={"n": 5, "nested": {"a": [1, "b"]}, "flag": True}),
        _vip(headers={"x-received-from": [{"uri": "amqp://up", "exchange": "volttron", "redelivered": False}],
                      "user": "alice"}),
        _vip(headers={}),
        spec.BasicProperties(headers={"caf\u00e9": "\u20ac", "": ""}, user_id="\u00e9"),
    )),
    "unknown consumer and channel": (_delivery(1, _vip(), b"a", tag="nobody") + _delivery(1, _vip(), b"b")
                                     + _delivery(3, _vip(), b"c") + _delivery(1, _vip(), b"d")),
    "non-utf-8 texts": _delivery(1, spec.BasicProperties(app_id=b"\xff\xfe", headers={"user": b"\xff"}),
                                 b"\xff", tag="ctag", key="k"),
}


def _feed(connection, stream: bytes, chunk: int, read) -> None:
    for start in range(0, len(stream), chunk):
        read(stream[start:start + chunk])


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("chunk", [1, 7, 11, 100, 4096, 1 << 20])
def test_deliveries_read_as_pika_reads_them(name: str, chunk: int) -> None:
    stream = STREAMS[name]
    theirs = _Connection()
    _feed(theirs, stream, chunk, theirs._on_data_available)
    ours = _Connection()
    reader = read_frames_here(ours)
    assert reader is not None and ours._on_data_available == reader.data_available
    _feed(ours, stream, chunk, ours._on_data_available)
    assert ours.state() == theirs.state()
    assert theirs.calls, "the stream delivers something"


def test_the_common_deliveries_are_read_here() -> None:
    connection = _Connection()
    reader = read_frames_here(connection)
    assert reader is not None
    _feed(connection, STREAMS["vip"] + STREAMS["publication"] + ACK, 1 << 20, connection._on_data_available)
    assert (reader.fast, reader.slow) == (3, 1)
    properties_seen = connection.calls[0][3]
    assert properties_seen["headers"] == VIP_HEADERS and properties_seen["message_id"] == "1f-2"


def test_delivered_headers_are_each_the_callers_own() -> None:
    seen = []
    connection = _Connection()
    connection._channels[1]._consumers["ctag"] = lambda _c, _m, properties, _b: seen.append(properties)
    read_frames_here(connection)
    connection._on_data_available(STREAMS["vip"])
    assert isinstance(seen[0], DeliveredProperties) and seen[0].headers == seen[1].headers == VIP_HEADERS
    seen[0].headers["user"] = "mallory"
    assert seen[1].headers["user"] == "alice"
    assert seen[1].message_id is None and seen[0].reply_to is None


def test_a_delivery_amid_one_pika_assembles_goes_to_pika() -> None:
    big = b"L" * (WAIT_LIMIT + 10)
    stream = _delivery(1, _vip(), big) + _delivery(1, _vip(), b"after")
    cut = len(stream) - 2000  # the first delivery's last frames and the second are yet to come
    theirs, ours = _Connection(), _Connection()
    reader = read_frames_here(ours)
    assert reader is not None
    for read in (theirs._on_data_available, reader.data_available):
        read(stream[:cut])
        read(stream[cut:])
    assert ours.state() == theirs.state() and len(theirs.calls) == 2 and reader.fast == 1


@pytest.mark.parametrize("damage", ["frame end", "short method", "header channel", "body too long", "class"])
def test_damaged_frames_fail_as_they_fail_in_pika(damage: str) -> None:
    good = _delivery(1, _vip(), b"abc")
    method_size = int.from_bytes(good[3:7], "big") + 8
    data = bytearray(good)
    if damage == "frame end":
        data[method_size - 1] = 0
    elif damage == "short method":
        data[6] -= 1
        data[method_size - 2:method_size - 1] = b""
    elif damage == "header channel":
        data[method_size + 2] = 2
    elif damage == "body too long":
        data[-5] = 0xCE
        data[-8:-4] = (2).to_bytes(4, "big")
        data[-4:] = b"ab\xce"
        data += frame.Body(1, b"cd").marshal()
    else:
        data[method_size + 8] = 61
    outcomes = []
    for connection in (_Connection(), _Connection()):
        if outcomes:
            read_frames_here(connection)
        try:
            connection._on_data_available(bytes(data))
        except Exception as exc:  # pika's error, whatever it is
            outcomes.append((type(exc), connection.calls))
        else:
            outcomes.append((None, connection.state()))
    assert outcomes[0] == outcomes[1]


def test_a_connection_it_does_not_know_keeps_pikas_reader() -> None:
    class Other:
        _frame_buffer = bytearray()

    other = Other()
    assert read_frames_here(other) is None and "_on_data_available" not in vars(other)
    reader = FrameReader(_Connection())
    reader.data_available(b"")
    assert (reader.fast, reader.slow) == (0, 0)


def test_a_delivery_someone_awaits_through_pikas_callbacks_goes_to_pika() -> None:
    outcomes = []
    for fast in (False, True):
        connection = _Connection()
        calls = connection.calls
        connection.callbacks.add(1, spec.Basic.Deliver, lambda value, calls=calls: calls.append(
            ("awaited", value.method.delivery_tag)), one_shot=True)
        reader = read_frames_here(connection) if fast else None
        try:
            connection._on_data_available(STREAMS["vip"])
        except AttributeError as exc:  # pika's assembler, given a header without its method frame
            outcomes.append((str(exc), connection.calls))
        else:
            outcomes.append((None, connection.state()))
        if reader is not None:
            assert reader.slow >= 2 and ("awaited", 7) in connection.calls
    assert outcomes[0] == outcomes[1]


def _outcome(connection, stream: bytes, chunk: int) -> tuple:
    """What was delivered, and how the stream ended: pika's error (the link is dropped), or the bytes
    accounted for (read or kept for later: a delivery is waited for whole where pika reads its first
    frames already)."""
    try:
        _feed(connection, stream, chunk, connection._on_data_available)
    except Exception as exc:  # pika's error for what a hostile broker sent: the link is dropped
        return type(exc), connection.calls
    return None, connection.calls, connection.bytes_received + len(connection._frame_buffer)


@pytest.mark.parametrize("seed", range(300))
def test_corrupted_streams_end_as_they_end_in_pika(seed: int) -> None:
    rng = random.Random(seed)
    stream = bytearray(STREAMS["mixed"] + STREAMS["publication"] + STREAMS["unusual properties"])
    for _ in range(rng.randint(1, 4)):
        stream[rng.randrange(len(stream))] = rng.randrange(256)
    chunk = rng.choice([7, 100, 4096, 1 << 20])
    theirs, ours = _Connection(), _Connection()
    read_frames_here(ours)
    assert _outcome(ours, bytes(stream), chunk) == _outcome(theirs, bytes(stream), chunk)


def test_a_peer_sending_large_distinct_header_tables_cannot_make_the_reader_hoard_them() -> None:
    """Decoded tables are remembered by their bytes, 256 at most; a peer that sends a new 16 KB table
    with every message would make that 256 x 16 KB of bytes and as much again decoded, per
    connection. Only small tables (VIP's are about 200 bytes) are remembered."""
    connection = _Connection()
    reader = read_frames_here(connection)
    assert reader is not None
    stream = b"".join(_delivery(1, _vip(headers={"user": "alice", "pad": f"{n:05d}" + "x" * 16_000}), b"p",
                                delivery_tag=n) for n in range(300))
    _feed(connection, stream, 1 << 20, connection._on_data_available)
    assert len(connection.calls) == 300 and reader.fast == 300
    assert connection.calls[-1][3]["headers"]["pad"].startswith("00299")
    kept = sum(len(encoded) for encoded in reader._tables)
    assert kept <= 256 * 1024, f"{kept:,} bytes of tables remembered"
    connection._on_data_available(STREAMS["vip"])  # small tables are still remembered
    assert any(len(encoded) < 1024 for encoded in reader._tables)
