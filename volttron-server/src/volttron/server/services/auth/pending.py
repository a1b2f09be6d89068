"""Refused CURVE keys, kept for an administrator to approve or deny (``vctl auth remote``).

The ZAP handler records every CURVE key it refuses (docs/protocol.md §8.2: failures are recorded as
"pending" credentials); the auth service lists them and turns a decision into ``auth.json``
changes. Both run in the platform process but own no common object, so the records live in
``pending_credentials.json`` beside ``auth.json``, changed under an ``flock`` on
``pending_credentials.json.lock``::

    {"records": [{"user_id", "domain", "address", "mechanism", "credentials", "status",
                  "retries", "first_seen", "last_seen"}, ...]}

``status`` is ``pending``, ``approved`` or ``denied``. At most :data:`DEFAULT_LIMIT` records are
kept: when a new key arrives at the limit, the pending record seen longest ago goes first, so an
attacker who cycles through keys can neither grow the file nor push the administrator's
approved/denied decisions out while pending ones remain.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from volttron.utils.errors import ConfigError, CorruptFileError
from volttron.utils.files import FileLock, atomic_write, move_aside
from volttron.utils.time import format_timestamp, get_aware_utc_now

_log = logging.getLogger(__name__)

PENDING_FILE = "pending_credentials.json"
DEFAULT_LIMIT = 200
LOCK_TIMEOUT = 10.0
STATUSES = ("pending", "approved", "denied")


@dataclass
class CredentialRecord:
    """One refused key and what an administrator decided about it."""

    user_id: str
    domain: str
    address: str
    mechanism: str
    credentials: str
    status: str = "pending"
    retries: int = 1
    first_seen: str = ""
    last_seen: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (also what ``get_pending_authorizations`` returns)."""
        return asdict(self)


@dataclass(frozen=True)
class Refusal:
    """A refused connection as the ZAP handler saw it."""

    domain: str
    address: str
    mechanism: str
    credentials: str
    count: int
    seen: str


def pending_path(auth_file: str | os.PathLike[str]) -> Path:
    """Where the records of the platform whose ``auth.json`` is ``auth_file`` are kept."""
    return Path(auth_file).with_name(PENDING_FILE)


class CredentialRequests:
    """The records in one ``pending_credentials.json``; every method reads the file afresh."""

    def __init__(self, path: str | os.PathLike[str], limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.path = Path(path)
        self.limit = limit

    # -- reading -------------------------------------------------------------------------------
    def records(self, status: str | None = None) -> list[CredentialRecord]:
        """Every record (or those with ``status``), oldest first."""
        if status is not None and status not in STATUSES:
            raise ConfigError(f"unknown status {status!r} (expected one of {', '.join(STATUSES)})")
        return [r for r in self._load() if status is None or r.status == status]

    def find(self, user_id: str) -> CredentialRecord | None:
        """The record with ``user_id``, if any."""
        return next((r for r in self._load() if r.user_id == user_id), None)

    # -- changing ------------------------------------------------------------------------------
    def add_refusals(self, refusals: list[Refusal]) -> None:
        """Count ``refusals`` in: known keys get their retries and last time updated, new keys a record.

        A refused key that had been approved is pending again (its allow entry was removed since).
        """
        with self._edit() as records:
            by_key = {(r.mechanism, r.credentials): r for r in records}
            for refusal in refusals:
                record = by_key.get((refusal.mechanism, refusal.credentials))
                if record is None:
                    record = CredentialRecord(str(uuid.uuid4()), refusal.domain, refusal.address,
                                              refusal.mechanism, refusal.credentials, "pending",
                                              refusal.count, refusal.seen, refusal.seen)
                    records.append(record)
                    by_key[(record.mechanism, record.credentials)] = record
                    continue
                record.retries += refusal.count
                record.last_seen = refusal.seen
                record.address = refusal.address
                if record.status == "approved":
                    record.status = "pending"
            self._trim(records)

    def set_status(self, user_id: str, status: str) -> CredentialRecord:
        """Mark the record ``user_id`` approved, denied or pending; :class:`ConfigError` if unknown."""
        if status not in STATUSES:
            raise ConfigError(f"unknown status {status!r}")
        with self._edit() as records:
            record = next((r for r in records if r.user_id == user_id), None)
            if record is None:
                raise ConfigError(f"no pending, approved or denied credentials with user_id {user_id!r}; "
                                  "see 'vctl auth remote list'")
            record.status = status
            return record

    def delete(self, user_id: str) -> CredentialRecord:
        """Forget the record ``user_id``; returns it."""
        with self._edit() as records:
            for i, record in enumerate(records):
                if record.user_id == user_id:
                    return records.pop(i)
        raise ConfigError(f"no pending, approved or denied credentials with user_id {user_id!r}; "
                          "see 'vctl auth remote list'")

    def _trim(self, records: list[CredentialRecord]) -> None:
        while len(records) > self.limit:
            pending = [r for r in records if r.status == "pending"]
            victim = min(pending or records, key=lambda r: r.last_seen)
            records.remove(victim)

    # -- the file ------------------------------------------------------------------------------
    @contextmanager
    def _edit(self) -> Iterator[list[CredentialRecord]]:
        lock = FileLock(self.path.with_name(self.path.name + ".lock"))
        if not lock.acquire(LOCK_TIMEOUT):
            raise ConfigError(f"{self.path} stayed locked for {LOCK_TIMEOUT:g} s")
        try:
            records = self._load()
            before = [r.to_dict() for r in records]
            yield records
            if [r.to_dict() for r in records] != before:
                text = json.dumps({"records": [r.to_dict() for r in records]}, indent=2) + "\n"
                atomic_write(self.path, text, 0o600)
        finally:
            lock.release()

    def _load(self) -> list[CredentialRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from exc
        try:
            data = json.loads(text) if text.strip() else {"records": []}
            raw = data["records"]
            names = {f.name for f in fields(CredentialRecord)}
            records = [CredentialRecord(**{k: v for k, v in item.items() if k in names}) for item in raw]
            if any(r.status not in STATUSES for r in records):
                raise ValueError("unknown status")
            return records
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            kept = move_aside(self.path)
            _log.error("%s is not valid (%s); kept as %s and started afresh", self.path, exc, kept)
            raise CorruptFileError(f"{self.path} is not valid ({exc}); kept as {kept}", path=str(self.path),
                                   kept_as=str(kept)) from None


def now_text() -> str:
    """The current time as the records hold it."""
    return format_timestamp(get_aware_utc_now())
