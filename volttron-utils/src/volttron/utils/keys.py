"""CURVE key pairs and their encodings (docs/protocol.md §8.1, §4.5).

Keys are X25519 (the curve ZeroMQ's CURVE uses), made with ``cryptography`` so that this package
needs no ZeroMQ. On disk and on the wire a key is 43 characters of URL-safe base64 without padding.
ZeroMQ wants the 40-character Z85 form, which :func:`to_z85` gives. :func:`decode_key` reads every
form the original platform accepted.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from volttron.utils.errors import KeyFormatError

KEY_LENGTH = 43
"""Length of the URL-safe base64 form of a 32-byte key."""

_Z85_CHARS = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUES = {c: i for i, c in enumerate(_Z85_CHARS)}


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair, both halves in the 43-character URL-safe base64 form."""

    public: str
    secret: str

    def as_dict(self) -> dict[str, str]:
        """The keystore form ``{"public": ..., "secret": ...}``."""
        return {"public": self.public, "secret": self.secret}


def z85_encode(raw: bytes) -> bytes:
    """Encode bytes (a multiple of 4 long) in Z85 (ZeroMQ RFC 32)."""
    if len(raw) % 4:
        raise KeyFormatError("Z85 input length must be a multiple of 4")
    out = bytearray()
    for i in range(0, len(raw), 4):
        value = int.from_bytes(raw[i : i + 4], "big")
        chunk = bytearray(5)
        for j in range(4, -1, -1):
            value, rem = divmod(value, 85)
            chunk[j] = _Z85_CHARS[rem]
        out += chunk
    return bytes(out)


def z85_decode(text: bytes | str) -> bytes:
    """Decode Z85 text (a multiple of 5 long) to bytes."""
    try:
        data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:
        raise KeyFormatError("Z85 text must be ASCII") from None
    if len(data) % 5:
        raise KeyFormatError("Z85 input length must be a multiple of 5")
    out = bytearray()
    for i in range(0, len(data), 5):
        value = 0
        for c in data[i : i + 5]:
            try:
                value = value * 85 + _Z85_VALUES[c]
            except KeyError:
                raise KeyFormatError(f"invalid Z85 character {chr(c)!r}") from None
        if value > 0xFFFFFFFF:
            raise KeyFormatError("invalid Z85 group")
        out += value.to_bytes(4, "big")
    return bytes(out)


def encode_key(raw: bytes) -> str:
    """The 43-character URL-safe base64 form of a 32-byte key."""
    if len(raw) != 32:
        raise KeyFormatError(f"a CURVE key is 32 bytes, not {len(raw)}")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_key(key: str | bytes) -> bytes:
    """The 32 raw bytes of a key given in any form the original platform accepted.

    Accepted lengths: 40 (Z85), 43 (URL-safe base64 unpadded), 44 (padded), 54/56 (base64 of the
    Z85 text), 64 (hex of the raw key), 80 (hex of the Z85 text).
    """
    if isinstance(key, (bytes, bytearray)):
        text = bytes(key).decode("ascii", "replace")
    elif isinstance(key, str):
        text = key
    else:
        raise KeyFormatError(f"a CURVE key is text, not {type(key).__name__}")
    text = text.strip()
    n = len(text)
    try:
        if n == 40:
            return z85_decode(text)
        if n in (43, 44):
            return _b64url(text)
        if n in (54, 56):
            return z85_decode(_b64url(text))
        if n == 64:
            return binascii.unhexlify(text)
        if n == 80:
            return z85_decode(binascii.unhexlify(text))
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"malformed CURVE key of length {n}: {exc}") from exc
    raise KeyFormatError(
        f"a CURVE key is 43 characters of URL-safe base64 (or 40 Z85, 44, 54, 56, 64, 80); got {n} characters"
    )


def _b64url(text: str) -> bytes:
    # Strict: characters outside the URL-safe and standard alphabets are an error, not skipped.
    padded = (text + "=" * (-len(text) % 4)).replace("-", "+").replace("_", "/")
    raw = base64.b64decode(padded, validate=True)
    if len(raw) not in (32, 40):
        raise ValueError(f"decodes to {len(raw)} bytes")
    return raw


def normalize_key(key: str | bytes) -> str:
    """Any accepted form of a key, as its 43-character URL-safe base64 form."""
    raw = decode_key(key)
    if len(raw) != 32:
        raise KeyFormatError("key does not decode to 32 bytes")
    return encode_key(raw)


def to_z85(key: str | bytes) -> bytes:
    """The 40-byte Z85 form that ZeroMQ socket options take."""
    raw = decode_key(key)
    if len(raw) != 32:
        raise KeyFormatError("key does not decode to 32 bytes")
    return z85_encode(raw)


def is_valid_key(key: str | bytes) -> bool:
    """True when ``key`` decodes to a 32-byte key."""
    try:
        return len(decode_key(key)) == 32
    except KeyFormatError:
        return False


def public_from_secret(secret: str | bytes) -> str:
    """The public key that belongs to a secret key."""
    # cryptography costs an agent process ~7 MB; only key makers and checkers pay for it
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = X25519PrivateKey.from_private_bytes(decode_key(secret))
    return encode_key(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def generate_keypair() -> KeyPair:
    """A new random CURVE key pair.

    Neither half starts with ``-``: such keys are mistaken for options on command lines, which is
    why the original platform regenerated them too.
    """
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    for _ in range(1000):
        private = X25519PrivateKey.generate()
        secret = encode_key(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        public = encode_key(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        if not public.startswith("-") and not secret.startswith("-"):
            return KeyPair(public=public, secret=secret)
    raise KeyFormatError("could not generate a key pair")  # pragma: no cover - 1 in 2**6000
