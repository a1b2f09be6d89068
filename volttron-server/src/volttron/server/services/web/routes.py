"""The routes agents register with the web service (reference §2.12).

* An *endpoint* is an exact URL path an agent answers through ``route.callback(env, data)``;
  its ``res_type`` says how the answer becomes a response (``jsonrpc`` or ``raw``, :mod:`.endpoints`).
* A *path route* is a regular expression matched at the start of the URL path, and a folder: as
  in the original platform, the file served is the folder joined with the **whole** URL path
  (``register_path_route('^/vc/.*', '/srv/webroot')`` serves ``/vc/index.html`` from
  ``/srv/webroot/vc/index.html``). Path routes are tried in registration order.

Paths the service answers itself (``/discovery``, ``/authenticate``, ``/jsonrpc``) cannot be taken,
an endpoint belongs to the first agent that registers it, and a folder may not be the file system
root, hold ``$VOLTTRON_HOME``, or lie inside it (except under the registering agent's own
``agents/<identity>/`` directory): the platform's keys live there. Every route of an agent goes
when it unregisters them or leaves the platform.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volttron.server.services.web.errors import DuplicateEndpointError, ReservedRouteError, RouteError

RESERVED_PREFIXES = ("/discovery", "/authenticate", "/jsonrpc")
RES_TYPES = ("jsonrpc", "raw")
MAX_PATTERN_LENGTH = 1000


@dataclass(frozen=True)
class Endpoint:
    """An exact path answered by agent ``identity``."""

    path: str
    identity: str
    res_type: str


@dataclass(frozen=True)
class PathRoute:
    """Files under ``root`` served for paths matching ``pattern``, registered by ``identity``."""

    pattern: str
    regex: re.Pattern[str]
    root: Path
    identity: str


def is_reserved(path: str) -> bool:
    """True for a path the web service answers itself."""
    return any(path == p or path.startswith(p + "/") for p in RESERVED_PREFIXES)


class RouteTable:
    """Endpoints and path routes by agent; see the module docstring."""

    def __init__(self, home: Path | None = None) -> None:
        self._home = Path(os.path.realpath(home)) if home is not None else None
        self._endpoints: dict[str, Endpoint] = {}
        self._paths: list[PathRoute] = []

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
        endpoint = Endpoint(path, identity, res_type)
        self._endpoints[path] = endpoint
        return endpoint

    def add_path_route(self, identity: str, pattern: Any, root: Any) -> PathRoute:
        """Serve the files under folder ``root`` for paths matching ``pattern`` (a regex)."""
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            raise RouteError(f"a path route is a regular expression, not {pattern!r}")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise RouteError(f"path route {pattern!r} is not a valid regular expression: {exc}") from None
        folder = self._check_root(identity, root)
        self._paths = [r for r in self._paths if not (r.identity == identity and r.pattern == pattern)]
        route = PathRoute(pattern, regex, folder, identity)
        self._paths.append(route)
        return route

    def _check_root(self, identity: str, root: Any) -> Path:
        if not isinstance(root, str) or not os.path.isabs(root) or "\x00" in root:
            raise RouteError(f"a path route's folder must be an absolute path, not {root!r}")
        folder = Path(os.path.realpath(root))
        if not folder.is_dir():
            raise RouteError(f"{root} is not a folder")
        if folder == Path(folder.anchor):
            raise RouteError("the file system root cannot be served")
        home = self._home
        if home is not None:
            own = home / "agents" / identity
            if home.is_relative_to(folder):
                raise RouteError(f"{root} holds the platform home {home}, which cannot be served")
            if folder.is_relative_to(home) and not folder.is_relative_to(own):
                raise RouteError(f"{root} is inside the platform home {home}, which cannot be served")
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
        """The first path route whose pattern matches the start of ``path``."""
        return next((r for r in self._paths if r.regex.match(path)), None)

    def routes_of(self, identity: str) -> dict[str, list[str]]:
        """``{"endpoints": [...], "paths": [...]}`` registered by ``identity``."""
        return {"endpoints": sorted(p for p, e in self._endpoints.items() if e.identity == identity),
                "paths": [r.pattern for r in self._paths if r.identity == identity]}

    def statistics(self) -> dict[str, int]:
        """How many endpoints and path routes are registered."""
        return {"endpoints": len(self._endpoints), "path_routes": len(self._paths)}
