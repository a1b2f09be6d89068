"""The message-bus contract (``bus_contract.py``) on a platform running RabbitMQ.

Each test gets its own instance name and vhost (deleted afterwards), a home prepared by
``vcfg rabbitmq single``, and ``volttron --message-bus rmq`` (``rmq_harness.py``). Agents connect
over AMQP as their own broker users, with the passwords derived from their CURVE keys: the
platform makes the users from ``auth.json``.
"""

from __future__ import annotations

import pytest

from volttron.client.messagebus.rmq_testing import broker_instance
from volttron.client.testing.modules import load_beside

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def load(name: str):
    """A helper module of this folder, imported once by path."""
    return load_beside(__file__, name, f"volttron_client_tests_{name}")


harness = load("rmq_harness")


@pytest.fixture
def rmq_platform(tmp_path):
    with broker_instance("contract") as broker:
        platform = harness.RmqPlatform(tmp_path, broker).start()
        try:
            yield platform
        finally:
            platform.stop()


class TestRmqBusContract(load("bus_contract").BusContract):
    @pytest.fixture
    def bus(self, rmq_platform):
        bus = harness.RmqBus(rmq_platform)
        yield bus
        bus.close()
