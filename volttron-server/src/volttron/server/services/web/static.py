"""Files served for agents' path routes, never from outside the route's folder.

The URL path is split into segments; a ``..`` segment, a NUL, or a backslash refuses the request
outright, and the file found is resolved (symbolic links followed) and must still lie inside the
resolved folder. Only regular files are served; a folder serves its ``index.html``. The content
type comes from the file name (:mod:`mimetypes`), ``application/octet-stream`` when unknown, and
``; charset=utf-8`` is added to text types.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator
from pathlib import Path

from volttron.server.services.web.http_messages import HttpResponse, error_response

CHUNK = 64 * 1024
_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml", "application/xml")


class UnsafePath(ValueError):
    """A URL path that tries to leave the folder it is served from."""


def resolve_static_file(root: Path, url_path: str) -> Path | None:
    """The regular file under ``root`` that ``url_path`` names, or None if there is none.

    Raises :class:`UnsafePath` for a path that tries to climb out of ``root``.
    """
    if "\x00" in url_path or "\\" in url_path:
        raise UnsafePath(f"refused path {url_path!r}")
    segments = [s for s in url_path.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise UnsafePath(f"refused path {url_path!r}")
    base = Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(base.joinpath(*segments)))
    if not candidate.is_relative_to(base):
        raise UnsafePath(f"{url_path!r} leads outside its folder")
    if candidate.is_dir():
        candidate = Path(os.path.realpath(candidate / "index.html"))
        if not candidate.is_relative_to(base):
            raise UnsafePath(f"{url_path!r} leads outside its folder")
    return candidate if candidate.is_file() else None


def content_type(path: Path) -> str:
    """The Content-Type for a file name."""
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    kind = guessed or "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        kind += "; charset=utf-8"
    return kind


def _chunks(handle: object) -> Iterator[bytes]:
    try:
        while True:
            chunk = handle.read(CHUNK)  # type: ignore[attr-defined]
            if not chunk:
                return
            yield chunk
    finally:
        handle.close()  # type: ignore[attr-defined]


class _FileBody:
    """An iterable over a file's chunks that WSGI servers close when done."""

    def __init__(self, handle: object) -> None:
        self._handle = handle
        self._iter = _chunks(handle)

    def __iter__(self) -> Iterator[bytes]:
        return self._iter

    def close(self) -> None:
        self._iter.close()
        self._handle.close()  # type: ignore[attr-defined]


def serve_file(root: Path, url_path: str, method: str) -> HttpResponse:
    """The response for ``GET``/``HEAD`` of ``url_path`` under ``root``."""
    if method not in ("GET", "HEAD"):
        return error_response(405, "static files answer GET and HEAD only", [("Allow", "GET, HEAD")])
    try:
        path = resolve_static_file(root, url_path)
    except UnsafePath:
        return error_response(404, "not found")
    if path is None:
        return error_response(404, "not found")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the body iterator
        size = os.fstat(handle.fileno()).st_size
    except OSError:
        return error_response(404, "not found")
    return HttpResponse(200, _FileBody(handle), [("Content-Type", content_type(path))], length=size)
