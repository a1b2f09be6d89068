"""Runs the configuration store in the platform process (a ``PlatformService``).

``start()`` reads every store from ``$VOLTTRON_HOME/configuration_store/`` (corrupt files are
reported in the log and moved aside; the platform starts regardless), then connects
:class:`~volttron.server.services.config_store.agent.ConfigStoreAgent` as ``platform.config_store``
to ``inproc://vip``. File writes run in gevent's thread pool so that ``fsync`` never stalls the
router. With authentication on, capabilities come from ``auth.json``, re-read when it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import gevent

from volttron.client.runner import build_agent
from volttron.server.context import PlatformContext
from volttron.server.identities import CONFIGURATION_STORE
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.config_store.agent import ConfigStoreAgent
from volttron.server.services.config_store.configs import ConfigStoreError
from volttron.server.services.config_store.store import ConfigStore
from volttron.utils.errors import VolttronError
from volttron.utils.home import auth_file_path, config_store_dir

_log = logging.getLogger(__name__)


def _in_thread(function: Any, *args: Any) -> Any:
    return gevent.get_hub().threadpool.apply(function, args)


class ConfigStoreService:
    """The ``platform.config_store`` service; see the module docstring."""

    START_TIMEOUT = 10.0
    STOP_TIMEOUT = 5.0

    def __init__(self, context: PlatformContext, push_timeout: float = 30.0) -> None:
        self.context = context
        self.push_timeout = push_timeout
        self.store = ConfigStore(config_store_dir(context.home), run_io=_in_thread)
        self.problems: list[str] = []
        self.agent: ConfigStoreAgent | None = None

    def start(self) -> None:
        """Load the stores, connect, and wait for the welcome; :class:`ConfigStoreError` on failure."""
        ctx = self.context
        self.problems = self.store.load()
        for problem in self.problems:
            _log.error("configuration store: %s", problem)
        try:
            self.agent = build_agent(
                agent_class=ConfigStoreAgent,
                store=self.store,
                capabilities=self._capability_source() if ctx.auth_enabled else None,
                push_timeout=self.push_timeout,
                identity=CONFIGURATION_STORE,
                address=ctx.router_address,
                context=ctx.zmq_context,
                volttron_home=str(ctx.home),
                instance_name=ctx.instance_name,
                message_bus="zmq",
                enable_store=False,
                heartbeat_autostart=False,
                enable_auth=ctx.auth_enabled,
                timeout=self.START_TIMEOUT,
            )
        except VolttronError as exc:
            raise ConfigStoreError(f"the configuration store could not connect: {exc}") from None
        _log.info("configuration store %s serving %d store(s) from %s", CONFIGURATION_STORE,
                  len(self.store.identities()), self.store.directory)

    def _capability_source(self) -> Any:
        try:
            policy = AuthPolicy(auth_file_path(self.context.home))
        except VolttronError as exc:
            _log.error("configuration store: cannot read the auth policy (%s); administration is refused",
                       exc)
            return None

        def capabilities(user: str) -> Mapping[str, Any]:
            return policy.capabilities().get(user, {})

        return capabilities

    def stop(self) -> None:
        """Stop pushing and disconnect."""
        agent, self.agent = self.agent, None
        if self.store.pusher is not None:
            self.store.pusher.stop(timeout=self.STOP_TIMEOUT)
        if agent is not None:
            agent.core.stop(timeout=self.STOP_TIMEOUT)

    def statistics(self) -> dict[str, Any]:
        """Counts of stores, configurations and pushes."""
        return self.store.statistics()

    def __repr__(self) -> str:
        return f"ConfigStoreService({CONFIGURATION_STORE!r})"


def config_store_service(context: PlatformContext) -> ConfigStoreService:
    """The service factory for :func:`volttron.server.main.default_services`."""
    return ConfigStoreService(context)
