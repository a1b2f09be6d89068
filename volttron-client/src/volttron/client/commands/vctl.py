"""``vctl``: control a running platform — agents, configuration, authentication — over VIP.

vctl never imports the server: it connects as ``control.connection`` and calls
``platform.control`` (and the other services) by RPC, so it works against a remote platform too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from volttron.client.commands.cli import LazyGroup, exit_codes_help, lazy, run_cli

if TYPE_CHECKING:
    from volttron.client.commands.connection import ConnectionSettings

_AGENT = "volttron.client.commands.agent"
_INSTALL = "volttron.client.commands.install"
_PLATFORM = "volttron.client.commands.platform"

COMMANDS = {
    "install": lazy(f"{_INSTALL}:install", "Install an agent from a directory, a wheel or a package name."),
    "remove": lazy(f"{_AGENT}:remove", "Stop and remove agents."),
    "start": lazy(f"{_AGENT}:start", "Start agents."),
    "stop": lazy(f"{_AGENT}:stop", "Stop agents."),
    "restart": lazy(f"{_AGENT}:restart", "Restart agents."),
    "status": lazy(f"{_AGENT}:status", "Show installed agents, their processes and health."),
    "list": lazy(f"{_AGENT}:list_command", "List installed agents."),
    "tag": lazy(f"{_AGENT}:tag", "Set or remove an agent's tag."),
    "enable": lazy(f"{_AGENT}:enable", "Start agents with the platform."),
    "disable": lazy(f"{_AGENT}:disable", "Do not start agents with the platform."),
    "health": lazy(f"{_AGENT}:health", "Show an agent's health record (without AGENT, all) as JSON."),
    "clear": lazy(f"{_AGENT}:clear", "Forget the exit status of stopped agents."),
    "peerlist": lazy(f"{_PLATFORM}:peerlist", "List the identities connected to the platform."),
    "shutdown": lazy(f"{_PLATFORM}:shutdown", "Stop all agents (with --platform, the platform too)."),
    "rpc": lazy("volttron.client.commands.rpc:rpc", "Inspect and call the RPC methods of connected agents."),
    "publish": lazy("volttron.client.commands.pubsub:publish", "Publish a JSON message on a topic."),
    "subscribe": lazy(
        "volttron.client.commands.pubsub:subscribe", "Print messages published under a prefix."
    ),
    "config": lazy("volttron.client.commands.config:config", "Manage agents' configurations in the store."),
    "auth": lazy("volttron.client.commands.auth:auth", "Manage who may connect and what they may do."),
    "create-agent": lazy("volttron.client.commands.create_agent:create_agent", "Create a new agent project."),
    "port-agent": lazy(
        "volttron.client.commands.port_agent:port_agent", "Port a monolithic agent's imports."
    ),
}


@dataclass(frozen=True)
class VctlOptions:
    """The global options every sub-command receives as ``ctx.obj``."""

    home: Path
    timeout: float
    vip_address: str | None
    json: bool
    debug: bool
    verbose: int
    serverkey: str | None = None

    def connection_settings(self, timeout: float | None = None) -> ConnectionSettings:
        """How to reach the platform with these options."""
        from volttron.client.commands.connection import ConnectionSettings

        return ConnectionSettings(
            home=self.home,
            timeout=self.timeout if timeout is None else timeout,
            address=self.vip_address,
            serverkey=self.serverkey,
        )


COMPLETION_HELP = (
    "\b\nShell completion (bash; zsh_source and fish_source for the others):\n"
    '  eval "$(_VCTL_COMPLETE=bash_source vctl)"    # in ~/.bashrc'
)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=f"{exit_codes_help()}\n\n{COMPLETION_HELP}")
@click.version_option(package_name="volttron-client", prog_name="vctl", message="%(prog)s %(version)s")
@click.option(
    "-t", "--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the platform."
)
@click.option("--vip-address", metavar="ADDRESS", help="Platform address (default: the local platform's).")
@click.option("--serverkey", metavar="KEY", help="The platform's public key (default: from known_hosts).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.pass_context
def vctl(
    ctx: click.Context,
    timeout: float,
    vip_address: str | None,
    serverkey: str | None,
    as_json: bool,
    debug: bool,
    verbose: int,
) -> None:
    """Control a VOLTTRON platform."""
    import logging

    from volttron.utils.home import get_home

    if timeout <= 0:
        raise click.BadParameter("must be more than 0 seconds", param_hint="'-t' / '--timeout'")
    # The libraries' warnings (a link lost while the platform stops...) are not vctl's output.
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = VctlOptions(
        home=get_home(),
        timeout=timeout,
        vip_address=vip_address,
        json=as_json,
        debug=debug,
        verbose=verbose,
        serverkey=serverkey,
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``vctl``."""
    run_cli(vctl, "vctl", argv)


__all__ = ["COMMANDS", "VctlOptions", "lazy", "main", "vctl"]
