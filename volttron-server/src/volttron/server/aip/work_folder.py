"""The home's folder for work in progress: ``$VOLTTRON_HOME/tmp`` (0700), emptied at platform start.

Installs build, fetch and unpack wheels, and uploads land, in folders made here rather than in the
system's temporary folder: a platform killed in the middle leaves them in its own home, where its
next start removes them, and other users cannot read them meanwhile.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

WORK_FOLDER = "tmp"


def work_folder(home: Path | str) -> Path:
    """``$VOLTTRON_HOME/tmp``, made if missing, mode 0700."""
    path = Path(home) / WORK_FOLDER
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    os.chmod(path, 0o700)
    return path


def clear_work_folder(home: Path | str) -> list[str]:
    """Remove everything in the work folder (left by a platform that died); returns the names removed.

    Call it only while holding the home's instance lock: no install of this home is running then.
    """
    path = work_folder(home)
    removed = []
    for entry in sorted(path.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed
