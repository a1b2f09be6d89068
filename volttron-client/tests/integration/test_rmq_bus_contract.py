"""The message-bus contract (``bus_contract.py``) on a platform running RabbitMQ.

Each test gets its own instance name and vhost (deleted afterwards), a home prepared by
``vcfg rabbitmq single``, and ``volttron --message-bus rmq`` (``rmq_harness.py``). Agents connect
over AMQP as their own broker users, with the passwords derived from their CURVE keys: the
platform makes the users from ``auth.json``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from volttron.client.messagebus.rmq_testing import broker_instance

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def load(name: str):
    """A helper module of this folder (test modules are imported by path: --import-mode=importlib)."""
    key = f"volttron_client_tests_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


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
