"""The VIP message properties we encode ourselves are byte for byte what pika would have sent."""

from __future__ import annotations

import pytest

from volttron.client.messagebus.rmq_pika import BasicProperties
from volttron.client.messagebus.rmq_properties import (
    BASIC_CLASS,
    TABLES_KEPT,
    EncodedProperties,
    PropertiesEncoder,
)
from volttron.client.messagebus.rmq_wire import message_headers

VIP = {**message_headers("inst.bob", "alice")}
PUBLISH = {**message_headers("__pubsub__.inst.devices.a.#", "alice"), "topic": "devices/a", "bus": ""}


def _pika(app_id, user_id, content_type, headers, message_id, type_) -> bytes:
    properties = BasicProperties(app_id=app_id, user_id=user_id, content_type=content_type, headers=headers,
                                 message_id=message_id, type=type_)
    assert properties.INDEX == BASIC_CLASS
    return b"".join(properties.encode())


@pytest.mark.parametrize("app_id, user_id, content_type", [
    ("inst.alice", "inst.alice", "application/json"),
    ("inst.alice", None, "application/json"),
    (None, None, None),
    ("inst.caf\u00e9", "inst-admin", "text/plain"),
])
@pytest.mark.parametrize("headers", [VIP, PUBLISH, {}, {"user": "\u20ac", "topic": "x" * 300}])
@pytest.mark.parametrize("message_id", ["1f0e-22", None, "\u00e9" * 127])
@pytest.mark.parametrize("type_", ["rpc", "pubsub", ""])
def test_the_same_bytes_as_pika(app_id, user_id, content_type, headers, message_id, type_) -> None:
    encoder = PropertiesEncoder(app_id, user_id, content_type)
    for _ in range(2):  # the second time from the caches
        ours = encoder.encode(headers.items(), message_id, type_)
        assert isinstance(ours, EncodedProperties) and ours.INDEX == BASIC_CLASS
        assert b"".join(ours.encode()) == _pika(app_id, user_id, content_type, headers, message_id, type_)


def test_what_pika_decodes_is_what_was_given() -> None:
    encoded = PropertiesEncoder("inst.alice", "inst.alice", "application/json").encode(PUBLISH.items(), "m1",
                                                                                        "pubsub")
    decoded = BasicProperties()
    decoded.decode(encoded.encoded)
    assert (decoded.app_id, decoded.user_id, decoded.content_type, decoded.message_id, decoded.type) == (
        "inst.alice", "inst.alice", "application/json", "m1", "pubsub")
    assert decoded.headers == PUBLISH


def test_pika_gets_a_new_list_of_pieces_each_time() -> None:
    encoded = PropertiesEncoder("a", "b", "c").encode((), None, "t")
    pieces = encoded.encode()
    pieces.insert(0, b"size")  # what pika's content header frame does with them
    assert encoded.encode() == [encoded.encoded]


@pytest.mark.parametrize("field", ["message_id", "type", "app_id", "header name"])
def test_a_text_longer_than_amqp_allows_is_refused(field) -> None:
    long = "x" * 256
    with pytest.raises(ValueError, match="255"):
        if field == "app_id":
            PropertiesEncoder(long, None, None)
        else:
            headers = [(long, "v")] if field == "header name" else []
            PropertiesEncoder("a", "b", "c").encode(headers, long if field == "message_id" else "m",
                                                    long if field == "type" else "t")


def test_remembered_tables_are_bounded_and_right() -> None:
    encoder = PropertiesEncoder("inst.alice", "inst.alice", "application/json")
    for i in range(TABLES_KEPT * 2 + 3):
        headers = {**PUBLISH, "topic": f"devices/{i}"}
        ours = b"".join(encoder.encode(headers.items(), str(i), "pubsub").encode())
        assert ours == _pika("inst.alice", "inst.alice", "application/json", headers, str(i), "pubsub")
        assert len(encoder._tables) <= TABLES_KEPT


@pytest.mark.parametrize("headers", [VIP, PUBLISH, {}])
@pytest.mark.parametrize("message_id", ["1f0e-22", None])
def test_a_table_encoded_apart_gives_the_same_properties(headers, message_id) -> None:
    encoder = PropertiesEncoder("inst.alice", "inst.alice", "application/json")
    table = encoder.headers_table(headers.items())
    assert table == encoder.headers_table(list(headers.items()))
    ours = encoder.encode_with_table(table, message_id, "pubsub")
    assert ours.encoded == encoder.encode(headers.items(), message_id, "pubsub").encoded
    pikas = _pika("inst.alice", "inst.alice", "application/json", headers, message_id, "pubsub")
    assert ours.encoded == pikas
