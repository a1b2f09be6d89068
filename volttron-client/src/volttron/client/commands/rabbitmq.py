"""``vcfg rabbitmq``: prepare a RabbitMQ broker for a platform instance (reference §6.1).

``vcfg rabbitmq single`` takes its settings from flags and/or ``--config FILE`` (the keys of
``rabbitmq_config.yml``: ``host``, ``virtual-host``, ``amqp-port``, ``amqp-port-ssl``,
``mgmt-port``, ``mgmt-port-ssl``, ``ssl``, ``instance-name``, ``certificate-data``...); run on a
terminal with neither, it asks. The work is :func:`volttron.client.messagebus.rmq_setup.setup_single`.
"""

from __future__ import annotations

import sys
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
@click.option("--ssl/--no-ssl", default=None, help="TLS with certificate (EXTERNAL) logins (default no).")
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
    answers["ssl"] = click.confirm("Use TLS with certificate logins", default=False)
    if answers["ssl"]:
        answers["amqps_port"] = click.prompt("AMQP over TLS port", default=5671, type=int)
    return instance, answers
