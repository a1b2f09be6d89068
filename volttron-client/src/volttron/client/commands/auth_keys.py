"""Key commands of ``vctl auth``: ``keypair``, ``publickey``, ``serverkey`` (docs/protocol.md §5.1).

They are plain click commands for the ``vctl auth`` group to mount (``KEY_COMMANDS``); the group
itself, with ``auth add``/``list``/..., lives in :mod:`volttron.client.commands.auth`.

``keypair`` needs no platform: it prints a fresh CURVE key pair ``{"public": ..., "secret": ...}``
(43-character URL-safe base64). ``publickey`` lists installed agents' public keys (from
``platform.control``); ``serverkey`` asks the router for the platform's key (query ``serverkey``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from volttron.client.commands.cli import echo_table

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

PUBLICKEY_HEADER = ["UUID", "IDENTITY", "PUBLICKEY"]


def new_keypair() -> dict[str, str]:
    """A fresh CURVE key pair as ``{"public", "secret"}``."""
    from volttron.utils.keys import generate_keypair

    keys = generate_keypair()
    return {"public": keys.public, "secret": keys.secret}


def agent_publickeys(connection: ControlConnection, refs: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """``[{"uuid", "identity", "publickey"}]`` of the installed agents (those ``refs`` name), by identity."""
    from volttron.client.commands.agent import resolve_refs

    agents = connection.call("list_agents")
    if refs:
        agents = resolve_refs(agents, refs)
    keys = connection.call("get_all_agent_publickeys")
    rows = [
        {"uuid": a["uuid"], "identity": a["identity"], "publickey": keys.get(a["identity"], "")}
        for a in agents
    ]
    return sorted(rows, key=lambda r: r["identity"])


def platform_serverkey(connection: ControlConnection) -> str | None:
    """The platform's public key, from the router (None with authentication disabled)."""
    from volttron.client.commands.connection import translate_error
    from volttron.utils.errors import VolttronError

    timeout = connection.settings.timeout
    try:
        key = connection.agent.vip.query.query("serverkey").get(timeout=timeout)
    except VolttronError as exc:
        raise translate_error(exc, "query serverkey", "the router", timeout) from exc
    return key or None


@click.command()
def keypair() -> None:
    """Print a new CURVE key pair as JSON."""
    click.echo(json.dumps(new_keypair(), indent=2))


@click.command()
@click.argument("agents", nargs=-1)
@click.option(
    "-n",
    "uuid_length",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Show at least N characters of each UUID (0: the whole UUID).",
)
@click.pass_obj
def publickey(opts: VctlOptions, agents: tuple[str, ...], uuid_length: int) -> None:
    """Show the public keys of installed agents."""
    from volttron.client.commands.agent import short_uuids
    from volttron.client.commands.connection import connected

    with connected(opts.connection_settings()) as connection:
        rows = agent_publickeys(connection, agents)
    if opts.json:
        click.echo(json.dumps(rows, indent=2))
        return
    short = short_uuids([r["uuid"] for r in rows], uuid_length)
    if rows:
        echo_table([[short[r["uuid"]], r["identity"], r["publickey"]] for r in rows], PUBLICKEY_HEADER)


@click.command()
@click.pass_obj
def serverkey(opts: VctlOptions) -> None:
    """Show the platform's public (server) key."""
    from volttron.client.commands.connection import connected

    with connected(opts.connection_settings()) as connection:
        key = platform_serverkey(connection)
    click.echo(key if key else "(authentication is disabled on this platform: no server key)")


KEY_COMMANDS = (keypair, publickey, serverkey)
"""The commands to add to the ``vctl auth`` group: ``for c in KEY_COMMANDS: auth.add_command(c)``."""
