"""A RabbitMQ virtual host of its own for one test platform (``VolttronPlatform(message_bus="rmq")``).

Built on :mod:`volttron.client.messagebus.rmq_testing`: :meth:`BrokerVirtualHost.create` holds the
broker *shared* for as long as the platform lives (so a test that restarts the broker waits for it)
and prepares the broker and the platform's home as ``vcfg rabbitmq single`` does;
:meth:`~BrokerVirtualHost.delete` removes the vhost and every broker user of the instance. No broker
on ``127.0.0.1:5672`` raises :class:`~volttron.client.testing.platform.PlatformUnavailable` (the
fixtures skip, or fail when ``VOLTTRON_TEST_REQUIRE_RABBITMQ=1``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from volttron.client.messagebus.rmq_admin import BrokerAdmin, BrokerAdminError, port_open
from volttron.client.messagebus.rmq_testing import HOST, PORT, BrokerInstance, broker_lease, local_admin


@dataclass
class BrokerVirtualHost:
    """One test platform's vhost on the local broker, with its hold on the broker."""

    broker: BrokerInstance
    lease: contextlib.ExitStack

    @property
    def admin(self) -> BrokerAdmin:
        """The broker administration used for this vhost."""
        return self.broker.admin

    @classmethod
    def create(cls, instance: str, home: Path) -> BrokerVirtualHost:
        """Make the vhost and the platform's broker configuration in ``home``."""
        from volttron.client.testing.errors import PlatformUnavailable, VolttronPlatformError

        vhost = f"{instance}-vhost"
        lease = contextlib.ExitStack()
        lease.enter_context(broker_lease())  # first: a test restarting the broker has finished
        if not port_open(HOST, PORT):
            lease.close()
            raise PlatformUnavailable(f"no RabbitMQ broker answers on {HOST}:{PORT}")
        try:
            broker = BrokerInstance(instance=instance, vhost=vhost, admin=local_admin())
            broker.prepare_home(home)
        except BrokerAdminError as exc:
            lease.close()
            raise VolttronPlatformError(f"cannot prepare RabbitMQ vhost {vhost!r}: {exc}") from exc
        return cls(broker, lease)

    def delete(self) -> None:
        """Delete the vhost and the instance's broker users, then let go of the broker."""
        try:
            self.broker.cleanup()
        finally:
            self.lease.close()
