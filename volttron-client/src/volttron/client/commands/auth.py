"""``vctl auth``: who may connect to the platform and what they may do (docs/protocol.md §5.1, §8.3, §8.4).

::

    vctl auth list                                   allow entries, "INDEX: n" then the entry
    vctl auth add --credentials KEY [--user-id U] [--identity I] [--capabilities C] [--roles R]
                  [--groups G] [--domain D] [--address A] [--mechanism M] [--comments T] [--disabled]
                  [--add-known-host]
    vctl auth add-platform NAME --credentials KEY [--comments T]   a linked platform's key, as its link only
    vctl auth update INDEX [the same options; those not given keep their value] [--enabled]
    vctl auth remove INDEX...
    vctl auth add-role ROLE CAP... / update-role ROLE CAP... [--remove] / remove-role ROLE / list-roles
    vctl auth add-group GROUP ROLE... / update-group GROUP ROLE... [--remove] / remove-group GROUP
    vctl auth list-groups
    vctl auth add-known-host --host H --serverkey K / list-known-hosts / remove-known-host H
    vctl auth remote list [--status pending|approved|denied] / remote approve|deny|delete USER_ID
    vctl auth rpc add IDENTITY.METHOD CAP... / rpc remove IDENTITY.METHOD CAP...
    vctl auth keypair / publickey / serverkey        (volttron.client.commands.auth_keys)

Lists (``--capabilities``, ``--roles``, ``--groups``) are comma separated; ``--capabilities`` may
also be JSON for capabilities with parameters: ``'{"edit_config_store": {"identity": "/a.*/"}}'``.
Everything but the known hosts goes to ``platform.auth`` over RPC (the modifying methods need
``allow_auth_modifications``, which vctl's identity holds); ``known_hosts`` is this host's file.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import click

from volttron.client.commands.auth_keys import KEY_COMMANDS
from volttron.client.commands.cli import EXIT_ERROR, EXIT_USAGE, CommandError, echo_table
from volttron.client.known_identities import AUTH
from volttron.utils.identities import is_remote_principal

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

MECHANISMS = ("CURVE", "PLAIN", "NULL")
STATUSES = ("pending", "approved", "denied")
REMOTE_HEADER = ["USER_ID", "STATUS", "ADDRESS", "CREDENTIALS", "RETRIES", "LAST_SEEN"]


# ---------------------------------------------------------------------------- parsing


def parse_names(text: str | None, what: str) -> list[str] | None:
    """A comma-separated list of names (None when not given); empty names are an error."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")] if text.strip() else []
    if any(not n for n in names):
        raise CommandError(f"--{what}: empty name in {text!r}", EXIT_USAGE)
    return list(dict.fromkeys(names))


def parse_capabilities(text: str | None) -> dict[str, Any] | None:
    """``{name: parameters or None}`` from a comma-separated list or JSON (None when not given)."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--capabilities: invalid JSON: {exc.msg} (column {exc.colno})",
                               EXIT_USAGE) from None
        items = value if isinstance(value, list) else [value]
        result: dict[str, Any] = {}
        for item in items:
            if isinstance(item, str) and item:
                result[item] = None
            elif isinstance(item, dict) and all(v is None or isinstance(v, dict) for v in item.values()):
                result.update(item)
            else:
                raise CommandError("--capabilities: JSON must name capabilities, with an object of "
                                   "parameters or null each", EXIT_USAGE)
        return result
    return dict.fromkeys(parse_names(text, "capabilities") or [])


def parse_credentials(text: str | None, mechanism: str) -> str | None:
    """The credentials as auth.json holds them: a CURVE key in its 43-character form, or a ``/regex/``."""
    if text is None or mechanism != "CURVE":
        return text
    value = text.strip()
    if len(value) >= 2 and value[0] == "/" and value[-1] == "/":
        return value
    from volttron.utils.errors import KeyFormatError
    from volttron.utils.keys import normalize_key

    try:
        return normalize_key(value)
    except KeyFormatError:
        raise CommandError(f"--credentials: not a CURVE public key ({len(value)} characters; expected 43 "
                           "characters of URL-safe base64, or a /regex/)", EXIT_USAGE) from None


def entry_changes(options: dict[str, Any]) -> dict[str, Any]:
    """The auth entry fields the ``add``/``update`` options set (options not given are left out)."""
    mechanism = (options.get("mechanism") or "CURVE").upper()
    changes: dict[str, Any] = {
        "domain": options.get("domain"),
        "address": options.get("address"),
        "mechanism": options.get("mechanism") and mechanism,
        "credentials": parse_credentials(options.get("credentials"), mechanism),
        "groups": parse_names(options.get("groups"), "groups"),
        "roles": parse_names(options.get("roles"), "roles"),
        "capabilities": parse_capabilities(options.get("capabilities")),
        "comments": options.get("comments"),
        "user_id": options.get("user_id"),
        "identity": options.get("identity"),
        "enabled": options.get("enabled"),
    }
    return {k: v for k, v in changes.items() if v is not None}


def split_target(target: str, identities: list[str]) -> tuple[str, str]:
    """``(identity, method)`` of ``IDENTITY.METHOD``; identities and methods may both hold dots, so the
    longest known identity that ``target`` starts with wins."""
    matches = [i for i in identities if i and target.startswith(i + ".") and len(target) > len(i) + 1]
    if not matches:
        raise CommandError(f"{target!r}: no agent identity in auth.json that it starts with "
                           "(expected IDENTITY.METHOD)", EXIT_ERROR)
    identity = max(matches, key=len)
    return identity, target[len(identity) + 1:]


# ---------------------------------------------------------------------------- platform calls


def _connected(opts: VctlOptions) -> Any:
    from volttron.client.commands.connection import connected

    return connected(opts.connection_settings())


def call_auth(connection: ControlConnection, method: str, *args: Any) -> Any:
    """Call ``method`` on ``platform.auth`` (errors become one-line :class:`CommandError`s)."""
    return connection.call(method, *args, peer=AUTH)


def read_auth_file(connection: ControlConnection) -> dict[str, Any]:
    """``auth_file.read``: ``{"allow_list", "deny_list", "groups", "roles", "version"}``."""
    return call_auth(connection, "auth_file.read")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


# ---------------------------------------------------------------------------- entries


@click.group()
def auth() -> None:
    """Manage who may connect to the platform and what they may do."""


for _command in KEY_COMMANDS:
    auth.add_command(_command)


def _entry_options(func: Any) -> Any:
    options = [
        click.option("--credentials", help="CURVE public key (any encoding) or /regex/."),
        click.option("--user-id", "--user_id", "user_id", help="User id (default: a new UUID)."),
        click.option("--identity", help="The agent's VIP identity."),
        click.option("--capabilities", help="Comma-separated names, or JSON with parameters."),
        click.option("--roles", help="Comma-separated role names."),
        click.option("--groups", help="Comma-separated group names."),
        click.option("--domain", help="ZAP domain (exact or /regex/; default any)."),
        click.option("--address", help="Client address (exact or /regex/; default any)."),
        click.option("--mechanism", type=click.Choice(MECHANISMS, case_sensitive=False),
                     help="Default CURVE."),
        click.option("--comments", help="Free text."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@auth.command("list")
@click.pass_obj
def list_entries(opts: VctlOptions) -> None:
    """Show the allow entries with their indices."""
    with _connected(opts) as connection:
        entries = read_auth_file(connection)["allow_list"]
    if opts.json:
        _echo_json(entries)
        return
    for index, entry in enumerate(entries):
        click.echo(f"\nINDEX: {index}")
        _echo_json(entry)


@auth.command("add")
@_entry_options
@click.option("--disabled", is_flag=True, help="Add the entry disabled.")
@click.option("--add-known-host", is_flag=True, help="Also remember --credentials as the key of --address.")
@click.pass_obj
def add(opts: VctlOptions, disabled: bool, add_known_host: bool, **options: Any) -> None:
    """Add an allow entry."""
    entry = entry_changes({**options, "enabled": False if disabled else None})
    remote = is_remote_principal(entry.get("user_id", ""))  # B:ops.agent: capabilities, never a key
    if "credentials" not in entry and entry.get("mechanism", "CURVE") == "CURVE" and not remote:
        raise CommandError("--credentials is required for a CURVE entry", EXIT_USAGE)
    if add_known_host and not (options.get("address") and entry.get("credentials")):
        raise CommandError("--add-known-host needs --address and --credentials", EXIT_USAGE)
    with _connected(opts) as connection:
        index = call_auth(connection, "auth_file.add", entry)
    if add_known_host:
        _known_hosts(opts).add(options["address"], entry["credentials"])
    click.echo(f"added entry {index}")


def link_entry(platform: str, credentials: str, this_instance: str,
               comments: str | None = None) -> dict[str, Any]:
    """The allow entry that lets linked platform ``platform`` in with its key, as its link and nothing else.

    Its user id is the platform's name (a hello as that platform is believed only from this key)
    and its identity the ``/regex/`` of the links to this platform, ``instance.<this>.<n>``: the key
    cannot connect as an agent, a service or any other name here (docs/multi-platform.md).
    """
    if not platform or ":" in platform:
        raise CommandError(f"platform name {platform!r}: must be non-empty, without ':'", EXIT_USAGE)
    return {"credentials": credentials, "user_id": platform,
            "identity": f"/instance\\.{re.escape(this_instance)}\\..+/",
            "comments": comments or f"platform {platform} (link only)"}


@auth.command("add-platform")
@click.argument("platform")
@click.option("--credentials", required=True,
              help="The other platform's public key (vctl auth serverkey there).")
@click.option("--comments", help="Free text.")
@click.pass_obj
def add_platform(opts: VctlOptions, platform: str, credentials: str, comments: str | None) -> None:
    """Let linked platform PLATFORM in with its key, as its link only (no agent identities)."""
    key = parse_credentials(credentials, "CURVE")
    assert key is not None
    with _connected(opts) as connection:
        result = connection.agent.vip.query.query("instance-name")
        this_instance = connection.wait(result, "query instance-name", peer="")
        if not isinstance(this_instance, str) or not this_instance:
            raise CommandError("the platform did not say its instance name", EXIT_ERROR)
        index = call_auth(connection, "auth_file.add", link_entry(platform, key, this_instance, comments))
    click.echo(f"added entry {index}: platform {platform!r} may link to {this_instance!r}, as its link only")


@auth.command("update")
@click.argument("index", type=int)
@_entry_options
@click.option("--enabled/--disabled", "enabled", default=None, help="Enable or disable the entry.")
@click.pass_obj
def update(opts: VctlOptions, index: int, **options: Any) -> None:
    """Change the allow entry at INDEX (options not given keep their value)."""
    changes = entry_changes(options)
    if not changes:
        raise CommandError("nothing to change: give at least one option (see --help)", EXIT_USAGE)
    with _connected(opts) as connection:
        entries = read_auth_file(connection)["allow_list"]
        if not 0 <= index < len(entries):
            raise CommandError(f"no allow entry at index {index} (see 'vctl auth list')", EXIT_ERROR)
        call_auth(connection, "auth_file.update_by_index", {**entries[index], **changes}, index)
    click.echo(f"updated entry {index}")


@auth.command("remove")
@click.argument("indices", type=int, nargs=-1, required=True)
@click.pass_obj
def remove(opts: VctlOptions, indices: tuple[int, ...]) -> None:
    """Remove the allow entries at INDICES (all or none)."""
    with _connected(opts) as connection:
        call_auth(connection, "auth_file.remove_by_indices", list(indices))
    removed = sorted(set(indices))
    click.echo(f"removed entr{'y' if len(removed) == 1 else 'ies'} {', '.join(map(str, removed))}")


# ---------------------------------------------------------------------------- roles and groups


def edit_map(connection: ControlConnection, kind: str, name: str, members: list[str], mode: str) -> dict:
    """Add (``add``, refusing an existing name), extend (``update``), shrink (``shrink``) or delete
    (``delete``) one name of the ``roles``/``groups`` map; returns the new map."""
    current = {k: list(v) for k, v in read_auth_file(connection)[kind].items()}
    singular = kind[:-1]
    if mode == "add" and name in current:
        raise CommandError(f"the {singular} {name!r} exists already; use update-{singular}", EXIT_ERROR)
    if mode != "add" and name not in current:
        raise CommandError(f"no {singular} {name!r} (see 'vctl auth list-{kind}')", EXIT_ERROR)
    if mode == "delete":
        del current[name]
    elif mode == "shrink":
        current[name] = [m for m in current[name] if m not in members]
    else:
        current[name] = list(dict.fromkeys([*current.get(name, []), *members]))
    call_auth(connection, f"auth_file.set_{kind}", current)
    return current


def _map_commands(kind: str, members_name: str) -> None:
    singular = kind[:-1]

    @auth.command(f"add-{singular}", help=f"Add a {singular} with its {members_name}.")
    @click.argument("name")
    @click.argument("members", nargs=-1, required=True)
    @click.pass_obj
    def add_name(opts: VctlOptions, name: str, members: tuple[str, ...]) -> None:
        with _connected(opts) as connection:
            edit_map(connection, kind, name, list(members), "add")
        click.echo(f"added {singular} {name}")

    @auth.command(f"update-{singular}", help=f"Add {members_name} to a {singular} (--remove: take away).")
    @click.argument("name")
    @click.argument("members", nargs=-1, required=True)
    @click.option("--remove", is_flag=True, help=f"Remove the {members_name} instead.")
    @click.pass_obj
    def update_name(opts: VctlOptions, name: str, members: tuple[str, ...], remove: bool) -> None:
        with _connected(opts) as connection:
            edit_map(connection, kind, name, list(members), "shrink" if remove else "update")
        click.echo(f"updated {singular} {name}")

    @auth.command(f"remove-{singular}", help=f"Remove a {singular}.")
    @click.argument("name")
    @click.pass_obj
    def remove_name(opts: VctlOptions, name: str) -> None:
        with _connected(opts) as connection:
            edit_map(connection, kind, name, [], "delete")
        click.echo(f"removed {singular} {name}")

    @auth.command(f"list-{kind}", help=f"Show the {kind} and their {members_name}.")
    @click.pass_obj
    def list_names(opts: VctlOptions) -> None:
        with _connected(opts) as connection:
            current = read_auth_file(connection)[kind]
        if opts.json:
            _echo_json(current)
        elif current:
            echo_table([[n, ", ".join(m)] for n, m in sorted(current.items())],
                       [singular.upper(), members_name.upper()])


_map_commands("roles", "capabilities")
_map_commands("groups", "roles")


# ---------------------------------------------------------------------------- known hosts


def _known_hosts(opts: VctlOptions) -> Any:
    from volttron.utils.home import known_hosts_path
    from volttron.utils.keystore import KnownHosts

    return KnownHosts(known_hosts_path(opts.home))


def _local_errors() -> tuple[type[BaseException], ...]:
    from volttron.utils.errors import VolttronError

    return (VolttronError, OSError)


@auth.command("add-known-host")
@click.option("--host", required=True, help="Platform address: HOST:PORT, tcp://HOST:PORT or ipc://PATH.")
@click.option("--serverkey", required=True, help="The platform's public key (any encoding).")
@click.pass_obj
def add_known_host(opts: VctlOptions, host: str, serverkey: str) -> None:
    """Remember a platform's server key (this host's known_hosts file)."""
    try:
        _known_hosts(opts).add(host, serverkey)
    except _local_errors() as exc:
        raise CommandError(f"cannot add {host}: {exc}", EXIT_ERROR) from None
    click.echo(f"added {host}")


@auth.command("list-known-hosts")
@click.pass_obj
def list_known_hosts(opts: VctlOptions) -> None:
    """Show the remembered platforms and their server keys."""
    try:
        items = _known_hosts(opts).items()
    except _local_errors() as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    if opts.json:
        _echo_json(dict(items))
    elif items:
        echo_table([list(i) for i in items], ["HOST", "SERVERKEY"])


@auth.command("remove-known-host")
@click.argument("host")
@click.pass_obj
def remove_known_host(opts: VctlOptions, host: str) -> None:
    """Forget a platform's server key."""
    try:
        removed = _known_hosts(opts).remove(host)
    except _local_errors() as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    if not removed:
        raise CommandError(f"{host} is not a known host (see 'vctl auth list-known-hosts')", EXIT_ERROR)
    click.echo(f"removed {host}")


# ---------------------------------------------------------------------------- refused keys


@auth.group()
def remote() -> None:
    """Keys the platform refused: list them, approve, deny or forget them."""


def remote_records(connection: ControlConnection, status: str | None = None) -> list[dict[str, Any]]:
    """The recorded keys (with ``status``, or all), each with its ``status``."""
    records = []
    for name in (status,) if status else STATUSES:
        records.extend(call_auth(connection, f"get_{name}_authorizations"))
    return records


@remote.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only records with this status.")
@click.pass_obj
def remote_list(opts: VctlOptions, status: str | None) -> None:
    """Show the refused keys and what was decided about them."""
    with _connected(opts) as connection:
        records = remote_records(connection, status)
    if opts.json:
        _echo_json(records)
    elif records:
        rows = [[r["user_id"], r["status"], r["address"], r["credentials"], str(r["retries"]), r["last_seen"]]
                for r in records]
        echo_table(rows, REMOTE_HEADER)


def _decision(action: str, method: str) -> None:
    @remote.command(action, help=f"{action.capitalize()} the refused key recorded as USER_ID.")
    @click.argument("user_id")
    @click.pass_obj
    def decide(opts: VctlOptions, user_id: str) -> None:
        with _connected(opts) as connection:
            call_auth(connection, method, user_id)
        click.echo(f"{action}{'d' if action.endswith('e') else 'ed'} {user_id}")


_decision("approve", "approve_authorization")
_decision("deny", "deny_authorization")
_decision("delete", "delete_authorization")


# ---------------------------------------------------------------------------- method authorizations


@auth.group("rpc")
def rpc_group() -> None:
    """Change which capabilities an agent's RPC methods require."""


def change_method_capabilities(connection: ControlConnection, target: str, capabilities: list[str],
                               add: bool) -> tuple[str, str, list[str]]:
    """Add or remove ``capabilities`` for ``IDENTITY.METHOD``; returns (identity, method, now required)."""
    entries = read_auth_file(connection)["allow_list"]
    identities = {e.get("identity") for e in entries} | {e.get("user_id") for e in entries}
    identity, method = split_target(target, sorted(i for i in identities if i))
    name = "add_rpc_authorizations" if add else "delete_rpc_authorizations"
    return identity, method, call_auth(connection, name, identity, method, capabilities)


def _rpc_change(action: str, add: bool) -> None:
    @rpc_group.command(action, help=f"{action.capitalize()} capabilities required by IDENTITY.METHOD.")
    @click.argument("target", metavar="IDENTITY.METHOD")
    @click.argument("capabilities", nargs=-1, required=True)
    @click.pass_obj
    def change(opts: VctlOptions, target: str, capabilities: tuple[str, ...]) -> None:
        with _connected(opts) as connection:
            identity, method, required = change_method_capabilities(connection, target, list(capabilities),
                                                                    add)
        shown = ", ".join(c for c in required if c) or "nothing (open to every caller)"
        click.echo(f"{identity}.{method} requires {shown}")


_rpc_change("add", True)
_rpc_change("remove", False)

__all__ = ["auth"]
