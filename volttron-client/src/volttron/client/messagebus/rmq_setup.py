"""Preparing a broker for one platform instance: ``vcfg rabbitmq single`` (docs/protocol.md §6.1, §6.2).

:func:`setup_single` makes, on the broker: the vhost (default ``volttron``), the platform's user
``<instance>-admin`` with every permission on it, and the exchanges ``undeliverable`` (fanout) and
``volttron`` (topic, alternate exchange ``undeliverable``); in ``$VOLTTRON_HOME``:
``rabbitmq_config.yml`` (mode 0600: it holds the platform's broker password) and
``message-bus = rmq`` with the instance name in ``config``.

TLS is the default (``ssl: true``; plain AMQP, where the platform's and agents' passwords cross the
network in clear PLAIN, is the explicit choice ``ssl: false`` / ``--no-ssl``). With it, it also
makes the instance's certificate authority, the broker's server
certificate ``<instance>-server`` and the platform's client certificate ``<instance>-admin``
(:mod:`volttron.utils.certs`), and writes the broker configuration for TLS with EXTERNAL
authentication (certificate common name = broker user) to ``<broker-config-dir>/rabbitmq.conf``.
The running broker is never reconfigured: installing that file and restarting the broker is the
administrator's decision (the report says how).

Everything is idempotent: a second run keeps the password, certificates and objects of the first.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from volttron.client.messagebus.rmq_admin import (
    ADMIN_PERMISSIONS,
    BrokerAdmin,
    BrokerAdminError,
    BrokerDown,
    broker_admin,
    declare_exchanges,
    port_open,
)
from volttron.client.messagebus.rmq_config import (
    AMQP_PORT,
    AMQPS_PORT,
    DEFAULT_VHOST,
    MGMT_PORT,
    MGMT_PORT_SSL,
    BrokerSettings,
    rabbitmq_config_path,
)
from volttron.client.messagebus.rmq_wire import admin_user
from volttron.utils.errors import ConfigError
from volttron.utils.home import certificates_dir, config_file_path

CONFIG_KEYS = ("host", "virtual-host", "amqp-port", "amqp-port-ssl", "mgmt-port", "mgmt-port-ssl", "ssl",
               "instance-name", "certificate-data", "user", "password", "reconnect-delay",
               "broker-config-dir", "rmq-home", "node-name", "rabbitmq-service", "use-existing-certs")
"""Keys of ``rabbitmq_config.yml`` and of the ``--config`` file (the original's, plus ours)."""


@dataclass(frozen=True)
class SingleSetup:
    """What ``vcfg rabbitmq single`` sets up (the published platform's defaults, docs/protocol.md §6.1)."""

    home: Path
    instance_name: str
    host: str = "localhost"
    vhost: str = DEFAULT_VHOST
    amqp_port: int = AMQP_PORT
    amqps_port: int = AMQPS_PORT
    mgmt_port: int = MGMT_PORT
    mgmts_port: int = MGMT_PORT_SSL
    ssl: bool = True
    """TLS with certificate (EXTERNAL) logins; False: plain AMQP with passwords (an explicit choice)."""
    certificate_data: dict[str, str] = field(default_factory=dict)
    broker_config_dir: Path | None = None
    """Where the TLS broker configuration is written (default ``$VOLTTRON_HOME/rabbitmq``)."""
    bootstrap_user: str | None = None
    """An existing administrator for the management API (not needed with ``rabbitmqctl``)."""
    bootstrap_password: str | None = None


@dataclass
class SetupReport:
    """What :func:`setup_single` did, for the command to print."""

    admin: str = ""
    done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_setup_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a ``--config`` YAML file; unknown keys are an error."""
    from volttron.utils.config import load_config

    data = load_config(path)
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(CONFIG_KEYS)})")
    return data


def setup_single(setup: SingleSetup, admin: BrokerAdmin | None = None) -> SetupReport:
    """Prepare the broker and ``$VOLTTRON_HOME`` for one instance; see the module docstring.

    Raises :class:`~volttron.client.messagebus.rmq_admin.BrokerDown` when the broker does not answer,
    :class:`~volttron.client.messagebus.rmq_admin.BrokerAdminError` when it refuses.
    """
    report = SetupReport(admin=admin_user(setup.instance_name))
    home = setup.home
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    plain = BrokerSettings(host=setup.host, port=setup.amqp_port, vhost=setup.vhost,
                           instance_name=setup.instance_name, mgmt_port=setup.mgmt_port)
    if admin is None:
        ports = [setup.amqp_port, setup.amqps_port] if setup.ssl else [setup.amqp_port]
        reachable = any(port_open(setup.host, port) for port in ports)
        if not reachable:
            raise BrokerDown(f"no RabbitMQ broker answers at {setup.host}:{setup.amqp_port}; start it "
                             "(e.g. 'rabbitmq-server -detached') and run this again")
        admin = broker_admin(plain, setup.bootstrap_user, setup.bootstrap_password)
    admin.check()
    previous = _previous_config(home)
    password = previous.get("password") if previous.get("user") == report.admin else None
    password = str(password) if password else secrets.token_urlsafe(24)

    admin.add_vhost(setup.vhost)
    report.done.append(f"vhost {setup.vhost!r}")
    admin.put_user(report.admin, password, ["administrator"], grant=(setup.vhost, ADMIN_PERMISSIONS))
    report.done.append(f"user {report.admin!r} with every permission on {setup.vhost!r} (via {admin.kind})")
    if port_open(setup.host, setup.amqp_port):
        declare_exchanges(plain.with_login(report.admin, password))
        report.done.append("exchanges 'volttron' (topic, alternate 'undeliverable') and 'undeliverable'")
    else:
        report.notes.append("exchanges not declared (no plain AMQP listener): the platform declares them "
                            "when it starts")
    if setup.ssl:
        _setup_tls(setup, report)
    else:
        report.notes.append("plain AMQP (no TLS): the platform's and agents' broker passwords cross the "
                            "network in clear; use it only on a trusted network")
    _write_config(setup, report, password)
    return report


def _previous_config(home: Path) -> dict[str, Any]:
    path = rabbitmq_config_path(home)
    if not path.is_file():
        return {}
    from volttron.utils.config import load_config

    try:
        return load_config(path)
    except ConfigError:
        return {}


def _setup_tls(setup: SingleSetup, report: SetupReport) -> None:
    from volttron.utils.certs import Certs

    instance = setup.instance_name
    certs = Certs(certificates_dir(setup.home), instance)
    data = setup.certificate_data
    if not certs.ca_exists():
        certs.create_root_ca(organization=str(data.get("organization") or "VOLTTRON"))
        report.done.append(f"certificate authority {certs.root_ca_name}")
    server = f"{instance}-server"
    if not certs.cert_exists(server):
        names = sorted({setup.host, socket.getfqdn(), "localhost"} - {""})
        certs.create_server_cert(server, dns_names=[n for n in names if not _is_ip(n)],
                                 ip_addresses=[n for n in names if _is_ip(n)] + ["127.0.0.1"])
        report.done.append(f"server certificate {server} for {setup.host}")
    if not certs.cert_exists(report.admin):
        certs.create_client_cert(report.admin)
        report.done.append(f"client certificate {report.admin}")
    certs.write_trusted_ca_bundle()
    folder = setup.broker_config_dir or setup.home / "rabbitmq"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "rabbitmq.conf"
    conf.write_text(broker_tls_config(setup, certs.trusted_ca_bundle_path, certs.cert_path(server),
                                      certs.private_key_path(server)))
    report.done.append(f"broker configuration for TLS with EXTERNAL authentication: {conf}")
    report.notes.append(f"to use TLS, append {conf} to the broker's rabbitmq.conf, run 'rabbitmq-plugins "
                        "enable rabbitmq_auth_mechanism_ssl', and restart the broker")


def broker_tls_config(setup: SingleSetup, cafile: Path, certfile: Path, keyfile: Path) -> str:
    """``rabbitmq.conf`` lines for TLS with client certificates and EXTERNAL authentication (§6.1)."""
    lines = [
        "# written by 'vcfg rabbitmq single' for VOLTTRON instance " + setup.instance_name,
        f"listeners.ssl.default = {setup.amqps_port}",
        f"ssl_options.cacertfile = {cafile}",
        f"ssl_options.certfile = {certfile}",
        f"ssl_options.keyfile = {keyfile}",
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = true",
        "ssl_options.versions.1 = tlsv1.3",
        "ssl_options.versions.2 = tlsv1.2",
        "auth_mechanisms.1 = EXTERNAL",
        "auth_mechanisms.2 = PLAIN",
        "ssl_cert_login_from = common_name",
        f"management.ssl.port = {setup.mgmts_port}",
        f"management.ssl.cacertfile = {cafile}",
        f"management.ssl.certfile = {certfile}",
        f"management.ssl.keyfile = {keyfile}",
        f"trust_store.directory = {cafile.parent}",
    ]
    return "\n".join(lines) + "\n"


def _write_config(setup: SingleSetup, report: SetupReport, password: str) -> None:
    import yaml

    from volttron.utils.config import load_platform_config, write_platform_config
    from volttron.utils.files import atomic_write

    values: dict[str, Any] = {
        "host": setup.host,
        "virtual-host": setup.vhost,
        "amqp-port": setup.amqp_port,
        "amqp-port-ssl": setup.amqps_port,
        "mgmt-port": setup.mgmt_port,
        "mgmt-port-ssl": setup.mgmts_port,
        "ssl": setup.ssl,
        "instance-name": setup.instance_name,
        "user": report.admin,
        "password": password,
    }
    if setup.certificate_data:
        values["certificate-data"] = dict(setup.certificate_data)
    path = rabbitmq_config_path(setup.home)
    atomic_write(path, yaml.safe_dump(values, sort_keys=False), 0o600)
    report.done.append(f"{path}")
    platform = config_file_path(setup.home)
    current = load_platform_config(platform)
    configured = (current.get("instance-name") or "").strip()
    if configured and configured != setup.instance_name:
        raise ConfigError(f"{platform} names instance {configured!r}, not {setup.instance_name!r}")
    write_platform_config(platform, {**current, "message-bus": "rmq", "instance-name": setup.instance_name})
    report.done.append(f"{platform}: message-bus = rmq, instance-name = {setup.instance_name}")


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def merge_setup(home: Path, instance_name: str | None, file_values: dict[str, Any],
                flags: dict[str, Any]) -> SingleSetup:
    """A :class:`SingleSetup` from ``--config`` values overridden by command-line ``flags`` (None: unset)."""
    from volttron.client.messagebus.rmq_config import instance_name_from_home

    def pick(flag: str, key: str, default: Any) -> Any:
        value = flags.get(flag)
        if value is not None:
            return value
        return file_values.get(key, default)

    name = instance_name or file_values.get("instance-name") or instance_name_from_home(home)
    config_dir = pick("broker_config_dir", "broker-config-dir", None)
    setup = SingleSetup(home=home, instance_name=str(name))
    try:
        setup = replace(
            setup,
            host=str(pick("host", "host", setup.host)),
            vhost=str(pick("vhost", "virtual-host", setup.vhost)),
            amqp_port=int(pick("amqp_port", "amqp-port", setup.amqp_port)),
            amqps_port=int(pick("amqps_port", "amqp-port-ssl", setup.amqps_port)),
            mgmt_port=int(pick("mgmt_port", "mgmt-port", setup.mgmt_port)),
            mgmts_port=int(pick("mgmts_port", "mgmt-port-ssl", setup.mgmts_port)),
            ssl=_flag(pick("ssl", "ssl", True)),
            certificate_data=dict(file_values.get("certificate-data") or {}),
            broker_config_dir=Path(config_dir).expanduser() if config_dir else None,
            bootstrap_user=flags.get("admin_user"),
            bootstrap_password=flags.get("admin_password"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad RabbitMQ set-up value: {exc}") from None
    return setup


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"ssl must be true or false, not {value!r}")


__all__ = ["BrokerAdminError", "BrokerDown", "SetupReport", "SingleSetup", "load_setup_file", "merge_setup",
           "setup_single"]
