"""The run's own place on the local RabbitMQ broker: an instance name and vhost, removed afterwards.

The platform's home is prepared for that instance and vhost as ``vcfg rabbitmq single`` does
(:meth:`BrokerInstance.prepare_home`); the raw pika baseline gets a user of its own on the same
vhost and its own exchange. Whatever happens in between (a failed measurement, Ctrl-C, SIGTERM), the
vhost and every user of the instance are deleted on the way out; the cleanup itself is not
interrupted by a second Ctrl-C. While the run holds the broker, tests that restart it wait
(:func:`broker_lease`, shared).
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import uuid
from collections.abc import Iterator

import psutil
from raw_pika import Broker

from volttron.client.messagebus.rmq_admin import ADMIN_PERMISSIONS, BrokerAdminError, CtlAdmin, port_open
from volttron.client.messagebus.rmq_testing import BrokerInstance, broker_lease

LEASE_TIMEOUT = 120.0
"""How long the run waits for a test that restarts the broker to give it back."""


def broker_answers(host: str, port: int) -> bool:
    """Whether a broker accepts TCP connections at ``host:port``."""
    return port_open(host, port, timeout=2.0)


def broker_pid() -> int | None:
    """The local broker's Erlang VM, for its CPU time; None when not found.

    It is the ``beam.smp`` started with ``-s rabbit boot``: every ``rabbitmqctl`` call runs a
    ``beam.smp`` of its own for a moment.
    """
    for process in psutil.process_iter(["name", "cmdline"]):
        args = process.info["cmdline"] or []
        if process.info["name"] == "beam.smp" and any(
                args[i:i + 3] == ["-s", "rabbit", "boot"] for i in range(len(args))):
            return process.pid
    return None


@contextlib.contextmanager
def run_instance(host: str, port: int) -> Iterator[tuple[BrokerInstance, Broker]]:
    """A fresh instance and vhost for the platform and a login on it for the raw clients."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    with broker_lease(exclusive=False, timeout=LEASE_TIMEOUT):
        instance = BrokerInstance(instance=name, vhost=f"{name}-vhost", admin=CtlAdmin(), host=host,
                                  port=port)
        try:
            instance.admin.add_vhost(instance.vhost)
            raw = Broker(host=host, port=port, vhost=instance.vhost, user=f"{name}-raw",
                         password=secrets.token_urlsafe(18))
            instance.admin.put_user(raw.user, raw.password, tags=(),
                                    grant=(instance.vhost, ADMIN_PERMISSIONS))
            yield instance, raw
        finally:
            _cleanup(instance)


def _cleanup(instance: BrokerInstance) -> None:
    """Delete the vhost and users, with Ctrl-C and SIGTERM held off until it is done."""
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        instance.cleanup()
    except BrokerAdminError as exc:
        sys.stderr.write(f"bench: warning: could not remove vhost {instance.vhost} and the users "
                         f"{instance.instance}-*/{instance.instance}.*: {exc}\n")
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
