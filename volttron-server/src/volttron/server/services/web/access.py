"""Who may publish a folder over HTTP, and which folders: the web service's two file checks.

* :func:`check_serve_path` — ``register_path_route`` needs the capability
  :data:`SERVE_PATH_CAPABILITY` (``web.serve_path``) in ``auth.json``: static folders are served to
  anonymous clients, so publishing one is a privilege an administrator grants
  (``vctl auth update`` or an edit of the agent's entry), never a default.
* :func:`allowed_roots` — even with the capability an agent may serve only below its own agent
  directory (``$VOLTTRON_HOME/agents/<identity>/``, where its ``data/`` is) or the installed
  files of its own distribution (the ``NAME`` in that directory: its package's resources).

Each request is checked again when it is answered (:func:`~.static.is_inside`), since the
folder's contents may have changed since it was registered.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata
from pathlib import Path

from volttron.client.known_identities import PROCESS_IDENTITIES
from volttron.server.services.auth.access import require_capability
from volttron.server.services.auth.authfile import AuthDocument
from volttron.utils.identities import is_valid_identity

_log = logging.getLogger(__name__)

SERVE_PATH_CAPABILITY = "web.serve_path"
"""Register folders of static files with ``platform.web`` (``register_path_route``)."""
MAX_DISTRIBUTION_FILES = 100_000
"""Files of a distribution looked at to find its top-level folders (bounds the work per registration)."""


def check_serve_path(document: AuthDocument | None, identity: str) -> None:
    """Raise :class:`~volttron.utils.jsonrpc.Unauthorized` unless ``identity`` may register folders.

    ``document`` is the current ``auth.json`` (None when authentication is disabled: then every
    peer may). The platform's own services may; every other peer needs :data:`SERVE_PATH_CAPABILITY`.
    """
    if document is None or identity in PROCESS_IDENTITIES:
        return
    require_capability(document, identity, SERVE_PATH_CAPABILITY)


def _package_roots(home: Path, identity: str) -> list[Path]:
    """The top-level folders of the distribution agent ``identity`` was installed from."""
    try:
        name = (home / "agents" / identity / "NAME").read_text().strip()
    except OSError:
        return []
    if not name:
        return []
    try:
        distribution = metadata.distribution(name)
    except (metadata.PackageNotFoundError, ValueError):
        return []
    roots: set[Path] = set()
    for count, file in enumerate(distribution.files or ()):
        if count >= MAX_DISTRIBUTION_FILES:
            break
        parts = file.parts
        if len(parts) < 2 or parts[0] in ("..", "") or parts[0].endswith((".dist-info", ".data")):
            continue
        folder = Path(os.path.realpath(str(distribution.locate_file(parts[0]))))
        if folder.is_dir():
            roots.add(folder)
    return sorted(roots)


def allowed_roots(home: Path, identity: str) -> list[Path]:
    """The real paths below which ``identity`` may serve files (none for an unusable identity)."""
    if not is_valid_identity(identity) or identity.startswith("."):
        return []
    agents = Path(os.path.realpath(home / "agents"))
    own = Path(os.path.realpath(agents / identity))
    if own.parent != agents:  # the agent's directory replaced by a link elsewhere
        _log.warning("the agent directory of %s leads outside %s: it cannot be served", identity, agents)
        return _package_roots(home, identity)
    return [own, *_package_roots(home, identity)]
