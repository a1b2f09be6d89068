"""A RabbitMQ peer's broker settings and login, and their pika form (docs/protocol.md §6.2a).

:func:`resolve_login` applies the order of :mod:`~volttron.client.messagebus.rmq_config` to one
peer's :class:`~volttron.client.messagebus.base.ConnectionParams`; :func:`pika_credentials` and
:func:`ssl_options` turn the result into what pika's connection parameters take.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

from volttron.client.messagebus.base import ConnectionParams
from volttron.client.messagebus.rmq_config import (
    BrokerSettings,
    client_cert_paths,
    instance_name_from_home,
    is_amqp_address,
    load_rabbitmq_config,
    parse_amqp_url,
    settings_from_config,
    trusted_cas_path,
)
from volttron.client.messagebus.rmq_credentials import derive_password, x25519
from volttron.client.messagebus.rmq_wire import fq_identity
from volttron.utils.errors import ConfigError, VolttronError
from volttron.utils.home import get_home, local_vip_address


def resolve_login(params: ConnectionParams) -> BrokerSettings:
    """Complete broker settings, with a login, for the peer ``params.identity``.

    ``params.options`` may hold ``context`` (a :class:`BrokerSettings`) and ``volttron_home``.
    Raises :class:`~volttron.utils.errors.ConfigError` saying what is missing.
    """
    options = params.options or {}
    home = Path(options.get("volttron_home") or _home_of(params.address) or get_home())
    context = options.get("context")
    if isinstance(context, BrokerSettings):
        settings = context
    elif is_amqp_address(params.address):
        settings = parse_amqp_url(params.address)
    else:
        settings = settings_from_config(load_rabbitmq_config(home), home)
    instance = params.instance_name or settings.instance_name or instance_name_from_home(home)
    settings = replace(settings, instance_name=instance)
    if settings.username and settings.password is not None:
        return settings
    user = fq_identity(instance, params.identity)
    if settings.ssl:
        cert, key = client_cert_paths(home, user)
        certfile = settings.certfile or (str(cert) if cert.is_file() else None)
        keyfile = settings.keyfile or (str(key) if key.is_file() else None)
        if certfile:
            cafile = settings.cafile or str(trusted_cas_path(home, instance))
            return replace(settings, username=settings.username or user, certfile=certfile, keyfile=keyfile,
                           cafile=cafile)
    secret, serverkey = _curve_keys(params, home)
    if secret and serverkey:
        try:
            # pure Python: cryptography would cost the agent process ~7 MB for this one computation
            return settings.with_login(user, derive_password(secret, serverkey, user, x25519))
        except VolttronError as exc:
            raise ConfigError(f"cannot derive the broker password of {user}: {exc}") from exc
    raise ConfigError(
        f"no broker login for {user} at {settings.redacted()}: give user and password in the amqp:// "
        "address, a client certificate (TLS), or the agent's CURVE keys and the platform's server key"
    )


def _home_of(address: str | None) -> str | None:
    """The platform home named by its local address ``ipc://[@]<home>/run/vip.socket``, if it is one."""
    if not address or not address.startswith("ipc://"):
        return None
    path = address[len("ipc://"):].split("?", 1)[0].lstrip("@")
    suffix = "/run/vip.socket"
    if not path.endswith(suffix):
        return None
    return path[: -len(suffix)] or None


def _curve_keys(params: ConnectionParams, home: Path) -> tuple[str | None, str | None]:
    secret, serverkey = params.secretkey, params.serverkey
    if secret and serverkey:
        return secret, serverkey
    from volttron.client.credentials import resolve_credentials

    try:
        found = resolve_credentials(params.identity, local_vip_address(home), params.publickey, secret,
                                    serverkey, home)
    except VolttronError:
        return secret, serverkey
    return found.secretkey, found.serverkey


def pika_credentials(settings: BrokerSettings) -> Any:
    """EXTERNAL (the client certificate) or PLAIN credentials."""
    from volttron.client.messagebus.rmq_pika import ExternalCredentials, PlainCredentials

    if settings.external:
        return ExternalCredentials()
    return PlainCredentials(settings.username or "", settings.password or "", erase_on_connect=False)


def ssl_options(settings: BrokerSettings) -> Any:
    """pika's TLS options (CA bundle, client certificate, server name), or None without TLS."""
    if not settings.ssl:
        return None
    from volttron.client.messagebus.rmq_pika import SSLOptions

    try:
        context = ssl.create_default_context(cafile=settings.cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.certfile:
            context.load_cert_chain(settings.certfile, settings.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files for {settings.redacted()}: {exc}") from exc
    return SSLOptions(context, server_hostname=settings.server_hostname or settings.host)
