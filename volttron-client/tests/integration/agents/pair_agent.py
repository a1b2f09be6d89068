"""An agent run by the integration tests in its own process, through vip_main.

It answers ``add``, calls its peers, publishes, records what it receives under ``test/``, and
writes ``$STOP_MARKER`` from ``onstop`` (to prove a signal stops it cleanly).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from volttron.client.runner import vip_main
from volttron.client.vip.agent import RPC, Agent, Core, PubSub
from volttron.client.vip.agent.errors import Unreachable


class PairAgent(Agent):
    def __init__(self, config_path=None, **kwargs):
        super().__init__(**kwargs)
        self.received = []
        timeout = os.environ.get("TEST_WELCOME_TIMEOUT")
        if timeout:
            self.core.welcome_timeout = float(timeout)

    @RPC.export
    def add(self, a, b):
        return a + b

    @RPC.export
    def call_peer(self, peer, a, b):
        return self.vip.rpc.call(peer, "add", a, b).get(timeout=5)

    @RPC.export
    def publish(self, topic, message):
        return self.vip.pubsub.publish("pubsub", topic, message=message).get(timeout=5)

    @RPC.export
    def received_messages(self):
        return self.received

    @RPC.export
    def call_missing(self):
        started = time.monotonic()
        try:
            self.vip.rpc.call("no.such.agent", "add", 1, 2).get(timeout=10)
        except Unreachable as exc:
            return {"error": type(exc).__name__, "seconds": time.monotonic() - started}
        return {"error": None, "seconds": time.monotonic() - started}

    @PubSub.subscribe("pubsub", "test/")
    def on_test(self, peer, sender, bus, topic, headers, message):
        self.received.append([sender, topic, message])

    @Core.receiver("onstop")
    def on_stop(self, sender, **kwargs):
        marker = os.environ.get("STOP_MARKER")
        if marker:
            Path(marker).write_text("stopped")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    vip_main(PairAgent, version="1.0")


if __name__ == "__main__":
    main()
