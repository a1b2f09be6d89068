"""Salted password hashes for web users (``hashlib.scrypt``, or PBKDF2-SHA256 where scrypt is missing).

Stored forms::

    scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>
    pbkdf2_sha256$<iterations>$<salt, base64>$<hash, base64>

:func:`verify_password` compares in constant time and answers False (never raises) for a hash it
cannot read, so a damaged entry locks its user out instead of letting anyone in. Both functions
take tens of milliseconds on purpose; callers in an event loop run them in a thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
PBKDF2_ITERATIONS = 600_000
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 8
_MAX_SCRYPT_N = 2**20  # a stored hash may not make a login cost more than ~1 GiB of memory


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` in one of the stored forms above."""
    salt = os.urandom(SALT_BYTES)
    secret = password.encode("utf-8")
    if hasattr(hashlib, "scrypt"):
        digest = hashlib.scrypt(secret, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=HASH_BYTES)
        return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"
    digest = hashlib.pbkdf2_hmac("sha256", secret, salt, PBKDF2_ITERATIONS, HASH_BYTES)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False for any hash in a form we cannot read."""
    if not isinstance(stored, str) or not isinstance(password, str):
        return False
    parts = stored.split("$")
    secret = password.encode("utf-8")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(x) for x in parts[1:4])
            if not (1 < n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16):
                return False
            salt, expected = _unb64(parts[4]), _unb64(parts[5])
            actual = hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=len(expected),
                                    maxmem=256 * n * r + 1024 * 1024)
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations = int(parts[1])
            if not 0 < iterations <= 10_000_000:
                return False
            salt, expected = _unb64(parts[2]), _unb64(parts[3])
            actual = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, len(expected))
        else:
            return False
    except (ValueError, binascii.Error, MemoryError):
        return False
    return bool(expected) and hmac.compare_digest(actual, expected)

