"""``vctl``: control a running platform — agents, configuration, authentication — over VIP.

vctl never imports the server: it connects as ``control.connection`` and calls
``platform.control`` (and the other services) by RPC, so it works against a remote platform too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from volttron.client.commands.cli import LazyGroup, lazy, run_cli

COMMANDS = {}


@dataclass(frozen=True)
class VctlOptions:
    """The global options every sub-command receives as ``ctx.obj``."""

    home: Path
    timeout: float
    vip_address: str | None
    json: bool
    debug: bool
    verbose: int


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-t", "--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the platform."
)
@click.option("--vip-address", metavar="ADDRESS", help="Platform address (default: the local platform's).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.pass_context
def vctl(
    ctx: click.Context, timeout: float, vip_address: str | None, as_json: bool, debug: bool, verbose: int
) -> None:
    """Control a VOLTTRON platform."""
    from volttron.utils.home import get_home

    ctx.obj = VctlOptions(
        home=get_home(), timeout=timeout, vip_address=vip_address, json=as_json, debug=debug, verbose=verbose
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``vctl``."""
    run_cli(vctl, "vctl", argv)


__all__ = ["COMMANDS", "VctlOptions", "lazy", "main", "vctl"]
