"""Loading a test module's neighbour by path.

pytest runs with ``--import-mode=importlib``: test folders are not packages, so one test module cannot
``import`` another or a helper module beside it. :func:`load_beside` imports the file once, by path,
under a name of its own (kept in ``sys.modules``, which dataclasses and pickling look up), and hands
it back to every later caller.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_beside(test_file: str | Path, module: str, key: str | None = None) -> ModuleType:
    """The module ``<module>.py`` in the folder of ``test_file``, imported once (as ``key``)."""
    path = Path(test_file).resolve().with_name(f"{module}.py")
    name = key or f"volttron_tests_{path.parent.parent.name}_{path.parent.name}_{module}"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    return loaded
