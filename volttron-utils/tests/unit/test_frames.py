"""VIP frame payloads (reference §1.3): what goes on the wire and how we read it back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volttron.utils.errors import FrameError, VolttronError
from volttron.utils.frames import (
    VIP_SIGNATURE,
    decode_frame,
    decode_frames,
    decode_json,
    decode_text,
    encode_frame,
    encode_frames,
)


@pytest.mark.parametrize(
    "value,wire",
    [
        (None, b""),
        (b"\x00\xffraw", b"\x00\xffraw"),
        (bytearray(b"ba"), b"ba"),
        (memoryview(b"mv"), b"mv"),
        ("pubsub", b"pubsub"),
        ("caf\u00e9", b"caf\xe9"),                     # Latin-1, not UTF-8
        ("", b""),
        (3, b"3"),                                    # ASCII digits, never struct-packed
        (0, b"0"),
        (-17, b"-17"),
        (2**40, b"1099511627776"),
        (1.5, b"1.5"),
        (True, b"true"),
        (False, b"false"),
        ([1, "a"], b'[1, "a"]'),
        ((1, 2), b"[1, 2]"),
        ({"bus": "", "message": "\u20ac"}, b'{"bus": "", "message": "\\u20ac"}'),
    ],
)
def test_encode_frame(value, wire: bytes) -> None:
    assert encode_frame(value) == wire


def test_counts_are_never_binary() -> None:
    for n in (0, 1, 127, 128, 255, 256, 65536):
        frame = encode_frame(n)
        assert frame == str(n).encode("ascii")
        assert decode_frame(frame) == n


@pytest.mark.parametrize("value", ["\u20ac", "snow \u2603", "\U0001f600"])
def test_non_latin1_text_is_a_frame_error(value: str) -> None:
    with pytest.raises(FrameError, match="Latin-1") as info:
        encode_frame(value)
    assert isinstance(info.value, VolttronError)


@pytest.mark.parametrize("value", [object(), {1, 2}, 1j, {"k": object()}])
def test_unencodable_values(value) -> None:
    with pytest.raises(FrameError):
        encode_frame(value)


def test_circular_value() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(FrameError):
        encode_frame(loop)


def test_encode_frames_and_signature() -> None:
    assert VIP_SIGNATURE == b"VIP1"
    assert encode_frames(["RPC", None, 1, {"a": 1}]) == [b"RPC", b"", b"1", b'{"a": 1}']


@pytest.mark.parametrize(
    "frame,value",
    [
        (b"", ""),
        (b"pubsub", "pubsub"),
        (b"3", 3),                    # the original's re-typing: numeric text becomes a number
        (b"1716400000.87", 1716400000.87),
        (b"true", True),
        (b"null", None),
        (b'{"a": [1]}', {"a": [1]}),
        (b"caf\xe9", "caf\u00e9"),
        (b"\x00\x01\xff", "\x00\x01\xff"),
        (b"[" * 100000, "[" * 100000),  # too deep to parse: kept as text, no crash
    ],
)
def test_decode_frame(frame: bytes, value) -> None:
    assert decode_frame(frame) == value
    assert decode_frame(memoryview(frame)) == value


def test_decode_text_never_fails_and_never_retypes() -> None:
    assert decode_text(b"3") == "3"
    assert decode_text(bytes(range(256))) == bytes(range(256)).decode("latin-1")
    assert decode_text(memoryview(b"id")) == "id"


@pytest.mark.parametrize("frame", [b"", b"not json", b"{", b"[" * 100000, b"\xff"])
def test_decode_json_errors(frame: bytes) -> None:
    with pytest.raises(FrameError):
        decode_json(frame)


def test_decode_frames() -> None:
    assert decode_frames([b"RPC", b"", b'{"id": "1"}', b"7"]) == ["RPC", "", {"id": "1"}, 7]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=5) | st.lists(json_values, max_size=5))
def test_json_payload_round_trip(value) -> None:
    frame = encode_frame(value)
    frame.decode("ascii")  # JSON payloads are ASCII on the wire
    assert decode_json(frame) == value
    assert decode_frame(frame) == value


@given(st.text(alphabet=st.characters(max_codepoint=255)))
def test_latin1_text_round_trip(text: str) -> None:
    assert decode_text(encode_frame(text)) == text
