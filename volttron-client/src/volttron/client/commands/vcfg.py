"""``vcfg``: prepare a platform's home and its message bus before the first start."""

from __future__ import annotations

import click

from volttron.client.commands.cli import LazyGroup, lazy, run_cli

COMMANDS = {
    "rabbitmq": lazy("volttron.client.commands.rabbitmq:rabbitmq", "Set up the RabbitMQ message bus."),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--vhome", type=click.Path(file_okay=False), help="VOLTTRON_HOME to configure.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def vcfg(ctx: click.Context, vhome: str | None, debug: bool) -> None:
    """Configure a VOLTTRON platform instance."""
    ctx.obj = {"vhome": vhome, "debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``vcfg``."""
    run_cli(vcfg, "vcfg", argv)
