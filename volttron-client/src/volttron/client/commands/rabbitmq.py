"""``vcfg rabbitmq``: prepare a RabbitMQ broker for a platform instance (docs/protocol.md §6.1).

``vcfg rabbitmq single`` takes its settings from flags and/or ``--config FILE`` (the keys of
``rabbitmq_config.yml``: ``host``, ``virtual-host``, ``amqp-port``, ``amqp-port-ssl``,
``mgmt-port``, ``mgmt-port-ssl``, ``ssl``, ``instance-name``, ``certificate-data``...); run on a
terminal with neither, it asks. The work is :func:`volttron.client.messagebus.rmq_setup.setup_single`.

``vcfg rabbitmq federation`` and ``vcfg rabbitmq shovel`` link this instance's vhost to another
instance's broker (:mod:`volttron.client.messagebus.rmq_links`), from ``--config FILE`` (default
``$VOLTTRON_HOME/rabbitmq_federation_config.yml`` / ``rabbitmq_shovel_config.yml`` when there), from
flags for one remote, or by asking; ``--remove NAME`` undoes. ``vcfg rabbitmq link-user`` makes,
on this instance's vhost, the user another instance's federation or shovel logs in as.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from volttron.client.commands.cli import EXIT_NOT_RUNNING, CommandError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def rabbitmq() -> None:
    """Set up the RabbitMQ message bus."""


@rabbitmq.command("single")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True),
              help="YAML file with the settings (the keys of rabbitmq_config.yml).")
@click.option("--instance-name", help="Instance name (default: $VOLTTRON_HOME/config, else the host name).")
@click.option("--host", help="Broker host name, as agents and certificates see it (default localhost).")
@click.option("--vhost", help="Virtual host (default volttron).")
@click.option("--amqp-port", type=int, help="AMQP port (default 5672).")
@click.option("--amqps-port", type=int, help="AMQP over TLS port (default 5671).")
@click.option("--mgmt-port", type=int, help="Management API port (default 15672).")
@click.option("--ssl/--no-ssl", default=None,
              help="TLS with certificate (EXTERNAL) logins (the default); --no-ssl: plain AMQP, passwords in "
                   "clear.")
@click.option("--broker-config-dir", type=click.Path(file_okay=False),
              help="Where to write the broker's TLS configuration (default $VOLTTRON_HOME/rabbitmq).")
@click.option("--admin-user", help="An existing broker administrator, for the management API.")
@click.option("--admin-password", help="Its password (or set RABBITMQ_ADMIN_PASSWORD).")
@click.pass_context
def single(ctx: click.Context, config_file: str | None, instance_name: str | None, **flags: Any) -> None:
    """Prepare the broker for this instance: vhost, exchanges, users, permissions, certificates."""
    from volttron.client.messagebus.rmq_admin import BrokerAdminError, BrokerDown
    from volttron.client.messagebus.rmq_setup import load_setup_file, merge_setup, setup_single
    from volttron.utils.errors import ConfigError, VolttronError
    from volttron.utils.home import get_home

    obj = ctx.find_root().obj or {}
    home = Path(obj["vhome"]).expanduser().resolve() if obj.get("vhome") else get_home()
    if flags.get("admin_user") and flags.get("admin_password") is None:
        import os

        flags["admin_password"] = os.environ.get("RABBITMQ_ADMIN_PASSWORD")
    try:
        file_values = load_setup_file(config_file) if config_file else {}
        given = config_file or instance_name or any(v is not None for k, v in flags.items()
                                                     if not k.startswith("admin_"))
        if not given and _interactive():
            instance_name, flags = _ask(home, flags)
        setup = merge_setup(home, instance_name, file_values, flags)
        report = setup_single(setup)
    except BrokerDown as exc:
        raise CommandError(str(exc), EXIT_NOT_RUNNING) from exc
    except (BrokerAdminError, ConfigError, VolttronError) as exc:
        raise CommandError(str(exc)) from exc
    click.echo(f"RabbitMQ ready for instance {setup.instance_name!r} at {setup.host}, vhost {setup.vhost!r}:")
    for line in report.done:
        click.echo(f"  {line}")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"Start the platform with: volttron --message-bus rmq (VOLTTRON_HOME={home})")


def _interactive() -> bool:
    """Whether a person can answer questions (standard input is a terminal)."""
    return sys.stdin.isatty()


def _ask(home: Path, flags: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from volttron.client.messagebus.rmq_config import instance_name_from_home

    instance = click.prompt("Instance name", default=instance_name_from_home(home))
    answers = dict(flags)
    answers["host"] = click.prompt("Broker host name", default="localhost")
    answers["vhost"] = click.prompt("Virtual host", default="volttron")
    answers["amqp_port"] = click.prompt("AMQP port", default=5672, type=int)
    answers["ssl"] = click.confirm("Use TLS with certificate logins (no: passwords cross in clear)",
                                   default=True)
    if answers["ssl"]:
        answers["amqps_port"] = click.prompt("AMQP over TLS port", default=5671, type=int)
    return instance, answers


# -- linking instances -------------------------------------------------------------------------

def _home(ctx: click.Context) -> Path:
    from volttron.utils.home import get_home

    obj = ctx.find_root().obj or {}
    return Path(obj["vhome"]).expanduser().resolve() if obj.get("vhome") else get_home()


def _run_link_command(action: Callable[[], None]) -> None:
    """Run ``action``, turning every expected failure into one line and an exit code."""
    from volttron.client.messagebus.rmq_admin import BrokerAdminError, BrokerDown
    from volttron.utils.errors import VolttronError

    try:
        action()
    except BrokerDown as exc:
        raise CommandError(str(exc), EXIT_NOT_RUNNING) from exc
    except (BrokerAdminError, VolttronError) as exc:
        raise CommandError(str(exc)) from exc


def _local_broker(home: Path) -> tuple[Any, Any]:
    """This instance's broker settings (with the platform's login) and an administrator for it."""
    from volttron.client.messagebus.rmq_admin import BrokerDown, broker_admin, port_open
    from volttron.client.messagebus.rmq_config import (
        admin_settings,
        instance_name_from_home,
        load_rabbitmq_config,
    )

    config = load_rabbitmq_config(home)
    instance = str(config.get("instance-name") or instance_name_from_home(home))
    settings = admin_settings(config, home, instance)
    if not port_open(settings.host, settings.port):
        raise BrokerDown(f"no RabbitMQ broker answers at {settings.host}:{settings.port}; start it and run "
                         "this again")
    return settings, broker_admin(settings, settings.username, settings.password)


def _remote_entry(flags: dict[str, Any], user_key: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"virtual-host": flags["remote_vhost"]}
    for flag, key in (("port", "port"), ("user", user_key), ("password", "password")):
        if flags.get(flag) is not None:
            entry[key] = flags[flag]
    certificates = {key: flags[flag] for flag, key in (("ca", "remote_ca"), ("cert", "public_cert"),
                                                       ("key", "private_key")) if flags.get(flag)}
    if certificates:
        entry["certificates"] = certificates
    return entry


def _ask_remote(kind: str) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    answers["host"] = click.prompt(f"Host of the remote broker ({kind})")
    answers["port"] = click.prompt("Its AMQP port", default=5672, type=int)
    answers["remote_vhost"] = click.prompt("The remote instance's virtual host", default="volttron")
    answers["user"] = click.prompt("User on the remote broker (empty: the default)", default="",
                                   show_default=False) or None
    answers["password"] = click.prompt("Its password", hide_input=True)
    return answers


def _print_report(report: Any) -> None:
    for line in report.done:
        click.echo(f"  {line}")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)


_REMOTE_OPTIONS = [
    click.option("--host", help="Host of the remote broker (one link without --config)."),
    click.option("--port", type=int, help="Its AMQP port (default 5672, 5671 with certificates)."),
    click.option("--remote-vhost", help="The remote instance's virtual host."),
    click.option("--user", help="The user the link logs in as there."),
    click.option("--password", help="Its password (or set RABBITMQ_LINK_PASSWORD)."),
    click.option("--ca", type=click.Path(dir_okay=False, exists=True),
                 help="CA certificate of the remote broker."),
    click.option("--cert", type=click.Path(dir_okay=False, exists=True),
                 help="Client certificate (TLS login)."),
    click.option("--key", type=click.Path(dir_okay=False, exists=True), help="Its private key."),
    click.option("--timeout", type=float, default=30.0, show_default=True,
                 help="Seconds to wait for the links to run."),
]


def _remote_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_REMOTE_OPTIONS):
        command = option(command)
    return command


def _flags_given(flags: dict[str, Any], *extra: str) -> bool:
    keys = ("host", "port", "remote_vhost", "user", "password", "ca", "cert", "key", *extra)
    return any(flags.get(k) not in (None, ()) for k in keys)


def _password_from_env(flags: dict[str, Any]) -> None:
    import os

    if flags.get("password") is None and os.environ.get("RABBITMQ_LINK_PASSWORD") is not None:
        flags["password"] = os.environ["RABBITMQ_LINK_PASSWORD"]


@rabbitmq.command("federation")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Upstreams (key federation-upstream; default "
                   "$VOLTTRON_HOME/rabbitmq_federation_config.yml when it exists).")
@_remote_options
@click.option("--remove", metavar="NAME", help="Remove upstream NAME (upstream-<host>-<vhost>) instead.")
@click.pass_context
def federation(ctx: click.Context, config_file: str | None, remove: str | None, timeout: float,
               **flags: Any) -> None:
    """Federate this instance's 'volttron' exchange from other instances' brokers (upstreams)."""
    from volttron.client.messagebus import rmq_link_config, rmq_links

    home = _home(ctx)
    _password_from_env(flags)

    def act() -> None:
        key = rmq_link_config.FEDERATION_KEY
        source = config_file or _default_file(home / rmq_link_config.FEDERATION_FILE, flags)
        entries = {} if remove else _entries(source, flags, key, "federation-user", "federation")
        settings, admin = _local_broker(home)
        if remove:
            names = rmq_links.remove_links(admin, settings.vhost, "federation", remove)
            click.echo(f"removed federation upstream(s) {', '.join(names)} from vhost {settings.vhost!r}")
            return
        instance = settings.instance_name or ""
        upstreams = rmq_link_config.parse_federation(entries, instance, source or "")
        report = rmq_links.apply_federation(admin, settings, upstreams, timeout)
        click.echo(f"Federation for instance {instance!r} (vhost {settings.vhost!r}):")
        _print_report(report)

    _run_link_command(act)


@rabbitmq.command("shovel")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Shovels (key shovel; default $VOLTTRON_HOME/rabbitmq_shovel_config.yml when it exists).")
@_remote_options
@click.option("--topic", "topics", multiple=True,
              help="Shovel publishes on this topic to the remote (repeat).")
@click.option("--rpc", "rpc", multiple=True, metavar="INSTANCE:LOCAL:REMOTE",
              help="Let identity LOCAL here call identity REMOTE of instance INSTANCE (repeat).")
@click.option("--remove", metavar="NAME", help="Remove shovel NAME (or every shovel-<host>-<vhost>-...).")
@click.pass_context
def shovel(ctx: click.Context, config_file: str | None, remove: str | None, timeout: float,
           topics: tuple[str, ...], rpc: tuple[str, ...], **flags: Any) -> None:
    """Shovel chosen publishes and RPC messages from this instance to another instance's broker."""
    from volttron.client.messagebus import rmq_link_config, rmq_links

    home = _home(ctx)
    _password_from_env(flags)
    flags["topics"], flags["rpc"] = topics, rpc

    def act() -> None:
        key = rmq_link_config.SHOVEL_KEY
        source = config_file or _default_file(home / rmq_link_config.SHOVEL_FILE, flags)
        entries = {} if remove else _entries(source, flags, key, "shovel-user", "shovel")
        settings, admin = _local_broker(home)
        if remove:
            names = rmq_links.remove_links(admin, settings.vhost, "shovel", remove)
            click.echo(f"removed shovel(s) {', '.join(names)} from vhost {settings.vhost!r}")
            return
        instance = settings.instance_name or ""
        shovels = rmq_link_config.parse_shovels(entries, instance, source or "")
        report = rmq_links.apply_shovels(admin, settings, shovels, timeout)
        click.echo(f"Shovels for instance {instance!r} (vhost {settings.vhost!r}):")
        _print_report(report)

    _run_link_command(act)


def _default_file(path: Path, flags: dict[str, Any]) -> str | None:
    """``$VOLTTRON_HOME/rabbitmq_{federation,shovel}_config.yml`` when it exists and no flags say
    otherwise."""
    return str(path) if path.is_file() and not _flags_given(flags, "topics", "rpc") else None


def _entries(config_file: str | None, flags: dict[str, Any], key: str, user_key: str,
             kind: str) -> dict[str, Any]:
    """The ``host -> settings`` mapping from the file, the flags, or questions (None with --remove)."""
    from volttron.client.messagebus import rmq_link_config
    from volttron.utils.errors import ConfigError

    if config_file:
        if _flags_given(flags, "topics", "rpc"):
            raise ConfigError("give either --config or the flags of one remote, not both")
        return rmq_link_config.load_links_file(config_file, key)
    if not _flags_given(flags, "topics", "rpc") and _interactive():
        flags.update(_ask_remote(kind))
        if kind == "shovel":
            flags["topics"] = tuple(t.strip() for t in click.prompt(
                "Topics to shovel (comma separated, empty: none)", default="", show_default=False).split(",")
                if t.strip())
            flags["rpc"] = tuple(r.strip() for r in click.prompt(
                "RPC as INSTANCE:LOCAL:REMOTE (comma separated, empty: none)", default="",
                show_default=False).split(",") if r.strip())
    if not flags.get("host") or not flags.get("remote_vhost"):
        raise ConfigError("give --config FILE, or --host and --remote-vhost of the remote broker")
    entry = _remote_entry(flags, user_key)
    if kind == "shovel":
        if flags.get("topics"):
            entry["pubsub"] = {"": list(flags["topics"])}
        pairs: dict[str, list[list[str]]] = {}
        for text in flags.get("rpc") or ():
            parts = text.split(":")
            if len(parts) != 3 or not all(parts):
                raise ConfigError(f"--rpc {text!r}: give INSTANCE:LOCAL:REMOTE")
            pairs.setdefault(parts[0], []).append([parts[1], parts[2]])
        if pairs:
            entry["rpc"] = pairs
    return {flags["host"]: entry}


@rabbitmq.command("link-user")
@click.argument("user")
@click.option("--federation", "kind", flag_value="federation", help="The user of a federation upstream link.")
@click.option("--shovel", "kind", flag_value="shovel", help="The user of a shovel delivering here.")
@click.option("--password", help="Its password (or RABBITMQ_LINK_PASSWORD); none: certificate login only.")
@click.pass_context
def link_user(ctx: click.Context, user: str, kind: str | None, password: str | None) -> None:
    """Let another instance's federation or shovel log in to this instance's vhost as USER."""
    import os

    from volttron.client.messagebus import rmq_links
    from volttron.utils.errors import ConfigError

    home = _home(ctx)
    if password is None:
        password = os.environ.get("RABBITMQ_LINK_PASSWORD")

    def act() -> None:
        if kind is None:
            raise ConfigError("say which link the user is for: --federation or --shovel")
        settings, admin = _local_broker(home)
        rmq_links.grant_link_user(admin, settings.vhost, user, password, kind, settings.instance_name or "")
        permissions = rmq_links.link_user_permissions(kind)
        click.echo(f"user {user!r} may serve a {kind} link on vhost {settings.vhost!r} (configure "
                   f"{permissions.configure!r}, write {permissions.write!r}, read {permissions.read!r})")

    _run_link_command(act)
