"""pika without its import-everything: the RabbitMQ back-end's one door to pika.

``import pika`` runs ``pika/__init__.py``, which imports every connection adapter (asyncio, blocking,
select) and ``pika/adapters/__init__.py`` again; with them come ``asyncio`` and its friends: about
4 MB of an agent process that only ever uses the gevent adapter. The modules that adapter needs
(``pika.connection``, ``pika.spec``, ``pika.adapters.base_connection``, ``pika.adapters.gevent_connection``,
...) never use the package namespace, so they load without it.

When this module is imported before anything else imported pika, it puts *hollow* ``pika`` and
``pika.adapters`` package modules into ``sys.modules``: made from the real packages' specs (so
``__path__``, ``__spec__``, ``__file__`` and submodule imports are what they would be), with
``pika.__version__`` read from the package's source, but without running the ``__init__`` code. Each
has a module ``__getattr__`` (PEP 562) that runs the real ``__init__`` in that module's namespace the
first time a name is asked for that is not there yet: any other code in the process that later
uses ``pika.BlockingConnection``, ``from pika import URLParameters`` or
``pika.adapters.SelectConnection`` gets them, at the full price then. Submodule imports (``import
pika.adapters.blocking_connection``) never needed ``__init__`` and work as always.

:mod:`importlib.util.LazyLoader` cannot do this: it runs the whole module on the first attribute
access, and importing a submodule reads the package's ``__path__``.

If pika was already imported, it is used as it is. Anything unexpected (no source to read the
version from, a package layout this does not know) falls back to a plain ``import pika``, with a
debug line saying why. The rest of the back-end takes pika's names from here (never from the
``pika`` namespace, which would run the full ``__init__``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

_log = logging.getLogger(__name__)

HOLLOW_PACKAGES = ("pika", "pika.adapters")
"""The packages whose ``__init__`` runs only when one of its own names is asked for."""
NEEDED = (
    "pika.exceptions",
    "pika.spec",
    "pika.credentials",
    "pika.connection",
    "pika.adapters.utils.nbio_interface",
    "pika.adapters.utils.selector_ioloop_adapter",
    "pika.adapters.gevent_connection",
)
"""The modules the back-end uses, imported in this order."""
_VERSION = re.compile(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)


class HollowPackageError(ImportError):
    """pika cannot be loaded piecemeal here (the message says why); it is imported whole instead."""


def _hollow_package(name: str) -> ModuleType:
    """A package module for ``name`` that runs its ``__init__`` on the first miss of a name."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise HollowPackageError(f"{name} is not a package found on the path")
    loader: Any = spec.loader
    if not hasattr(loader, "exec_module"):
        raise HollowPackageError(f"{name}'s loader {loader!r} cannot run a module")
    module = importlib.util.module_from_spec(spec)
    module.__getattr__ = _lazy_init(module, loader)  # type: ignore[method-assign]
    return module


def _lazy_init(module: ModuleType, loader: Any) -> Callable[[str], Any]:
    lock = threading.RLock()
    ran = False

    def __getattr__(attr: str) -> Any:
        nonlocal ran
        if attr.startswith("__") and attr.endswith("__") and attr != "__all__":
            # dunder probes (inspect, pickle, mock: __wrapped__, __loader__...) are not worth 4 MB
            raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")
        submodule = f"{module.__name__}.{attr}"
        if submodule in sys.modules or ("." not in attr and importlib.util.find_spec(submodule) is not None):
            # the import system asks (``from pika import frame`` tries the attribute first); so may
            # anyone who had the full package, where __init__ had imported most submodules
            return importlib.import_module(submodule)
        with lock:
            if not ran:
                ran = True
                _log.debug("%s.%s asked for: running the package's __init__", module.__name__, attr)
                try:
                    loader.exec_module(module)
                except BaseException:
                    ran = False
                    raise
        if attr in module.__dict__:
            return module.__dict__[attr]
        raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")

    return __getattr__


def _package_version(module: ModuleType) -> str:
    loader: Any = module.__spec__.loader if module.__spec__ is not None else None
    source = loader.get_source(module.__name__) if hasattr(loader, "get_source") else None
    found = _VERSION.search(source or "")
    if found is None:
        raise HollowPackageError(f"no __version__ in the source of {module.__name__}")
    return found.group(1)


def _forget_pika() -> None:
    for name in [n for n in sys.modules if n == "pika" or n.startswith("pika.")]:
        del sys.modules[name]


def load() -> bool:
    """Make the modules in :data:`NEEDED` importable without pika's ``__init__``; True if hollow.

    False when pika was imported already (it is used as is) or cannot be loaded piecemeal (then it
    is imported whole).
    """
    if "pika" in sys.modules:
        return "__getattr__" in vars(sys.modules["pika"])  # the real package defines none
    try:
        pika = _hollow_package("pika")
        pika.__version__ = _package_version(pika)  # type: ignore[attr-defined]
        sys.modules["pika"] = pika
        # as the import system does, with the __init__ that adds it to pika's logger
        logging.getLogger("pika").addHandler(logging.NullHandler())
        adapters = _hollow_package("pika.adapters")
        sys.modules["pika.adapters"] = adapters
        pika.adapters = adapters  # type: ignore[attr-defined]
        for name in NEEDED:
            importlib.import_module(name)
    except (ImportError, OSError, AttributeError, ValueError) as exc:
        _log.debug("pika is imported whole (%s: %s)", type(exc).__name__, exc)
        _forget_pika()
        importlib.import_module("pika")
        return False
    return True


load()

# the names come after load() has made the hollow packages
from pika import data as pika_data  # noqa: E402
from pika import exceptions  # noqa: E402
from pika import frame as frame_module  # noqa: E402
from pika.adapters.gevent_connection import GeventConnection  # noqa: E402
from pika.adapters.utils import io_services_utils  # noqa: E402
from pika.adapters.utils.nbio_interface import AbstractIOReference  # noqa: E402
from pika.adapters.utils.selector_ioloop_adapter import (  # noqa: E402
    AbstractSelectorIOLoop,
    SelectorIOServicesAdapter,
)
from pika.connection import ConnectionParameters, SSLOptions  # noqa: E402
from pika.credentials import ExternalCredentials, PlainCredentials  # noqa: E402
from pika.spec import Basic, BasicProperties  # noqa: E402

__all__ = [
    "AbstractIOReference",
    "AbstractSelectorIOLoop",
    "Basic",
    "BasicProperties",
    "ConnectionParameters",
    "ExternalCredentials",
    "GeventConnection",
    "PlainCredentials",
    "SSLOptions",
    "SelectorIOServicesAdapter",
    "exceptions",
    "frame_module",
    "io_services_utils",
    "load",
    "pika_data",
]
