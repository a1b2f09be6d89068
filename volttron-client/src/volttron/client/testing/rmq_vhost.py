"""A RabbitMQ virtual host of its own for one test platform (``VolttronPlatform(message_bus="rmq")``).

:meth:`BrokerVirtualHost.create` prepares the local broker and the platform's home as
``vcfg rabbitmq single`` does (vhost ``<instance>-vhost``, the platform's broker user,
``rabbitmq_config.yml``, ``message-bus = rmq``); :meth:`~BrokerVirtualHost.delete` removes the
vhost and every broker user of the instance. Tests on the same broker never see each other's
traffic. No broker on ``127.0.0.1:5672`` raises
:class:`~volttron.client.testing.platform.PlatformUnavailable` (the fixtures skip, or fail when
``VOLTTRON_TEST_REQUIRE_RABBITMQ=1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volttron.client.messagebus.rmq_admin import BrokerAdmin, BrokerAdminError, broker_admin, port_open
from volttron.client.messagebus.rmq_config import BrokerSettings
from volttron.client.messagebus.rmq_setup import SingleSetup, setup_single

HOST = "localhost"
PORT = 5672


@dataclass
class BrokerVirtualHost:
    """One test platform's vhost on the local broker."""

    instance: str
    vhost: str
    admin: BrokerAdmin

    @classmethod
    def create(cls, instance: str, home: Path) -> BrokerVirtualHost:
        """Make the vhost and the platform's broker configuration in ``home``."""
        from volttron.client.testing.platform import PlatformError, PlatformUnavailable

        if not port_open("127.0.0.1", PORT):
            raise PlatformUnavailable(f"no RabbitMQ broker answers on 127.0.0.1:{PORT}")
        vhost = f"{instance}-vhost"
        try:
            admin = broker_admin(BrokerSettings(host=HOST, port=PORT, vhost=vhost, instance_name=instance))
            setup_single(SingleSetup(home=home, instance_name=instance, host=HOST, vhost=vhost), admin)
        except BrokerAdminError as exc:
            raise PlatformError(f"cannot prepare RabbitMQ vhost {vhost!r}: {exc}") from exc
        return cls(instance, vhost, admin)

    def delete(self) -> None:
        """Delete the vhost and the instance's broker users."""
        self.admin.delete_vhost(self.vhost)
        for user in self.admin.users():
            if user.startswith((f"{self.instance}.", f"{self.instance}-")):
                self.admin.delete_user(user)
