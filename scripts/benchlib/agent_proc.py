"""A minimal agent in its own process, run through ``vip_main`` like any installed agent.

The benchmark measures this process's RSS once the agent has started (it prints ``ready`` from
``onstart``). The keys and address come from the environment (``AGENT_*``, ``VOLTTRON_*``).
"""

from __future__ import annotations

import sys

from volttron.client.runner import vip_main
from volttron.client.vip.agent import Agent, Core


class IdleAgent(Agent):
    """Connects, publishes the default heartbeat, and otherwise waits."""

    @Core.receiver("onstart")
    def announce(self, sender, **kwargs) -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()


if __name__ == "__main__":
    vip_main(IdleAgent)
