"""Files served for agents' path routes, never from outside the route's folder.

The folder is the real path fixed when the route was registered; it is never resolved again, so
an agent that later swaps the folder (or anything in it) for a symbolic link gains nothing. For
every request the URL path is joined to the folder by werkzeug's ``safe_join`` (a path that climbs
above the folder by ``..`` is refused; a NUL or a backslash is refused here), and the file found is
resolved (symbolic links followed) and must lie inside the folder (:func:`is_inside`, the
request-time check). The file is then opened without following
a final link and without blocking (a FIFO put there cannot stall the platform), and what was
opened is checked again: the real path of the open file (``/proc/self/fd``) must still lie inside,
it must be a regular file, and it must have one link only (a hard link to a secret elsewhere is
refused). A folder serves its ``index.html``. The content type comes from the file name
(:mod:`mimetypes`), ``application/octet-stream`` when unknown, and ``; charset=utf-8`` is added to
text types. The open file is sent by werkzeug (``wrap_file``, and ``make_conditional`` for
``If-Modified-Since`` and byte ranges).
"""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path
from typing import Any

from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.security import safe_join
from werkzeug.wsgi import wrap_file

from volttron.server.services.web.http_messages import HttpResponse, error_response

_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))
_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml", "application/xml")


class UnsafePath(ValueError):
    """A URL path that tries to leave the folder it is served from."""


def is_inside(base: Path, path: Path) -> bool:
    """The request-time check: True when the real path ``path`` is ``base`` or lies below it.

    ``base`` is the route's folder as resolved at registration, never resolved again.
    """
    return path == base or path.is_relative_to(base)


def resolve_static_file(root: Path, url_path: str) -> Path | None:
    """The regular file under ``root`` (a real path) that ``url_path`` names, or None if there is none.

    Raises :class:`UnsafePath` for a path that leads out of ``root``, by ``..`` or by links.
    """
    if "\x00" in url_path or "\\" in url_path:
        raise UnsafePath(f"refused path {url_path!r}")
    base = Path(os.path.abspath(root))
    joined = safe_join(str(base), url_path.lstrip("/"))
    if joined is None:
        raise UnsafePath(f"refused path {url_path!r}")
    candidate = Path(os.path.realpath(joined))
    if not is_inside(base, candidate):
        raise UnsafePath(f"{url_path!r} leads outside its folder")
    if candidate.is_dir():
        candidate = Path(os.path.realpath(candidate / "index.html"))
        if not is_inside(base, candidate):
            raise UnsafePath(f"{url_path!r} leads outside its folder")
    return candidate if candidate.is_file() else None


def open_inside(root: Path, path: Path) -> tuple[int, int]:
    """``(fd, size)`` of the regular file ``path`` opened safely; :class:`UnsafePath` or OSError if not.

    The file is opened with ``O_NOFOLLOW | O_NONBLOCK``; what was opened must still be inside
    ``root`` (a link swapped in between the check and the open is caught here), a regular file,
    and have a single link.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise UnsafePath(f"{path} is not a plain file")
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # no /proc: the open did not follow a final link, and the path was checked
            opened = path
        if not is_inside(Path(os.path.abspath(root)), opened):
            raise UnsafePath(f"{path} led outside its folder when opened")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return fd, info.st_size
    except BaseException:
        os.close(fd)
        raise


def content_type(path: Path) -> str:
    """The Content-Type for a file name."""
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    kind = guessed or "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        kind += "; charset=utf-8"
    return kind


def serve_file(root: Path, url_path: str, method: str, environ: dict[str, Any] | None = None) -> HttpResponse:
    """The response for ``GET``/``HEAD`` of ``url_path`` under ``root``.

    With the request's ``environ``, conditional and range requests are answered (304, 206).
    """
    if method not in ("GET", "HEAD"):
        return error_response(405, "static files answer GET and HEAD only", [("Allow", "GET, HEAD")])
    try:
        path = resolve_static_file(root, url_path)
        if path is None:
            return error_response(404, "not found")
        fd, size = open_inside(root, path)
    except (UnsafePath, OSError):
        return error_response(404, "not found")
    handle = os.fdopen(fd, "rb")
    environ = environ if environ is not None else {"REQUEST_METHOD": method}
    response = HttpResponse(200, wrap_file(environ, handle), [("Content-Type", content_type(path))])
    response.direct_passthrough = True
    response.content_length = size
    response.last_modified = os.fstat(handle.fileno()).st_mtime  # type: ignore[assignment]
    try:
        response.make_conditional(environ, accept_ranges=True, complete_length=size)  # changes and returns it
        return response
    except RequestedRangeNotSatisfiable:
        response.close()
        return error_response(416, "the range is not in the file", [("Content-Range", f"bytes */{size}")])
