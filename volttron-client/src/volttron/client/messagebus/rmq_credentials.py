"""Broker passwords that agents and their platform compute without exchanging them.

With plain (non-TLS) credentials every agent still has its own broker user,
``<instance>.<identity>`` (docs/protocol.md §6.1). Its password is derived from the CURVE keys both sides
already hold: the agent has its secret key and the platform's public key (``VOLTTRON_SERVERKEY`` /
``known_hosts``); the platform has its secret key and the agent's public key (``auth.json``).
X25519 gives both the same shared secret, and::

    password = base64url(HMAC-SHA256(shared secret, "volttron-rmq-password:" + user name))

So a key pair the platform authorised is also a broker login for that identity only, the broker
never sees a CURVE key, and no password file needs writing or protecting. Changing an agent's keys
changes its password; the platform updates the broker user when ``auth.json`` changes.

The X25519 function is ``cryptography``'s by default (the platform, which holds that library anyway,
computes the passwords of all its agents with its one secret key). An agent process passes
:func:`x25519`, RFC 7748 in pure Python, instead: loading ``cryptography`` for one computation at
start would cost it about 7 MB. That function is not constant-time (Python's integers take time that
depends on their values), which is acceptable where it is used: an agent computes it once per
start, locally, from its own secret key and the platform's public key it was given; nobody can
make it repeat the computation with inputs of their choosing and time it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from volttron.utils.errors import KeyFormatError
from volttron.utils.keys import decode_key

_CONTEXT = b"volttron-rmq-password:"
_P = 2**255 - 19
_A24 = 121665


def x25519(scalar: bytes, u_coordinate: bytes) -> bytes:
    """The X25519 function of RFC 7748 (§5): ``scalar`` times the point ``u_coordinate``, 32 bytes each.

    Pure Python (the Montgomery ladder; a few milliseconds); not constant-time, see the module
    docstring. An all-zero result (a point of small order) is returned as it is, as the RFC does.
    """
    if len(scalar) != 32 or len(u_coordinate) != 32:
        raise ValueError("X25519 takes 32-byte scalars and u-coordinates")
    k = int.from_bytes(scalar, "little")
    k = (k & ~7 & ~(1 << 255)) | (1 << 254)  # clamp (RFC 7748 §5, decodeScalar25519)
    x1 = int.from_bytes(u_coordinate, "little") & ((1 << 255) - 1)  # the top bit is ignored
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        bit = (k >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = x2 + z2, x2 - z2
        aa, bb = a * a % _P, b * b % _P
        e = aa - bb
        da, cb = (x3 - z3) * a % _P, (x3 + z3) * b % _P
        x3, z3 = (da + cb) ** 2 % _P, x1 * (da - cb) ** 2 % _P
        x2, z2 = aa * bb % _P, e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def cryptography_x25519(scalar: bytes, u_coordinate: bytes) -> bytes:
    """:func:`x25519` computed by ``cryptography`` (constant-time; loads the library, ~7 MB).

    Raises ValueError for an all-zero result.
    """
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    private = X25519PrivateKey.from_private_bytes(scalar)
    return private.exchange(X25519PublicKey.from_public_bytes(u_coordinate))


def derive_password(secret_key: str, peer_public_key: str, username: str,
                    exchange: Callable[[bytes, bytes], bytes] = cryptography_x25519) -> str:
    """The broker password of ``username`` from one side's secret key and the other side's public key.

    ``exchange`` computes X25519 (:func:`cryptography_x25519` or :func:`x25519`: the same result).
    Raises :class:`~volttron.utils.errors.KeyFormatError` for keys that are not 32-byte X25519 keys,
    or a public key of small order (an all-zero shared secret).
    """
    secret = decode_key(secret_key)
    public = decode_key(peer_public_key)
    if len(secret) != 32 or len(public) != 32:
        raise KeyFormatError("CURVE keys must be 32 bytes")
    try:
        shared = exchange(secret, public)
    except ValueError as exc:
        raise KeyFormatError(f"cannot derive a broker password: {exc}") from exc
    if not any(shared):  # cryptography raises; x25519 returns it
        raise KeyFormatError("cannot derive a broker password: the public key is of small order")
    digest = hmac.new(shared, _CONTEXT + username.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
