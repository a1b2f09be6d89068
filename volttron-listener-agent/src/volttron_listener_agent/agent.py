"""The listener agent: subscribes to every topic on every platform and logs what it receives.

Configuration: see :mod:`volttron_listener_agent.settings` and the ``config`` file beside this package's
``pyproject.toml``. The file (``vctl install ... --agent-config FILE``) is the default; the entry
``config`` of the agent's configuration store wins, and a change to it applies at once
(``vctl config store <identity> config FILE``): message, heartbeat period, log level. Started by
the platform through the ``volttron-listener-agent`` console script.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from volttron.client.messaging.health import STATUS_GOOD
from volttron.client.runner import vip_main
from volttron.client.vip.agent import Agent, Core, PubSub
from volttron.utils.config import load_config
from volttron.utils.logging import setup_logging
from volttron_listener_agent import __version__
from volttron_listener_agent.settings import ListenerSettings, format_message, parse_settings

_log = logging.getLogger(__name__)


class ListenerAgent(Agent):
    """Logs every message published on the platform (and on connected platforms)."""

    def __init__(self, config_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        file_config = load_config(config_path)
        self.settings: ListenerSettings = parse_settings(file_config)
        self._started = False
        # The file is the default; the store's "config" wins and is followed live.
        config = self.vip.config
        assert config is not None  # Agent's enable_store is on (its default)
        config.set_default("config", dict(file_config))
        config.subscribe(self.configure, actions=["NEW", "UPDATE"], pattern="config")

    def configure(self, config_name: str, action: str, contents: Any) -> None:
        """Apply a new or changed configuration; one that is not a mapping is logged and ignored."""
        if not isinstance(contents, Mapping):
            _log.error("configuration %r ignored: expected a JSON object, got %s", config_name,
                       type(contents).__name__)
            return
        self.settings = parse_settings(contents)
        heartbeat = (f"heartbeat every {self.settings.heartbeat_period:g} s"
                     if self.settings.heartbeat_period else "heartbeat left as it is")
        _log.info("configuration %r %s: message %r, %s, messages logged at %s", config_name,
                  "updated" if action == "UPDATE" else "loaded", self.settings.message, heartbeat,
                  logging.getLevelName(self.settings.log_level))
        if self._started:
            self._apply_heartbeat()

    def _apply_heartbeat(self) -> None:
        period = self.settings.heartbeat_period
        if period == 0:
            return
        heartbeat = self.vip.heartbeat
        if not (heartbeat.running and heartbeat.period == period):
            heartbeat.start_with_period(period)
        self.vip.health.set_status(STATUS_GOOD, self.settings.message)

    @Core.receiver("onsetup")
    def onsetup(self, sender: Any, **kwargs: Any) -> None:
        """Log the configured message before connecting."""
        _log.info("%s (agentid %s)", self.settings.message, self.settings.agentid)

    @Core.receiver("onstart")
    def onstart(self, sender: Any, **kwargs: Any) -> None:
        """Log the version, start the heartbeat, report GOOD health, arm the runtime limit."""
        _log.info("VERSION IS: %s", self.core.version())
        self._started = True
        self._apply_heartbeat()
        if self.settings.runtime_limit is not None:
            _log.info("stopping after %g s (runtime_limit)", self.settings.runtime_limit)
            self.core.schedule(time.time() + self.settings.runtime_limit, self.core.stop)

    @PubSub.subscribe("pubsub", "", all_platforms=True)
    def on_match(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        """Log every message received, at the configured level."""
        _log.log(self.settings.log_level, "%s", format_message(peer, sender, bus, topic, headers, message))


def main() -> int:
    """Run the listener until it is stopped; the exit code is 1 after an unexpected error."""
    setup_logging(logging.DEBUG)
    try:
        vip_main(ListenerAgent, version=__version__)
    except KeyboardInterrupt:
        return 0
    except Exception:  # the platform log must say why the agent died
        _log.exception("unhandled exception in the listener agent")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
