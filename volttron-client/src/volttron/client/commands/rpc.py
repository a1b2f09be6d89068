"""``vctl rpc list``, ``vctl rpc code`` and ``vctl rpc call``: connected agents' RPC (docs/protocol.md §5.1).

``call IDENTITY METHOD [ARGS...]`` calls a method as vctl (identity ``control.connection``, with its
capabilities); each ARG is JSON (``5``, ``'"text"'``, ``'{"a": 1}'``), ``--kwargs`` a JSON object.
The result is printed as JSON (a string result as plain text unless ``--json``).

``list`` asks each peer's ``inspect`` for its method names (those with a ``.`` — subsystem
methods such as ``health.get_status`` — only with ``-v``); given one identity and method names it
shows each method's parameters (``<method>.inspect``) and the capabilities it requires
(``auth.get_rpc_authorizations``). ``code`` prints ready-to-paste calls.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from volttron.client.commands.cli import EXIT_USAGE, CommandError

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

INSPECT_TIMEOUT = 5.0


def exported_methods(connection: ControlConnection, peer: str, verbose: bool = False) -> list[str] | None:
    """The method names ``peer`` exports (None when it does not answer ``inspect``)."""
    try:
        answer = connection.call(
            "inspect", peer=peer, timeout=min(INSPECT_TIMEOUT, connection.settings.timeout)
        )
    except CommandError:
        return None
    methods = answer.get("methods", []) if isinstance(answer, dict) else []
    return sorted(str(m) for m in methods if verbose or "." not in str(m))


def method_details(connection: ControlConnection, peer: str, method: str) -> dict[str, Any]:
    """``<method>.inspect`` of ``peer`` plus ``"capabilities"`` (None when the peer does not say)."""
    details = connection.call(f"{method}.inspect", peer=peer)
    try:
        details["capabilities"] = connection.call("auth.get_rpc_authorizations", method, peer=peer)
    except CommandError:
        details["capabilities"] = None
    return details


def describe_peers(
    connection: ControlConnection, identities: Sequence[str], methods: Sequence[str], verbose: bool
) -> dict[str, Any]:
    """``{identity: [method, ...]}``, or with ``methods`` ``{identity: {method: details}}`` (one identity)."""
    if methods:
        if len(identities) != 1:
            raise CommandError("name exactly one agent identity before the method names")
        peer = identities[0]
        return {peer: {m: method_details(connection, peer, m) for m in methods}}
    from volttron.client.commands.platform import peer_identities

    peers = list(identities) or [p for p in peer_identities(connection) if p != connection.peer_identity]
    result = {}
    for peer in peers:
        found = exported_methods(connection, peer, verbose)
        if found is not None:
            result[peer] = found
        elif identities:
            raise CommandError(f"{peer} does not answer 'inspect' (is it connected?)")
    return result


def call_snippet(peer: str, method: str, details: dict[str, Any] | None = None) -> str:
    """``self.vip.rpc.call(<peer>, <method>, <params>).get()`` for one method."""
    params = [
        p for p, info in (details or {}).get("params", {}).items() if p != "self" and isinstance(info, dict)
    ]
    args = "".join(f", {p}" for p in params)
    return f"self.vip.rpc.call({peer!r}, {method!r}{args}).get(timeout=10)"


def _connected(opts: VctlOptions) -> Any:
    from volttron.client.commands.connection import connected

    return connected(opts.connection_settings())


@click.group()
def rpc() -> None:
    """Inspect and call the RPC methods of connected agents."""


@rpc.command("list")
@click.argument("identity", nargs=-1)
@click.option("-v", "--verbose", is_flag=True, help="Show subsystem methods (names with a '.') too.")
@click.pass_obj
def list_methods(opts: VctlOptions, identity: tuple[str, ...], verbose: bool) -> None:
    """List exported methods: of every peer, of IDENTITY..., or details of IDENTITY METHOD..."""
    peers, methods = (identity[:1], identity[1:]) if len(identity) > 1 else (identity, ())
    with _connected(opts) as connection:
        described = describe_peers(connection, peers, methods, verbose)
    if opts.json:
        click.echo(json.dumps(described, indent=2, sort_keys=True))
        return
    for peer, found in described.items():
        click.echo(peer)
        if isinstance(found, dict):
            for method, details in found.items():
                click.echo(f"\t{method}")
                for line in json.dumps(details, indent=2, sort_keys=True).splitlines():
                    click.echo(f"\t\t{line}")
        else:
            for method in found:
                click.echo(f"\t{method}")


def call_method(connection: ControlConnection, peer: str, method: str, args: Sequence[Any],
                kwargs: dict[str, Any]) -> Any:
    """Call ``peer``'s ``method(*args, **kwargs)`` and return its result (errors as CommandError)."""
    return connection.call(method, *args, peer=peer, **kwargs)


@rpc.command("call")
@click.argument("identity")
@click.argument("method")
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_text", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, strings too.")
@click.pass_obj
def call(opts: VctlOptions, identity: str, method: str, args: tuple[str, ...], kwargs_text: str | None,
         as_json: bool) -> None:
    """Call METHOD of the agent IDENTITY with ARGS (each JSON) and print the result."""
    from volttron.client.commands.pubsub import parse_json_argument

    values = [parse_json_argument(a, f"argument {i}") for i, a in enumerate(args, 1)]
    kwargs = parse_json_argument(kwargs_text, "--kwargs") if kwargs_text is not None else {}
    if not isinstance(kwargs, dict):
        raise CommandError("--kwargs must be a JSON object", EXIT_USAGE)
    with _connected(opts) as connection:
        result = call_method(connection, identity, method, values, kwargs)
    if isinstance(result, str) and not (as_json or opts.json):
        click.echo(result)
    else:
        click.echo(json.dumps(result, indent=2, sort_keys=True))


@rpc.command("code")
@click.argument("identity", nargs=-1)
@click.option("-v", "--verbose", is_flag=True, help="Include subsystem methods (names with a '.').")
@click.pass_obj
def code(opts: VctlOptions, identity: tuple[str, ...], verbose: bool) -> None:
    """Print the code that calls each exported method (of every peer, or of IDENTITY [METHOD...])."""
    peers, methods = (identity[:1], identity[1:]) if len(identity) > 1 else (identity, ())
    with _connected(opts) as connection:
        described = describe_peers(connection, peers, methods, verbose)
        if not methods:
            described = {
                peer: {m: method_details(connection, peer, m) for m in found}
                for peer, found in described.items()
            }
    for peer, found in described.items():
        click.echo(peer)
        for method, details in found.items():
            click.echo(f"\t{call_snippet(peer, method, details)}")
