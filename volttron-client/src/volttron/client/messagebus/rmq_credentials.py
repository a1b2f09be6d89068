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
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from volttron.utils.errors import KeyFormatError
from volttron.utils.keys import decode_key

_CONTEXT = b"volttron-rmq-password:"


def derive_password(secret_key: str, peer_public_key: str, username: str) -> str:
    """The broker password of ``username`` from one side's secret key and the other side's public key.

    Raises :class:`~volttron.utils.errors.KeyFormatError` for keys that are not 32-byte X25519 keys.
    """
    # cryptography is loaded only by processes that use the RabbitMQ bus with derived passwords
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    secret = decode_key(secret_key)
    public = decode_key(peer_public_key)
    if len(secret) != 32 or len(public) != 32:
        raise KeyFormatError("CURVE keys must be 32 bytes")
    try:
        private = X25519PrivateKey.from_private_bytes(secret)
        shared = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # an all-zero shared secret: a degenerate public key
        raise KeyFormatError(f"cannot derive a broker password: {exc}") from exc
    digest = hmac.new(shared, _CONTEXT + username.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
