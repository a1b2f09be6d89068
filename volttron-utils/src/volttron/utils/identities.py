"""VIP identities: the naming rule, and what the wire accepts (docs/protocol.md §1.6).

Two checks, on purpose: :func:`is_valid_identity` is the naming convention (letters, digits, ``_``,
``.``, ``-``) that the original platform only warned about; :func:`check_identity` is what a ZeroMQ
routing id can be (1 to 255 bytes, not starting with NUL) and is enforced. What an *agent* may be
called (its folder, configuration store and auth entry) is :func:`check_agent_identity`: the naming
convention, enforced, minus names starting with ``.``; every place that stores something under an
identity uses it.
"""

from __future__ import annotations

import re

from volttron.utils.errors import IdentityError

MAX_IDENTITY_BYTES = 255
MAX_AGENT_IDENTITY_LENGTH = 200
"""Longest agent identity: ``<identity>.store`` and the agent's folder name stay within 255 bytes."""
IDENTITY_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_TEXT_ENCODING = "iso-8859-1"  # identities travel as Latin-1 text frames (docs/protocol.md §1.3)


def is_valid_identity(identity: object) -> bool:
    """True when ``identity`` is a non-empty string of letters, digits, ``_``, ``.`` and ``-``."""
    return isinstance(identity, str) and IDENTITY_PATTERN.fullmatch(identity) is not None


def normalize_identity(identity: str) -> str:
    """``identity`` with every character outside the naming rule replaced by ``_``."""
    return _INVALID_CHARS.sub("_", identity)


def check_agent_identity(identity: object) -> str:
    """``identity`` when an agent may have it: its directory, configuration store and auth entry.

    The naming rule (:func:`is_valid_identity`, the published VOLTTRON's), at most
    :data:`MAX_AGENT_IDENTITY_LENGTH` characters, and not starting with ``.``: ``.`` and ``..`` name
    folders, and files of such names (``.x.store``) are hidden and skipped when a store is read, so
    what was stored for them would vanish. Else :class:`IdentityError` saying why, in one line.
    """
    if not isinstance(identity, str) or not is_valid_identity(identity):
        raise IdentityError(f"invalid agent identity {identity!r:.80}: use only letters, digits, "
                            "'_', '.' and '-'")
    if identity.startswith("."):
        raise IdentityError(f"invalid agent identity {identity!r}: it must not start with '.'")
    if len(identity) > MAX_AGENT_IDENTITY_LENGTH:
        raise IdentityError(f"invalid agent identity: longer than {MAX_AGENT_IDENTITY_LENGTH} characters")
    return identity


def get_fq_identity(identity: str, instance_name: str) -> str:
    """The fully qualified identity ``<instance_name>.<identity>`` used for certificates and RMQ users."""
    if not identity or not instance_name:
        raise IdentityError("both an identity and an instance name are needed for a fully qualified identity")
    return f"{instance_name}.{identity}"


def check_identity(identity: str | bytes) -> str:
    """``identity`` as text when it can be a VIP routing id, else :class:`IdentityError` saying why.

    It must be non-empty, at most 255 bytes as Latin-1, and not start with NUL (libzmq's
    auto-generated ids do, and the router may drop them).
    """
    if isinstance(identity, (bytes, bytearray)):
        raw = bytes(identity)
        text = raw.decode(_TEXT_ENCODING)
    elif isinstance(identity, str):
        text = identity
        try:
            raw = identity.encode(_TEXT_ENCODING)
        except UnicodeEncodeError:
            raise IdentityError(f"identity is not Latin-1 text: {identity[:40]!r}") from None
    else:
        raise IdentityError(f"an identity is text, not {type(identity).__name__}")
    if not raw:
        raise IdentityError("identity is empty")
    if len(raw) > MAX_IDENTITY_BYTES:
        raise IdentityError(f"identity is {len(raw)} bytes; at most {MAX_IDENTITY_BYTES} allowed")
    if raw[0] == 0:
        raise IdentityError("identity starts with a NUL byte (reserved for generated ids)")
    return text


REMOTE_SEPARATOR = ":"
"""Between a linked platform's name and its agent's identity in a remote principal (``B:ops.agent``)."""


def remote_principal(platform: str, identity: str) -> str:
    """The user id a caller or publisher of linked platform ``platform`` has here: ``<platform>:<identity>``.

    It never names a local user, so a remote agent holds on this platform only what an auth entry
    with this user id grants it (multi-platform.md), never a local user's capabilities by name.
    """
    return f"{platform}{REMOTE_SEPARATOR}{identity}"


def is_remote_principal(user: str) -> bool:
    """Whether ``user`` is a :func:`remote_principal` (local identities never hold the separator)."""
    return REMOTE_SEPARATOR in user
