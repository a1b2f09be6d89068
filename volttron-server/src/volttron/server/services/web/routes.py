"""The routes agents register with the web service (docs/protocol.md §2.12).

* An *endpoint* is an exact URL path an agent answers through ``route.callback(env, data)``;
  its ``res_type`` says how the answer becomes a response (``jsonrpc`` or ``raw``, :mod:`.endpoints`).
* A *path route* is a URL prefix and a folder: as in the original platform, the file served is the
  folder joined with the **whole** URL path (``register_path_route('^/vc/.*', '/srv/webroot')``
  serves ``/vc/index.html`` from ``/srv/webroot/vc/index.html``).

Route patterns are literal prefixes, not regular expressions: agents plant them and anonymous
requests run them, so a pattern must not be able to stall the platform (``^/(a+)+$`` did, for
seconds per request). For agents of the published VOLTTRON, which send regexes, the common forms
are read as prefixes (:func:`route_prefix`): ``^/vc/``, ``^/vc/.*``, ``/vc/(.*)$``, escaped
literals (``^/my\\.agent/``), and ``^/status$`` (that one path). Anything else (groups,
alternatives, classes, repetition) is refused with a message that says so. The longest matching
prefix wins; matching costs at most the length of the path per route.

Each URL belongs to the first agent that registers it (:mod:`.route_owners`): another agent's route
or endpoint that would answer any of its URLs is refused, also while the owner restarts. Paths the
service answers itself (``/discovery``, ``/authenticate``, ``/jsonrpc``) cannot be taken.

A path route needs the capability ``web.serve_path`` (checked by the web agent, :mod:`.access`)
and a folder below the agent's own directory or its package (:func:`.access.allowed_roots`): never
the file system root, ``/etc``, the platform home, or another agent's directory. The folder's real
path (links followed) is fixed at registration, and every request is checked against it again
(:func:`.static.is_inside`). Every route of an agent goes when it unregisters them or leaves the
platform; its URL claims stay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volttron.server.services.web.access import allowed_roots
from volttron.server.services.web.errors import DuplicateEndpointError, ReservedRouteError, RouteError
from volttron.server.services.web.route_owners import (
    EXACT,
    MAX_CLAIMS_PER_IDENTITY,
    OWNERS_FILE,
    PREFIX,
    RouteOwners,
)
from volttron.utils.identities import is_valid_identity

RESERVED_PREFIXES = ("/discovery", "/authenticate", "/jsonrpc")
RES_TYPES = ("jsonrpc", "raw")
MAX_PATTERN_LENGTH = 1000
MAX_ROUTES_PER_IDENTITY = 64
"""Endpoints and path routes one agent may have registered at once."""
_SPECIAL = frozenset(".^$*+?{}[]|()\\")
_ANY_TAILS = (".*", ".+", "(.*)", "(.+)")


@dataclass(frozen=True)
class Endpoint:
    """An exact path answered by agent ``identity``."""

    path: str
    identity: str
    res_type: str


@dataclass(frozen=True)
class PathRoute:
    """Files under ``root`` (a real path) served for URL paths starting with ``prefix``.

    ``exact`` routes serve the one path ``prefix``. ``pattern`` is what the agent sent.
    """

    pattern: str
    prefix: str
    exact: bool
    root: Path
    identity: str

    def matches(self, path: str) -> bool:
        """True when this route answers ``path``."""
        return path == self.prefix if self.exact else path.startswith(self.prefix)


def is_reserved(path: str) -> bool:
    """True for a path the web service answers itself."""
    return any(path == p or path.startswith(p + "/") for p in RESERVED_PREFIXES)


def route_prefix(pattern: Any) -> tuple[str, bool]:
    """``(prefix, exact)`` for a route pattern; :class:`RouteError` for one that is not a plain prefix.

    ``^`` at the start is optional; ``.*``, ``.+``, ``(.*)`` or ``(.+)`` at the end, and ``$``
    after them, mean "and anything after"; ``$`` right after the literal means "this path only";
    ``\\`` escapes one special character.
    """
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise RouteError(f"a path route is a URL prefix of at most {MAX_PATTERN_LENGTH} characters, "
                         f"not {pattern!r}")
    text = pattern[1:] if pattern.startswith("^") else pattern
    exact = False
    if text.endswith("$") and not _escaped(text, len(text) - 1):
        text, exact = text[:-1], True
    for tail in _ANY_TAILS:
        if text.endswith(tail) and not _escaped(text, len(text) - len(tail)):
            text, exact = text[:-len(tail)], False
            break
    literal = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 < len(text) and text[i + 1] in _SPECIAL | {"/", "-", "~", "%", "=", "&", ":", "@", "!"}:
                literal.append(text[i + 1])
                i += 2
                continue
            raise RouteError(f"path route {pattern!r}: only special characters may be escaped")
        if char in _SPECIAL:
            raise RouteError(f"path route {pattern!r}: route patterns are URL prefixes such as '^/myagent/'; "
                             f"{char!r} (a regular-expression feature) is not accepted")
        literal.append(char)
        i += 1
    prefix = "".join(literal)
    if not prefix.startswith("/") or any(c in prefix for c in "\x00\r\n"):
        raise RouteError(f"path route {pattern!r} must be a URL path starting with '/'")
    return prefix, exact


def _escaped(text: str, index: int) -> bool:
    """True when the character at ``index`` follows an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


class RouteTable:
    """Endpoints and path routes by agent; see the module docstring."""

    def __init__(self, home: Path, owners: RouteOwners | None = None) -> None:
        self._home = Path(os.path.realpath(home))
        self.owners = owners if owners is not None else RouteOwners(self._home / OWNERS_FILE)
        self._endpoints: dict[str, Endpoint] = {}
        self._paths: list[PathRoute] = []

    def _is_gone(self, identity: str) -> bool:
        """An owner serving nothing and without an agent directory gives up its URLs."""
        serving = any(e.identity == identity for e in self._endpoints.values()) or any(
            r.identity == identity for r in self._paths)
        return not serving and not (self._home / "agents" / identity).is_dir()

    def _check_count(self, identity: str) -> None:
        if not is_valid_identity(identity) or identity.startswith("."):
            raise RouteError(f"{identity!r} cannot own web routes")
        serving = {(e.path, EXACT) for e in self._endpoints.values() if e.identity == identity}
        serving |= {(r.prefix, EXACT if r.exact else PREFIX) for r in self._paths if r.identity == identity}
        if len(serving) >= MAX_ROUTES_PER_IDENTITY:
            raise RouteError(f"{identity} has {MAX_ROUTES_PER_IDENTITY} web routes already, the most one "
                             "agent may register")
        if len(self.owners.claims_of(identity)) >= MAX_CLAIMS_PER_IDENTITY:
            self.owners.prune(identity, serving)  # URLs it no longer serves make room

    def add_endpoint(self, identity: str, path: Any, res_type: Any = "jsonrpc") -> Endpoint:
        """Let ``identity`` answer ``path``; registering the same path again replaces its type."""
        if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATTERN_LENGTH:
            raise RouteError(f"an endpoint is a path starting with '/', not {path!r}")
        if res_type not in RES_TYPES:
            raise RouteError(f"res_type must be one of {', '.join(RES_TYPES)}, not {res_type!r}")
        if is_reserved(path):
            raise ReservedRouteError(f"endpoint {path} is reserved for the web service")
        current = self._endpoints.get(path)
        if current is not None and current.identity != identity:
            raise DuplicateEndpointError(f"endpoint {path} is served by {current.identity!r} already")
        if current is None:
            self._check_count(identity)
        self.owners.claim(identity, path, EXACT, self._is_gone)
        endpoint = Endpoint(path, identity, res_type)
        self._endpoints[path] = endpoint
        return endpoint

    def add_path_route(self, identity: str, pattern: Any, root: Any) -> PathRoute:
        """Serve the files under folder ``root`` for paths starting with ``pattern``'s prefix."""
        prefix, exact = route_prefix(pattern)
        if is_reserved(prefix):
            raise ReservedRouteError(f"path route {prefix} is reserved for the web service")
        folder = self._check_root(identity, root)
        replaced = [r for r in self._paths if r.identity == identity and r.pattern == pattern]
        if not replaced:
            self._check_count(identity)
        self.owners.claim(identity, prefix, EXACT if exact else PREFIX, self._is_gone)
        self._paths = [r for r in self._paths if r not in replaced]
        route = PathRoute(pattern, prefix, exact, folder, identity)
        self._paths.append(route)
        return route

    def _check_root(self, identity: str, root: Any) -> Path:
        if not isinstance(root, str) or not os.path.isabs(root) or "\x00" in root:
            raise RouteError(f"a path route's folder must be an absolute path, not {root!r}")
        folder = Path(os.path.realpath(root))
        if not folder.is_dir():
            raise RouteError(f"{root} is not a folder")
        home = self._home
        if folder == Path(folder.anchor) or home.is_relative_to(folder):
            raise RouteError(f"{root} holds the platform home {home}, which cannot be served")
        if not any(folder.is_relative_to(allowed) for allowed in allowed_roots(home, identity)):
            raise RouteError(f"{root} cannot be served: an agent serves files only from below its own "
                             f"directory {home / 'agents' / identity} (e.g. its data/) or its package")
        return folder

    def remove_identity(self, identity: str) -> int:
        """Forget every route of ``identity``; returns how many there were."""
        before = len(self._endpoints) + len(self._paths)
        self._endpoints = {p: e for p, e in self._endpoints.items() if e.identity != identity}
        self._paths = [r for r in self._paths if r.identity != identity]
        return before - len(self._endpoints) - len(self._paths)

    def endpoint(self, path: str) -> Endpoint | None:
        """The endpoint registered for exactly ``path``."""
        return self._endpoints.get(path)

    def path_route(self, path: str) -> PathRoute | None:
        """The path route with the longest prefix that answers ``path``."""
        best: PathRoute | None = None
        for route in self._paths:
            if route.matches(path) and (best is None or len(route.prefix) > len(best.prefix)):
                best = route
        return best

    def routes_of(self, identity: str) -> dict[str, list[str]]:
        """``{"endpoints": [...], "paths": [...]}`` registered by ``identity``."""
        return {"endpoints": sorted(p for p, e in self._endpoints.items() if e.identity == identity),
                "paths": [r.pattern for r in self._paths if r.identity == identity]}

    def statistics(self) -> dict[str, int]:
        """How many endpoints and path routes are registered."""
        return {"endpoints": len(self._endpoints), "path_routes": len(self._paths)}
