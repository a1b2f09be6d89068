"""A test agent written with the PUBLISHED VOLTTRON client (volttron-core 2.x), for test_published_client.py.

It runs in a virtual environment of its own (volttron-core 2.0.0rc38 and volttron-lib-zmq), never
in ours. ``vip_main`` reads ``AGENT_CREDENTIALS``, ``AGENT_VIP_IDENTITY`` and ``VOLTTRON_HOME``
(``config`` for the address, ``credentials_store/platform.json`` for the server key), as every
published agent does. At start it calls ``PEER.ping``, reads its ``config`` entry, sets its health,
subscribes to ``to_published/`` (answering on ``from_published/<identity>``), tries to publish on
``secure/<identity>`` and then reports what happened on ``published/report/<identity>``.
It exports ``echo`` (open) and ``secret`` (protected by the test's auth.json entry).
"""

import logging
import os
import sys

from volttron.client.messaging.health import STATUS_GOOD
from volttron.client.vip.agent import RPC, Agent, Core
from volttron.utils.commands import vip_main

_log = logging.getLogger(__name__)
PEER = os.environ.get("TEST_PEER", "ours")


class PublishedAgent(Agent):
    """Exercises pub/sub, RPC, the config store and health with the published client."""

    def __init__(self, **kwargs):
        kwargs.pop("config_path", None)
        super().__init__(**kwargs)
        self.configs = {}
        self.vip.config.subscribe(self.configure, actions=["NEW", "UPDATE"], pattern="config")

    def configure(self, config_name, action, contents):
        self.configs[config_name] = contents

    @Core.receiver("onstart")
    def onstart(self, sender, **kwargs):
        identity = self.core.identity
        self.vip.pubsub.subscribe("pubsub", "to_published/", self.on_message).get(timeout=10)
        report = {"identity": identity}
        try:
            report["ping"] = self.vip.rpc.call(PEER, "ping", identity).get(timeout=10)
        except Exception as exc:
            report["ping_error"] = f"{type(exc).__name__}: {exc}"
        try:
            report["guarded"] = self.vip.rpc.call(PEER, "guarded").get(timeout=10)
        except Exception as exc:
            report["guarded_error"] = f"{type(exc).__name__}: {exc}"
        try:
            report["config"] = self.vip.config.get("config")
        except Exception as exc:
            report["config_error"] = f"{type(exc).__name__}: {exc}"
        self.vip.health.set_status(STATUS_GOOD, f"{identity} is fine")
        self.vip.pubsub.publish("pubsub", f"secure/{identity}", message="secure")
        self.vip.pubsub.publish("pubsub", f"published/report/{identity}", message=report)

    def on_message(self, peer, sender, bus, topic, headers, message):
        self.vip.pubsub.publish("pubsub", f"from_published/{self.core.identity}",
                                message={"echo": message, "sender": sender})

    @RPC.export
    def echo(self, text):
        return text

    @RPC.export
    def secret(self, text):
        return f"secret {text}"


def main():
    vip_main(PublishedAgent)


if __name__ == "__main__":
    sys.exit(main())
