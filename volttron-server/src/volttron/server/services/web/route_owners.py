"""Which agent owns which URL: the first to claim it, kept while it restarts and across platform restarts.

A claim is a URL path and a kind: ``prefix`` (a path route: every URL starting with it) or
``exact`` (an endpoint, or a path route ending in ``$``). Two claims overlap when one prefix starts
the other, a prefix starts an exact path, or two exact paths are equal. The first identity to
claim a URL owns it; an overlapping claim by another identity is refused with
:class:`~.errors.RouteTakenError` naming the owner. So an agent never serves another's URL: not
while the owner runs, not while it restarts (its routes are gone then, its claims are not), and
not after a platform restart in which the intruder happens to reconnect first.

A claim is given up only when its owner is gone for good: it serves nothing at the moment and has
no agent directory (``$VOLTTRON_HOME/agents/<identity>/``) — an uninstalled agent, or one run from
outside the platform that has left. An administrator can also edit or remove the file.

Claims are kept in ``$VOLTTRON_HOME/web-route-owners.json`` (written atomically when a claim is
added or dropped). At most :data:`MAX_CLAIMS_PER_IDENTITY` per identity and :data:`MAX_CLAIMS` in
all; an agent at its limit gives up the claims of URLs it no longer serves (:meth:`RouteOwners.prune`)
before it claims a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volttron.server.services.web.errors import RouteError, RouteTakenError
from volttron.utils.errors import CorruptFileError
from volttron.utils.files import read_json_file, write_json_file
from volttron.utils.identities import is_valid_identity

_log = logging.getLogger(__name__)

OWNERS_FILE = "web-route-owners.json"
PREFIX = "prefix"
EXACT = "exact"
KINDS = (PREFIX, EXACT)
MAX_CLAIMS_PER_IDENTITY = 64
MAX_CLAIMS = 4096


@dataclass(frozen=True)
class Claim:
    """``identity`` owns ``path`` (a ``prefix`` or an ``exact`` path)."""

    path: str
    kind: str
    identity: str

    def overlaps(self, path: str, kind: str) -> bool:
        """True when this claim and ``(path, kind)`` can match the same URL."""
        if self.kind == PREFIX and kind == PREFIX:
            return path.startswith(self.path) or self.path.startswith(path)
        if self.kind == PREFIX:
            return path.startswith(self.path)
        if kind == PREFIX:
            return self.path.startswith(path)
        return self.path == path

    def describe(self) -> str:
        """``/vc/ (prefix)``."""
        return f"{self.path} ({self.kind})"


class RouteOwners:
    """The claims; see the module docstring. ``file`` None keeps them in memory only."""

    def __init__(self, file: Path | None = None) -> None:
        self.file = file
        self._claims: list[Claim] = []
        if file is not None:
            self._claims = _load(file)

    def claim(self, identity: str, path: str, kind: str, is_gone: Callable[[str], bool]) -> None:
        """Record that ``identity`` owns ``(path, kind)``, or raise :class:`RouteTakenError`.

        ``is_gone(owner)`` says whether another owner is gone for good (its claims are dropped then).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown claim kind {kind!r}")
        for other in [c for c in self._claims if c.identity != identity and c.overlaps(path, kind)]:
            if not is_gone(other.identity):
                raise RouteTakenError(
                    f"the URL {path} is taken: agent {other.identity!r} registered {other.describe()} first")
            dropped = self.forget(other.identity)
            _log.info("%s is gone: its %d web URL claims were dropped", other.identity, dropped)
        if any(c.identity == identity and c.path == path and c.kind == kind for c in self._claims):
            return
        if sum(1 for c in self._claims if c.identity == identity) >= MAX_CLAIMS_PER_IDENTITY:
            raise RouteError(f"{identity} owns {MAX_CLAIMS_PER_IDENTITY} web URLs already, "
                             "the most one agent may")
        if len(self._claims) >= MAX_CLAIMS:
            raise RouteError(f"the web service holds {MAX_CLAIMS} URL claims already, the most it keeps")
        self._claims.append(Claim(path, kind, identity))
        self._save()

    def prune(self, identity: str, keep: set[tuple[str, str]]) -> int:
        """Drop the claims of ``identity`` but ``keep`` (the ``(path, kind)`` it serves); returns how many."""
        before = len(self._claims)
        self._claims = [c for c in self._claims if c.identity != identity or (c.path, c.kind) in keep]
        if len(self._claims) != before:
            self._save()
        return before - len(self._claims)

    def forget(self, identity: str) -> int:
        """Drop every claim of ``identity``; returns how many there were."""
        before = len(self._claims)
        self._claims = [c for c in self._claims if c.identity != identity]
        if len(self._claims) != before:
            self._save()
        return before - len(self._claims)

    def owner(self, path: str, kind: str) -> str | None:
        """The identity whose claim overlaps ``(path, kind)`` (the first one), if any."""
        return next((c.identity for c in self._claims if c.overlaps(path, kind)), None)

    def claims_of(self, identity: str) -> list[Claim]:
        """The claims of ``identity``."""
        return [c for c in self._claims if c.identity == identity]

    def __len__(self) -> int:
        return len(self._claims)

    def _save(self) -> None:
        if self.file is None:
            return
        document = {"version": 1, "claims": [{"path": c.path, "kind": c.kind, "identity": c.identity}
                                             for c in self._claims]}
        try:
            write_json_file(self.file, document, mode=0o600)
        except OSError as exc:  # kept in memory; the next change tries again
            _log.error("cannot write %s: %s", self.file, exc)


def _load(file: Path) -> list[Claim]:
    try:
        document: Any = read_json_file(file, {"claims": []}, expect=dict)
    except CorruptFileError as exc:
        _log.error("web URL owners not loaded: %s", exc)
        return []
    except OSError as exc:
        _log.error("web URL owners not loaded: cannot read %s: %s", file, exc)
        return []
    claims: list[Claim] = []
    entries = document.get("claims")
    for entry in entries if isinstance(entries, list) else []:
        if len(claims) >= MAX_CLAIMS:
            _log.error("%s holds more than %d claims: the rest are ignored", file, MAX_CLAIMS)
            break
        path = entry.get("path") if isinstance(entry, dict) else None
        kind = entry.get("kind") if isinstance(entry, dict) else None
        identity = entry.get("identity") if isinstance(entry, dict) else None
        if (isinstance(path, str) and path.startswith("/") and kind in KINDS and isinstance(identity, str)
                and is_valid_identity(identity)):
            claims.append(Claim(path, kind, identity))
        else:
            _log.warning("%s: ignoring an unusable claim %r", file, entry)
    return claims
