"""Runs the configuration store in the platform process (a ``PlatformService``).

``start()`` reads every store from ``$VOLTTRON_HOME/configuration_store/`` (corrupt files are
reported in the log and moved aside; the platform starts regardless), then connects
:class:`~volttron.server.services.config_store.agent.ConfigStoreAgent` as ``platform.config_store``
to ``inproc://vip``. File writes run in gevent's thread pool so that ``fsync`` never stalls the
router. With authentication on, capabilities come from ``auth.json``, re-read when it changes.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from volttron.server.context import PlatformContext
from volttron.server.identities import CONFIGURATION_STORE
from volttron.server.services.base import InProcessService
from volttron.server.services.config_store.agent import ConfigStoreAgent
from volttron.server.services.config_store.configs import ConfigStoreError
from volttron.server.services.config_store.store import AgentStores
from volttron.utils.home import config_store_dir

_log = logging.getLogger(__name__)


def _in_thread(function: Any, *args: Any) -> Any:
    return gevent.get_hub().threadpool.apply(function, args)


class ConfigStoreService(InProcessService):
    """The ``platform.config_store`` service; see the module docstring."""

    identity = CONFIGURATION_STORE
    title = "the configuration store"
    error = ConfigStoreError

    def __init__(self, context: PlatformContext, push_timeout: float = 30.0) -> None:
        super().__init__(context)
        self.push_timeout = push_timeout
        self.store = AgentStores(config_store_dir(context.home), run_io=_in_thread)
        self.problems: list[str] = []

    def start(self) -> None:
        """Load the stores, connect, and wait for the welcome; :class:`ConfigStoreError` on failure."""
        self.problems = self.store.load()
        for problem in self.problems:
            _log.error("configuration store: %s", problem)
        self.connect(ConfigStoreAgent, store=self.store, push_timeout=self.push_timeout,
                     capabilities=self.capability_source() if self.context.auth_enabled else None)
        _log.info("configuration store %s serving %d store(s) from %s", CONFIGURATION_STORE,
                  len(self.store.identities()), self.store.directory)

    def stop(self) -> None:
        """Stop pushing and disconnect."""
        if self.store.pusher is not None:
            self.store.pusher.stop(timeout=self.STOP_TIMEOUT)
        super().stop()

    def statistics(self) -> dict[str, Any]:
        """Counts of stores, configurations and pushes."""
        return self.store.statistics()


def config_store_service(context: PlatformContext) -> ConfigStoreService:
    """The service factory for :func:`volttron.server.main.default_services`."""
    return ConfigStoreService(context)
