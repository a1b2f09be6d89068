"""The listener agent: subscribes to every topic on every platform and logs what it receives.

Configuration: see :mod:`listener.settings` and the ``config`` file beside this package's
``pyproject.toml``. Started by the platform through the ``volttron-listener`` console script.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from listener import __version__
from listener.settings import ListenerSettings, format_message, parse_settings
from volttron.client.messaging.health import STATUS_GOOD
from volttron.client.runner import vip_main
from volttron.client.vip.agent import Agent, Core, PubSub
from volttron.utils.config import load_config
from volttron.utils.logging import setup_logging

_log = logging.getLogger(__name__)


class ListenerAgent(Agent):
    """Logs every message published on the platform (and on connected platforms)."""

    def __init__(self, config_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings: ListenerSettings = parse_settings(load_config(config_path))

    @Core.receiver("onsetup")
    def onsetup(self, sender: Any, **kwargs: Any) -> None:
        """Log the configured message before connecting."""
        _log.info("%s (agentid %s)", self.settings.message, self.settings.agentid)

    @Core.receiver("onstart")
    def onstart(self, sender: Any, **kwargs: Any) -> None:
        """Log the version, start the heartbeat, report GOOD health, arm the runtime limit."""
        _log.info("VERSION IS: %s", self.core.version())
        if self.settings.heartbeat_period != 0:
            self.vip.heartbeat.start_with_period(self.settings.heartbeat_period)
            self.vip.health.set_status(STATUS_GOOD, self.settings.message)
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
