"""Test helpers for code that runs on RabbitMQ: a broker check and a vhost per test.

Every RabbitMQ test calls :func:`broker_instance` (through a fixture of its own)::

    @pytest.fixture
    def rmq():
        with broker_instance() as instance:
            yield instance

which skips the test, saying why, when no broker answers on ``127.0.0.1:5672`` - or fails it when
``VOLTTRON_TEST_REQUIRE_RABBITMQ=1`` (CI sets it) - and gives it a :class:`BrokerInstance`: a
unique instance name and vhost, deleted again at the end with every user of that instance.

Tests run in parallel processes; one that restarts the broker takes the broker *exclusively*
(:func:`broker_lease`), the others share it, so a restart never pulls the broker from under another
test.

The tests administer the broker through its management API (:func:`local_admin`: an HTTP request,
about a millisecond) when the ``rabbitmq_management`` plugin answers on ``127.0.0.1:15672`` (CI
enables it, see ``.ci/run``), else through ``rabbitmqctl`` (each call starts an Erlang VM: half a
second or more of CPU). ``VOLTTRON_TEST_BROKER_ADMIN=rabbitmqctl`` forces the latter.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from volttron.client.messagebus.rmq_admin import BrokerAdmin, BrokerAdminError, CtlAdmin, HttpAdmin, port_open
from volttron.utils.files import FileLock

REQUIRE_ENV = "VOLTTRON_TEST_REQUIRE_RABBITMQ"
ADMIN_ENV = "VOLTTRON_TEST_BROKER_ADMIN"
HOST = "127.0.0.1"
PORT = 5672
MGMT_PORT = 15672
MGMT_LOGIN = ("guest", "guest")
"""The local broker's default administrator (it may log in from this host only)."""
LEASE_FILE = "volttron-rabbitmq-tests.lock"


def management_url(host: str = HOST, port: int = MGMT_PORT) -> str | None:
    """``http://host:port`` when the management API answers there (and is not turned off by
    ``VOLTTRON_TEST_BROKER_ADMIN=rabbitmqctl``), else None."""
    if os.environ.get(ADMIN_ENV, "").strip().lower() == CtlAdmin.kind:
        return None
    return f"http://{host}:{port}" if port_open(host, port, timeout=1.0) else None


def local_admin(host: str = HOST) -> BrokerAdmin:
    """The local broker's administration for tests: the management API when it answers, else
    ``rabbitmqctl`` (see the module docstring)."""
    url = management_url(host)
    return HttpAdmin(url, *MGMT_LOGIN) if url else CtlAdmin()


def broker_required() -> bool:
    """True when ``VOLTTRON_TEST_REQUIRE_RABBITMQ=1``: then a missing broker fails tests, never skips them."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def require_broker(host: str = HOST, port: int = PORT) -> None:
    """Skip the calling test (or fail it, see :func:`broker_required`) when no broker answers."""
    import pytest

    if port_open(host, port):
        return
    reason = f"no RabbitMQ broker answers on {host}:{port}"
    if broker_required():
        pytest.fail(f"{reason} and {REQUIRE_ENV}=1", pytrace=False)
    pytest.skip(reason)


@dataclass
class BrokerInstance:
    """A platform instance name and vhost of one test, on the local broker."""

    instance: str
    vhost: str
    admin: BrokerAdmin
    host: str = HOST
    port: int = PORT
    ctl: CtlAdmin = field(default_factory=CtlAdmin)
    """``rabbitmqctl``, for what only it shows at once: connections (the management API lists them
    only after its next statistics round, seconds later)."""

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """``amqp://[user:password@]host:port/vhost?instance=...``."""
        login = f"{user}:{password}@" if user else ""
        return f"amqp://{login}{self.host}:{self.port}/{self.vhost}?instance={self.instance}"

    def connections(self) -> list[dict[str, str]]:
        """The broker's connections to this vhost: ``{"pid", "user", "name"}`` each.

        ``name`` is the client's connection name (``<instance>.<identity>`` for our peers).
        """
        admin = self.ctl
        rows = admin._json("list_connections", "name", "user", "vhost", "client_properties")  # noqa: SLF001
        # The JSON form abbreviates process ids; close_connection needs the full one of the table form.
        table = admin._run("list_connections", "pid", "name").splitlines()  # noqa: SLF001
        pids = {name: pid for pid, _, name in (line.partition("\t") for line in table) if name}
        found = []
        for row in rows:
            if row.get("vhost") != self.vhost:
                continue
            client = ""
            for item in row.get("client_properties") or []:  # [[key, type, value], ...]
                if isinstance(item, list) and len(item) == 3 and item[0] == "connection_name":
                    client = str(item[2])
            found.append({"pid": pids.get(str(row.get("name")), ""), "user": str(row.get("user")),
                          "name": client})
        return found

    def close_connections(self, name: str, reason: str = "closed by a test") -> int:
        """Close the connections whose client name is ``name`` (e.g. ``<instance>.<identity>``)."""
        closed = 0
        for row in self.connections():
            if row["name"] == name and row["pid"]:
                with contextlib.suppress(BrokerAdminError):  # already gone
                    self.ctl._run("close_connection", row["pid"], reason)  # noqa: SLF001
                    closed += 1
        return closed

    def prepare_home(self, home: Path, **settings: object) -> None:
        """``vcfg rabbitmq single`` for this instance and vhost into ``home`` (``settings``: more fields).

        Plain AMQP unless ``ssl=True`` is given: the test broker has no TLS listener.
        """
        from volttron.client.messagebus.rmq_setup import SingleSetup, setup_single

        settings.setdefault("ssl", False)
        setup = SingleSetup(home=home, instance_name=self.instance, host=self.host, vhost=self.vhost,
                            amqp_port=self.port, **settings)  # type: ignore[arg-type]
        setup_single(setup, self.admin)

    def cleanup(self) -> None:
        """Delete the vhost and every user of this instance."""
        errors = []
        try:
            self.admin.delete_vhost(self.vhost)
        except BrokerAdminError as exc:
            errors.append(str(exc))
        try:
            mine = (f"{self.instance}.", f"{self.instance}-")
            users = [user for user in self.admin.users() if user.startswith(mine)]
            with ThreadPoolExecutor(max_workers=8) as pool:  # rabbitmqctl takes a while per call
                for done in list(pool.map(_attempt(self.admin.delete_user), users)):
                    if done:
                        errors.append(done)
        except BrokerAdminError as exc:
            errors.append(str(exc))
        if errors:
            raise BrokerAdminError("; ".join(errors))


def _attempt(action: Callable[[str], None]) -> Callable[[str], str]:
    def run(name: str) -> str:
        try:
            action(name)
        except BrokerAdminError as exc:
            return str(exc)
        return ""

    return run


@contextlib.contextmanager
def broker_lease(exclusive: bool = False, timeout: float = 600.0) -> Iterator[None]:
    """Hold the local broker shared (most tests) or exclusively (a test that restarts it)."""
    lock = FileLock(Path(tempfile.gettempdir()) / LEASE_FILE, shared=not exclusive, mode=0o666)
    with lock.hold(timeout, "the RabbitMQ broker's lease"):
        yield


@contextlib.contextmanager
def broker_instance(prefix: str = "vt", exclusive: bool = False) -> Iterator[BrokerInstance]:
    """A unique instance name and vhost on the local broker for one test; see the module docstring."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    with broker_lease(exclusive):
        require_broker()  # with the lease: a test restarting the broker has finished
        instance = BrokerInstance(instance=name, vhost=f"{name}-vhost", admin=local_admin())
        try:
            yield instance
        finally:
            instance.cleanup()
