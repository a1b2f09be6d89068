"""``vctl peerlist`` and ``vctl shutdown [--platform]`` (docs/protocol.md §5.1)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from volttron.client.commands.cli import EXIT_REMOTE, EXIT_TIMEOUT, CommandError

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

STOP_POLL_SECONDS = 0.1


def peer_identities(connection: ControlConnection) -> list[str]:
    """The identities connected to the platform, sorted (asked of the router itself)."""
    from volttron.client.commands.connection import translate_error
    from volttron.utils.errors import VolttronError

    timeout = connection.settings.timeout
    try:
        peers = connection.agent.vip.peerlist().get(timeout=timeout)
    except VolttronError as exc:
        raise translate_error(exc, "peerlist", "the router", timeout) from exc
    return sorted(str(p) for p in peers)


def stop_all_agents(connection: ControlConnection) -> list[str]:
    """Stop every agent; returns the identities that would not stop."""
    return connection.call("shutdown") or []


def stop_platform(connection: ControlConnection) -> int | None:
    """Ask the platform to stop; returns the local platform's pid (None for a remote one).

    A local platform that goes away before its answer arrives has done what was asked: the
    caller waits for its pid to go.
    """
    from volttron.client.commands.connection import running_pid

    pid = running_pid(connection.settings.home) if connection.settings.is_local else None
    try:
        connection.call("stop_platform")
    except CommandError as exc:
        refused = "refused" in exc.format_message()
        if pid is None or exc.exit_code not in (EXIT_REMOTE, EXIT_TIMEOUT) or refused:
            raise
    return pid


def wait_platform_gone(pid: int, home: Path, timeout: float) -> bool:
    """Poll until ``pid`` no longer runs the platform of ``home``; False on timeout."""
    from volttron.client.commands.connection import running_pid

    deadline = time.monotonic() + timeout
    while running_pid(home) == pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(STOP_POLL_SECONDS)
    return True


@click.command()
@click.pass_obj
def peerlist(opts: VctlOptions) -> None:
    """List the identities connected to the platform, one per line."""
    from volttron.client.commands.connection import connected

    with connected(opts.connection_settings()) as connection:
        peers = peer_identities(connection)
    for peer in peers:
        click.echo(peer)


@click.command()
@click.option("--platform", "whole_platform", is_flag=True, help="Stop the platform itself too.")
@click.pass_obj
def shutdown(opts: VctlOptions, whole_platform: bool) -> None:
    """Stop all agents; with --platform stop the platform and wait until it is gone."""
    from volttron.client.commands.connection import connected

    settings = opts.connection_settings()
    with connected(settings) as connection:
        if not whole_platform:
            click.echo("Stopping all agents")
            left = stop_all_agents(connection)
            if left:
                raise CommandError(f"these agents would not stop: {', '.join(left)}")
            return
        click.echo("Shutting down the platform")
        pid = stop_platform(connection)
    if pid is not None and not wait_platform_gone(pid, settings.home, opts.timeout):
        raise CommandError(
            f"the platform (pid {pid}) is still running after {opts.timeout:g} s", EXIT_TIMEOUT
        )
    click.echo("Platform stopped")
