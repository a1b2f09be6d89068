"""Where the broker is and how a peer logs in (docs/protocol.md §6.1, §6.2, §6.2a).

A RabbitMQ peer finds its broker, first match wins:

1. a :class:`BrokerSettings` given as the connection's ``context`` (in-process services);
2. an ``amqp://`` or ``amqps://`` address:
   ``amqp://[user:password@]host[:port][/vhost][?instance=NAME&heartbeat=20&cafile=..&certfile=..&keyfile=..&server_name=..]``
   (the vhost is percent-encoded; no path means ``volttron``);
3. ``$VOLTTRON_HOME/rabbitmq_config.yml``, written by ``vcfg rabbitmq single`` (any other address,
   such as the platform's ipc address an agent is given by default, points here; a platform's local
   address ``ipc://@<home>/run/vip.socket`` names the home, else ``$VOLTTRON_HOME``).

The instance name comes from the settings, else ``instance-name`` in ``$VOLTTRON_HOME/config``,
else the host name - the platform's own rule. The login, first match wins: user and password in
the settings; with TLS, the client certificate ``certificates/certs/<instance>.<identity>.crt``
(EXTERNAL authentication, the certificate's common name is the broker user); else the user
``<instance>.<identity>`` with the password derived from the peer's CURVE keys
(:mod:`~volttron.client.messagebus.rmq_credentials`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from volttron.utils.errors import ConfigError
from volttron.utils.home import certificates_dir, config_file_path

RABBITMQ_CONFIG_FILE = "rabbitmq_config.yml"
DEFAULT_VHOST = "volttron"
AMQP_PORT = 5672
AMQPS_PORT = 5671
MGMT_PORT = 15672
MGMT_PORT_SSL = 15671
HEARTBEAT = 20
URL_QUERY_KEYS = ("instance", "heartbeat", "cafile", "certfile", "keyfile", "server_name")


@dataclass(frozen=True)
class BrokerSettings:
    """One broker connection's parameters; the secrets never appear in :meth:`redacted`."""

    host: str = "localhost"
    port: int = AMQP_PORT
    vhost: str = DEFAULT_VHOST
    instance_name: str | None = None
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    server_hostname: str | None = None
    heartbeat: int = HEARTBEAT
    reconnect_delay: float | None = None
    """Longest wait between reconnection attempts (None: the connection's default)."""
    mgmt_port: int | None = None
    """Port of the management HTTP API (administration tools only)."""

    @property
    def external(self) -> bool:
        """True when the client certificate is the login (TLS with EXTERNAL authentication)."""
        return self.ssl and bool(self.certfile) and not self.password

    def redacted(self) -> str:
        """``amqp[s]://host:port/vhost`` - for messages and logs."""
        scheme = "amqps" if self.ssl else "amqp"
        return f"{scheme}://{self.host}:{self.port}/{quote(self.vhost, safe='')}"

    def with_login(self, username: str, password: str | None = None) -> BrokerSettings:
        """A copy logging in as ``username``."""
        return replace(self, username=username, password=password)


def is_amqp_address(address: str | None) -> bool:
    """True for ``amqp://`` and ``amqps://`` addresses."""
    if not address:
        return False
    return address.split("://", 1)[0].lower() in ("amqp", "amqps")


def parse_amqp_url(url: str) -> BrokerSettings:
    """Settings from an ``amqp[s]://`` URL (see the module docstring); :class:`ConfigError` if malformed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad broker address {_redact(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise ConfigError(f"a broker address starts with amqp:// or amqps://, not {_redact(url)!r}")
    if not parts.hostname:
        raise ConfigError(f"broker address {_redact(url)!r} has no host")
    ssl = scheme == "amqps"
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in URL_QUERY_KEYS:
            known = ", ".join(URL_QUERY_KEYS)
            raise ConfigError(f"unknown broker address parameter {key!r} (known: {known})")
        query[key] = value
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return BrokerSettings(
        host=parts.hostname,
        port=port or (AMQPS_PORT if ssl else AMQP_PORT),
        vhost=unquote(path) if path else DEFAULT_VHOST,
        instance_name=query.get("instance") or None,
        ssl=ssl,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        cafile=query.get("cafile") or None,
        certfile=query.get("certfile") or None,
        keyfile=query.get("keyfile") or None,
        server_hostname=query.get("server_name") or None,
        heartbeat=_int(query.get("heartbeat", HEARTBEAT), "heartbeat", 0),
    )


def rabbitmq_config_path(home: str | os.PathLike[str]) -> Path:
    """``$VOLTTRON_HOME/rabbitmq_config.yml``."""
    return Path(home) / RABBITMQ_CONFIG_FILE


def load_rabbitmq_config(home: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in ``rabbitmq_config.yml``; :class:`ConfigError` when missing or invalid."""
    from volttron.utils.config import load_config

    path = rabbitmq_config_path(home)
    if not path.is_file():
        raise ConfigError(f"{path} not found: run 'vcfg rabbitmq single' to set up the message bus")
    return load_config(path)


def settings_from_config(config: dict[str, Any], home: str | os.PathLike[str]) -> BrokerSettings:
    """Broker settings from a ``rabbitmq_config.yml`` mapping (certificates under ``home``)."""
    ssl = _bool(config.get("ssl", False), "ssl")
    port = _int(config.get("amqp-port-ssl" if ssl else "amqp-port", AMQPS_PORT if ssl else AMQP_PORT),
                "amqp-port", 1)
    host = str(config.get("host") or "localhost")
    instance = config.get("instance-name")
    settings = BrokerSettings(
        host=host,
        port=port,
        vhost=str(config.get("virtual-host") or DEFAULT_VHOST),
        instance_name=str(instance) if instance else None,
        ssl=ssl,
        server_hostname=host if ssl else None,
        reconnect_delay=float(config["reconnect-delay"]) if config.get("reconnect-delay") else None,
        mgmt_port=_int(config.get("mgmt-port-ssl" if ssl else "mgmt-port",
                                  MGMT_PORT_SSL if ssl else MGMT_PORT), "mgmt-port", 1),
    )
    if ssl and instance:
        settings = replace(settings, cafile=str(trusted_cas_path(home, str(instance))))
    return settings


def admin_settings(config: dict[str, Any], home: str | os.PathLike[str], instance: str) -> BrokerSettings:
    """The platform's own login from ``rabbitmq_config.yml``: ``user`` (default ``<instance>-admin``) with
    ``password``, or with TLS the certificate ``<user>.crt``."""
    settings = replace(settings_from_config(config, home), instance_name=instance)
    user = str(config.get("user") or f"{instance}-admin")
    password = config.get("password")
    cert, key = client_cert_paths(home, user)
    if settings.ssl and cert.is_file():
        # a TLS broker asks every client for its certificate (fail_if_no_peer_cert): present it; with a
        # password too, the login is PLAIN inside TLS (the management API needs the password)
        settings = replace(settings, username=user, certfile=str(cert), keyfile=str(key),
                           cafile=str(trusted_cas_path(home, instance)))
        return settings if password is None else replace(settings, password=str(password))
    if password is not None:
        return settings.with_login(user, str(password))
    raise ConfigError(f"{rabbitmq_config_path(home)} gives no password for {user} (nor a certificate "
                      "with TLS); run 'vcfg rabbitmq single'")


def instance_name_from_home(home: str | os.PathLike[str]) -> str:
    """The platform's instance name as the platform decides it: its config file, else the host name."""
    from volttron.utils.config import load_platform_config

    configured = (load_platform_config(config_file_path(home)).get("instance-name") or "").strip()
    return configured or socket.gethostname() or "volttron1"


def trusted_cas_path(home: str | os.PathLike[str], instance: str) -> Path:
    """``certificates/certs/<instance>-trusted-cas.crt``."""
    return certificates_dir(home) / "certs" / f"{instance}-trusted-cas.crt"


def client_cert_paths(home: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """``(certs/<name>.crt, private/<name>.pem)`` under the home's certificates folder."""
    base = certificates_dir(home)
    return base / "certs" / f"{name}.crt", base / "private" / f"{name}.pem"


def _int(value: Any, key: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, not {number}")
    return number


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key} must be true or false, not {value!r}")


def _redact(url: str) -> str:
    """The URL without its user information."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url
