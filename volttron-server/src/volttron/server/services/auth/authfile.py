"""The ``auth.json`` file: who may connect, and with which capabilities (docs/protocol.md §8.4).

::

    {"allow": [entry, ...], "deny": [entry, ...], "groups": {group: [role, ...]},
     "roles": {role: [capability, ...]}, "version": {"major": 1, "minor": 4}}

An entry matches a connection by ``domain``, ``address``, ``mechanism`` and ``credentials``; each of
them may be a ``/regex/`` (the whole value must match) and ``domain``/``address`` may be null (any).
The file may hold ``#``, ``//`` and ``/* */`` comments. It is written atomically, mode 0600.

A file that does not parse is never replaced: :func:`load_auth_file` moves it aside as
``auth.json.corrupt-<timestamp>`` and raises :class:`~volttron.utils.errors.CorruptFileError`, so the
platform refuses to start (fail closed) instead of running with an empty or default policy. A single
malformed entry is skipped with a warning; the rest of the file still applies.

Every writer (the platform, the AIP, the auth service, tests) holds an ``flock`` on
``auth.json.lock`` while it reads, changes and writes the file: :func:`edit_auth_file` does that.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from volttron.utils.config import strip_comments
from volttron.utils.errors import ConfigError, CorruptFileError, KeyFormatError
from volttron.utils.files import FileLock, atomic_write, move_aside
from volttron.utils.keys import KEY_LENGTH, normalize_key

_log = logging.getLogger(__name__)

AUTH_FILE_VERSION = {"major": 1, "minor": 4}
MECHANISMS = ("CURVE", "PLAIN", "NULL")
PLATFORM_COMMENT = "Automatically added by platform on start"
LOCK_TIMEOUT = 30.0
"""Seconds a writer waits for ``auth.json.lock`` before giving up."""
MAX_AUTH_FILE_BYTES = 4 * 1024 * 1024
"""Largest ``auth.json`` the platform writes: every reader (ZAP, pub/sub, the auth service) parses
it on each change, so its size bounds that work (thousands of agents fit)."""

Capabilities = dict[str, "dict[str, Any] | None"]


def is_regex(value: object) -> bool:
    """True for a ``/regex/`` value."""
    return isinstance(value, str) and len(value) >= 2 and value[0] == "/" and value[-1] == "/"


def value_matches(pattern: str | None, value: str) -> bool:
    """Whether ``value`` satisfies an entry field: None matches anything, ``/re/`` must match all of it."""
    if pattern is None:
        return True
    if is_regex(pattern):
        try:
            return re.fullmatch(pattern[1:-1], value) is not None
        except re.error:
            return False
    return pattern == value


@dataclass
class AuthEntry:
    """One allow or deny entry; fields in the order the file holds them."""

    domain: str | None = None
    address: str | list[str] | None = None
    mechanism: str = "CURVE"
    credentials: str | None = None
    groups: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    capabilities: Capabilities = field(default_factory=dict)
    rpc_method_authorizations: dict[str, list[str]] = field(default_factory=dict)
    comments: str | None = None
    user_id: str = ""
    identity: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.user_id:
            self.user_id = str(uuid.uuid4())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthEntry:
        """An entry from its JSON form; :class:`ConfigError` says what is wrong with it."""
        if not isinstance(data, dict):
            raise ConfigError(f"an auth entry is an object, not {type(data).__name__}")
        mechanism = str(data.get("mechanism") or "CURVE").upper()
        if mechanism not in MECHANISMS:
            raise ConfigError(f"unknown mechanism {mechanism!r} (expected one of {', '.join(MECHANISMS)})")
        credentials = data.get("credentials")
        if credentials is not None and not isinstance(credentials, str):
            raise ConfigError("credentials must be text")
        if mechanism == "CURVE" and credentials is not None and not is_regex(credentials):
            if len(credentials) != KEY_LENGTH:
                raise ConfigError(f"CURVE credentials must be {KEY_LENGTH} characters or a /regex/")
            try:
                credentials = normalize_key(credentials)
            except KeyFormatError as exc:
                raise ConfigError(f"bad CURVE credentials: {exc}") from None
        address = data.get("address")
        if address is not None and not isinstance(address, str) and not (
            isinstance(address, list) and all(isinstance(a, str) for a in address)
        ):
            raise ConfigError("address must be null, text or a list of text")
        domain = data.get("domain")
        if domain is not None and not isinstance(domain, str):
            raise ConfigError("domain must be null or text")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError("enabled must be true or false")
        return cls(
            domain=domain,
            address=address,
            mechanism=mechanism,
            credentials=credentials,
            groups=_text_list(data.get("groups"), "groups"),
            roles=_text_list(data.get("roles"), "roles"),
            capabilities=normalize_capabilities(data.get("capabilities")),
            rpc_method_authorizations=_method_authorizations(data.get("rpc_method_authorizations")),
            comments=data.get("comments"),
            user_id=str(data.get("user_id") or ""),
            identity=data.get("identity"),
            enabled=enabled,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, fields in the original's order."""
        return {
            "domain": self.domain,
            "address": self.address,
            "mechanism": self.mechanism,
            "credentials": self.credentials,
            "groups": list(self.groups),
            "roles": list(self.roles),
            "capabilities": dict(self.capabilities),
            "rpc_method_authorizations": dict(self.rpc_method_authorizations),
            "comments": self.comments,
            "user_id": self.user_id,
            "identity": self.identity,
            "enabled": self.enabled,
        }

    def matches(self, domain: str, address: str, mechanism: str, credentials: str | None) -> bool:
        """Whether a connection with these properties is described by this entry (ignores ``enabled``)."""
        if mechanism != self.mechanism or not value_matches(self.domain, domain):
            return False
        addresses = self.address if isinstance(self.address, list) else [self.address]
        if not any(value_matches(a, address) for a in addresses):
            return False
        if mechanism == "NULL":
            return True
        return credentials is not None and self.credentials is not None and value_matches(
            self.credentials, credentials)


def normalize_capabilities(value: Any) -> Capabilities:
    """``{name: None | {param: value}}`` from that form, a list of names/dicts, or a single name."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, dict):
        result: Capabilities = {}
        for name, params in value.items():
            if params is not None and not isinstance(params, dict):
                raise ConfigError(f"capability {name!r} parameters must be an object or null")
            result[str(name)] = params
        return result
    if isinstance(value, list):
        merged: Capabilities = {}
        for item in value:
            merged.update(normalize_capabilities(item))
        return merged
    raise ConfigError(f"capabilities must be an object, a list or a name, not {type(value).__name__}")


def _method_authorizations(value: Any) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("rpc_method_authorizations must map method names to lists of capabilities")
    return {str(method): _text_list(caps, f"rpc_method_authorizations[{method!r}]")
            for method, caps in value.items()}


def _text_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} must be a list of text")
    return list(value)


@dataclass
class AuthDocument:
    """The parsed content of ``auth.json``."""

    allow: list[AuthEntry] = field(default_factory=list)
    deny: list[AuthEntry] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    version: dict[str, int] = field(default_factory=lambda: dict(AUTH_FILE_VERSION))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the whole file."""
        return {
            "allow": [e.to_dict() for e in self.allow],
            "deny": [e.to_dict() for e in self.deny],
            "groups": self.groups,
            "roles": self.roles,
            "version": self.version,
        }

    def effective_capabilities(self, entry: AuthEntry) -> Capabilities:
        """The entry's capabilities plus those of its roles and of its groups' roles."""
        caps: Capabilities = dict()
        roles = list(entry.roles)
        for group in entry.groups:
            roles.extend(self.groups.get(group, []))
        for role in roles:
            for name in self.roles.get(role, []):
                caps.setdefault(str(name), None)
        caps.update(entry.capabilities)
        return caps

    def capabilities_by_user(self) -> dict[str, Capabilities]:
        """``{user_id: capabilities}`` of the enabled allow entries, as the pub/sub service needs them."""
        return {e.user_id: self.effective_capabilities(e) for e in self.allow if e.enabled}

    def find(self, user_id: str) -> AuthEntry | None:
        """The allow entry with ``user_id``, if any."""
        return next((e for e in self.allow if e.user_id == user_id), None)


def parse_auth_document(text: str, source: str = "auth.json") -> AuthDocument:
    """An :class:`AuthDocument` from the text of an auth file.

    Raises :class:`ConfigError` when the text is not a JSON object with list ``allow``/``deny``;
    individual bad entries are skipped with a warning.
    """
    try:
        data = json.loads(strip_comments(text)) if text.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} holds a JSON {type(data).__name__}, expected an object")
    doc = AuthDocument()
    for kind in ("allow", "deny"):
        raw = data.get(kind, [])
        if not isinstance(raw, list):
            raise ConfigError(f"{source}: {kind!r} must be a list")
        for i, item in enumerate(raw):
            try:
                getattr(doc, kind).append(AuthEntry.from_dict(item))
            except ConfigError as exc:
                _log.warning("%s: skipping %s entry %d: %s", source, kind, i, exc)
    for kind in ("groups", "roles"):
        raw = data.get(kind, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: {kind!r} must be an object")
        setattr(doc, kind, {str(k): _text_list(v, f"{kind}[{k!r}]") for k, v in raw.items()})
    version = data.get("version")
    if isinstance(version, dict):
        doc.version = version
    return doc


def load_auth_file(path: str | os.PathLike[str]) -> AuthDocument:
    """The document in ``path``; an empty document when the file does not exist.

    A file that does not parse is moved aside and :class:`CorruptFileError` raised (fail closed).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AuthDocument()
    except UnicodeDecodeError as exc:
        problem: str = f"{source} is not UTF-8 text ({exc.reason})"
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from exc
    else:
        try:
            return parse_auth_document(text, str(source))
        except ConfigError as exc:
            problem = str(exc)
    kept_as = str(move_aside(source))
    raise CorruptFileError(f"{problem}; kept as {kept_as}", path=str(source), kept_as=kept_as)


def save_auth_file(path: str | os.PathLike[str], document: AuthDocument) -> None:
    """Write ``document`` to ``path`` atomically, readable by the owner only.

    :class:`ConfigError` (nothing written) when it would exceed :data:`MAX_AUTH_FILE_BYTES`.
    """
    text = json.dumps(document.to_dict(), indent=4) + "\n"
    if len(text) > MAX_AUTH_FILE_BYTES:
        raise ConfigError(f"{path} would be {len(text)} bytes, more than the {MAX_AUTH_FILE_BYTES} allowed; "
                          "not changed (remove unused entries first)")
    atomic_write(path, text, 0o600)


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file every writer of ``path`` holds: ``auth.json.lock`` beside it."""
    source = Path(path)
    return source.with_name(source.name + ".lock")


@contextmanager
def auth_file_lock(path: str | os.PathLike[str], timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the ``flock`` on ``auth.json.lock`` for the block; :class:`ConfigError` after ``timeout``."""
    lock = FileLock(lock_path(path))
    if not lock.acquire(timeout):
        raise ConfigError(f"{path} stayed locked by another writer for {timeout:g} s")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def edit_auth_file(path: str | os.PathLike[str], timeout: float = LOCK_TIMEOUT) -> Iterator[AuthDocument]:
    """Read ``path`` under its lock, let the block change the document, write it back if it changed.

    The file is (re)written when the block changed anything or the file did not exist; when the
    block raises, nothing is written. A corrupt file raises :class:`CorruptFileError` (and is kept).
    """
    with auth_file_lock(path, timeout):
        document = load_auth_file(path)
        before = document.to_dict() if Path(path).exists() else None
        yield document
        if document.to_dict() != before:
            save_auth_file(path, document)


def ensure_entries(path: str | os.PathLike[str], entries: list[AuthEntry]) -> AuthDocument:
    """Add or update the allow entries with the ``user_id`` of each of ``entries``; returns the document.

    Only credentials, capabilities, identity and enabled are brought up to date in an existing entry
    (so comments or addresses an administrator set stay). The file is written only if something
    changed.
    """
    with edit_auth_file(path) as document:
        for wanted in entries:
            current = document.find(wanted.user_id)
            if current is None:
                document.allow.append(wanted)
                continue
            for name in ("credentials", "capabilities", "identity", "mechanism"):
                if getattr(current, name) != getattr(wanted, name):
                    setattr(current, name, getattr(wanted, name))
            current.enabled = True
    return document
