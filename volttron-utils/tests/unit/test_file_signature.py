"""``file_signature``: the cheap change token the platform's file watchers compare."""

from __future__ import annotations

import os
from pathlib import Path

from volttron.utils.files import atomic_write, file_signature


def test_missing_file_has_no_signature(tmp_path: Path) -> None:
    assert file_signature(tmp_path / "absent.json") is None


def test_a_rewrite_changes_it_even_with_the_same_size_and_time(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    atomic_write(path, "{}")
    first = file_signature(path)
    stat = os.stat(path)
    atomic_write(path, "[]")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same modification time
    assert file_signature(path) != first  # an atomic replace is a new inode
    assert file_signature(path) == file_signature(path)
