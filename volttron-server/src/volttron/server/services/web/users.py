"""Web users: ``$VOLTTRON_HOME/web-users.json`` (salted password hashes, groups, capabilities).

The file maps user names to records, as the original platform's did::

    {
      "alice": {
        "password": "scrypt$16384$8$1$<salt>$<hash>",
        "groups": ["operators"],
        "roles": [],
        "capabilities": {"edit_config_store": {"identity": "/.*/"}}
      }
    }

A user's capabilities are its own plus those its groups and roles give through the ``groups`` and
``roles`` tables of ``auth.json`` (docs/protocol.md §8.4), so web users and agents share one capability
vocabulary. Create users with :func:`add_web_user`, or from a shell::

    python -m volttron.server.services.web.adduser alice --group operators \
        --capability edit_config_store

The file is written atomically, mode 0600, under an ``flock`` on ``web-users.json.lock``. The web
service re-reads it when it changes; a file that stops parsing is moved aside and reported, and
the users last read stay in force until a valid file appears.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from volttron.server.services.auth.authfile import AuthEntry, Capabilities, normalize_capabilities
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.web.errors import WebUserError
from volttron.server.services.web.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from volttron.utils.errors import ConfigError, CorruptFileError
from volttron.utils.files import FileLock, FileSignature, atomic_write, file_signature, read_json_file

_log = logging.getLogger(__name__)

USER_NAME = re.compile(r"[A-Za-z0-9_.@\-]{1,64}")


@dataclass(frozen=True)
class WebUser:
    """One web user as stored (the password only as its hash)."""

    name: str
    password_hash: str
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    capabilities: Capabilities = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as the file holds it."""
        return {"password": self.password_hash, "groups": list(self.groups), "roles": list(self.roles),
                "capabilities": dict(self.capabilities)}

    @classmethod
    def from_dict(cls, name: str, record: Any) -> WebUser:
        """A user from its file record; :class:`WebUserError` naming what is wrong."""
        if not USER_NAME.fullmatch(name):
            raise WebUserError(f"user name {name!r} may hold 1 to 64 letters, digits, '_', '.', '@', '-'")
        if not isinstance(record, Mapping):
            raise WebUserError(f"web user {name!r} is not an object")
        password = record.get("password")
        if not isinstance(password, str) or not password:
            raise WebUserError(f"web user {name!r} has no password hash")
        try:
            capabilities = normalize_capabilities(record.get("capabilities"))
        except ConfigError as exc:
            raise WebUserError(f"web user {name!r}: {exc}") from None
        lists = {}
        for key in ("groups", "roles"):
            value = record.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise WebUserError(f"web user {name!r}: {key} must be a list of text")
            lists[key] = tuple(value)
        return cls(name, password, lists["groups"], lists["roles"], capabilities)


def parse_web_users(data: Mapping[str, Any], source: str = "web-users.json") -> dict[str, WebUser]:
    """The users of a parsed file; a bad record is skipped with a warning."""
    users = {}
    for name, record in data.items():
        try:
            users[name] = WebUser.from_dict(str(name), record)
        except WebUserError as exc:
            _log.warning("%s: skipping a user: %s", source, exc)
    return users


class WebUserStore:
    """The web users as last read from ``path``, re-read when the file changes.

    ``policy`` (the ``auth.json`` policy) expands groups and roles into capabilities; without it a
    user holds only the capabilities its record names.
    """

    def __init__(self, path: str | os.PathLike[str], policy: AuthPolicy | None = None) -> None:
        self.path = Path(path)
        self._policy = policy
        self._signature: FileSignature = None
        self._users: dict[str, WebUser] = {}
        self._dummy_hash: str | None = None
        self._load(file_signature(self.path))

    def _load(self, signature: tuple[int, int, int] | None) -> None:
        self._signature = signature
        try:
            data = read_json_file(self.path, {}, expect=dict)
        except CorruptFileError as exc:
            _log.error("web users not changed: %s", exc)
            self._signature = file_signature(self.path)
            return
        except OSError as exc:
            _log.error("cannot read %s: %s; web users not changed", self.path, exc.strerror or exc)
            return
        self._users = parse_web_users(data, str(self.path))

    def _current(self) -> dict[str, WebUser]:
        signature = file_signature(self.path)
        if signature != self._signature:
            self._load(signature)
        return self._users

    def get(self, name: str) -> WebUser | None:
        """The user called ``name``, if there is one now."""
        return self._current().get(name)

    def names(self) -> list[str]:
        """The user names, sorted."""
        return sorted(self._current())

    def authenticate(self, name: str, password: str,
                     check: Callable[[str, str], bool] = verify_password) -> WebUser | None:
        """The user when ``password`` is right, else None.

        ``check(password, stored_hash)`` does the (deliberately slow) comparison. An unknown name
        costs as long as a wrong password, so names cannot be probed by timing.
        """
        user = self.get(name) if isinstance(name, str) else None
        if user is None:
            if self._dummy_hash is None:
                self._dummy_hash = hash_password("no such user")
            check(str(password), self._dummy_hash)
            return None
        return user if check(password, user.password_hash) else None

    def capabilities(self, name: str) -> Capabilities:
        """``{capability: params or None}`` of user ``name``; :class:`KeyError` if there is none."""
        user = self.get(name)
        if user is None:
            raise KeyError(f"no web user {name!r}")
        if self._policy is None:
            return dict(user.capabilities)
        entry = AuthEntry(groups=list(user.groups), roles=list(user.roles),
                          capabilities=dict(user.capabilities), user_id=f"web:{name}")
        return self._policy.current().effective_capabilities(entry)


@contextlib.contextmanager
def _locked(path: Path, timeout: float = 30.0) -> Iterator[None]:
    with FileLock(f"{path}.lock").hold(timeout, f"the web users file {path}"):
        yield


def _write(path: Path, users: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(users, indent=2, sort_keys=True) + "\n", 0o600)


def add_web_user(path: str | os.PathLike[str], name: str, password: str, *, groups: Iterable[str] = (),
                 roles: Iterable[str] = (), capabilities: Any = None, replace: bool = False) -> WebUser:
    """Add user ``name`` (or replace it with ``replace=True``) to the web users file ``path``.

    ``capabilities`` takes the forms ``auth.json`` does (a name, a list, or ``{name: params}``).
    Passwords shorter than 8 characters are refused.
    """
    target = Path(path)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise WebUserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    try:
        caps = normalize_capabilities(capabilities)
    except ConfigError as exc:
        raise WebUserError(str(exc)) from None
    user = WebUser.from_dict(name, {"password": hash_password(password), "groups": list(groups),
                                    "roles": list(roles), "capabilities": caps})
    with _locked(target):
        data = read_json_file(target, {}, expect=dict)
        if name in data and not replace:
            raise WebUserError(f"web user {name!r} exists in {target}; pass replace=True to change it")
        data[name] = user.to_dict()
        _write(target, data)
    return user


def remove_web_user(path: str | os.PathLike[str], name: str) -> bool:
    """Remove user ``name`` from ``path``; False when there was no such user."""
    target = Path(path)
    with _locked(target):
        data = read_json_file(target, {}, expect=dict)
        if name not in data:
            return False
        del data[name]
        _write(target, data)
    return True
