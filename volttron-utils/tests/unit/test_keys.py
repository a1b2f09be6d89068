"""CURVE keys: generation, every accepted encoding (checked against pyzmq), and bad keys."""

from __future__ import annotations

import base64
import binascii

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from zmq.utils import z85

from volttron.utils.errors import KeyFormatError, VolttronError
from volttron.utils.keys import (
    KEY_LENGTH,
    KeyPair,
    decode_key,
    encode_key,
    generate_keypair,
    is_valid_key,
    normalize_key,
    public_from_secret,
    to_z85,
    z85_decode,
    z85_encode,
)


@pytest.fixture(scope="module")
def zmq_pair() -> tuple[bytes, bytes]:
    """A key pair made by libzmq (Z85 form)."""
    return zmq.curve_keypair()


def _forms(z85_key: bytes) -> dict[str, str | bytes]:
    raw = z85.decode(z85_key)
    b64 = base64.urlsafe_b64encode(raw).decode()
    z85_b64 = base64.urlsafe_b64encode(z85_key).decode()
    return {
        "z85-40": z85_key.decode(),
        "z85-bytes": z85_key,
        "b64url-43": b64.rstrip("="),
        "b64url-44": b64,
        "b64url-43-bytes": b64.rstrip("=").encode(),
        "b64-standard-44": base64.b64encode(raw).decode(),
        "b64-of-z85-54": z85_b64.rstrip("="),
        "b64-of-z85-56": z85_b64,
        "hex-64": raw.hex(),
        "hex-64-upper": raw.hex().upper(),
        "hex-of-z85-80": binascii.hexlify(z85_key).decode(),
        "with-whitespace": f"  {b64.rstrip('=')}\n",
    }


def test_every_accepted_encoding_decodes_to_the_zmq_key(zmq_pair: tuple[bytes, bytes]) -> None:
    public, _ = zmq_pair
    raw = z85.decode(public)
    for name, form in _forms(public).items():
        assert decode_key(form) == raw, name
        assert to_z85(form) == public, name
        assert normalize_key(form) == encode_key(raw), name
        assert is_valid_key(form), name


def test_encode_key_is_43_url_safe_chars(zmq_pair: tuple[bytes, bytes]) -> None:
    public, _ = zmq_pair
    text = encode_key(z85.decode(public))
    assert len(text) == KEY_LENGTH == 43
    assert "=" not in text and "+" not in text and "/" not in text
    assert text == base64.urlsafe_b64encode(z85.decode(public)).decode()[:-1]


@given(st.binary(min_size=32, max_size=32))
def test_z85_matches_pyzmq(raw: bytes) -> None:
    assert z85_encode(raw) == z85.encode(raw)
    assert z85_decode(z85.encode(raw)) == raw
    assert z85_decode(z85.encode(raw).decode()) == raw
    assert decode_key(encode_key(raw)) == raw


def test_generated_pair_is_a_curve_pair() -> None:
    pair = generate_keypair()
    assert isinstance(pair, KeyPair)
    assert len(pair.public) == len(pair.secret) == 43
    assert not pair.public.startswith("-") and not pair.secret.startswith("-")
    assert zmq.curve_public(to_z85(pair.secret)) == to_z85(pair.public)
    assert public_from_secret(pair.secret) == pair.public
    assert pair.as_dict() == {"public": pair.public, "secret": pair.secret}
    assert generate_keypair() != pair


def test_public_from_zmq_secret(zmq_pair: tuple[bytes, bytes]) -> None:
    public, secret = zmq_pair
    assert to_z85(public_from_secret(secret)) == public
    assert public_from_secret(decode_key(secret).hex()) == normalize_key(public)


@pytest.fixture(scope="module")
def good() -> str:
    return generate_keypair().public


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda k: "",
        lambda k: k[:-1],                          # truncated: 42 characters
        lambda k: k[:30],
        lambda k: k + "A",                         # 44 without padding: too long for the data
        lambda k: k + "==",
        lambda k: "!" * 43,
        lambda k: k[:20] + "!" + k[21:],           # one character outside the alphabet
        lambda k: k[:20] + " " + k[21:],
        lambda k: "=" * 44,
        lambda k: "A" * 42 + "=",
        lambda k: "g" * 64,                        # not hex
        lambda k: "~" * 40,                        # not Z85
        lambda k: "a" * 54,                        # base64 of something that is not Z85
        lambda k: "\u00e9" * 40,
        lambda k: b"\xff" * 43,
        lambda k: None,
        lambda k: 12345,
    ],
)
def test_bad_keys_are_rejected(good: str, make_bad) -> None:
    bad = make_bad(good)
    with pytest.raises(KeyFormatError) as info:
        decode_key(bad)
    assert isinstance(info.value, VolttronError) and isinstance(info.value, ValueError)
    assert not is_valid_key(bad)
    with pytest.raises(KeyFormatError):
        normalize_key(bad)
    with pytest.raises(KeyFormatError):
        to_z85(bad)


def test_length_is_named_in_the_error() -> None:
    with pytest.raises(KeyFormatError, match="got 10 characters"):
        decode_key("x" * 10)


def test_z85_input_checks() -> None:
    with pytest.raises(KeyFormatError, match="multiple of 4"):
        z85_encode(b"abc")
    with pytest.raises(KeyFormatError, match="multiple of 5"):
        z85_decode("abcd")
    with pytest.raises(KeyFormatError, match="invalid Z85 character"):
        z85_decode("abc~d")
    with pytest.raises(KeyFormatError, match="invalid Z85 group"):
        z85_decode("#####")  # 85**5 - 1 does not fit in 32 bits
    with pytest.raises(KeyFormatError, match="ASCII"):
        z85_decode("\u00e9" * 5)


def test_encode_key_wants_32_bytes() -> None:
    with pytest.raises(KeyFormatError, match="32 bytes"):
        encode_key(b"short")
