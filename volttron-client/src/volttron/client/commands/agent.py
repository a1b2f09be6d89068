"""``vctl`` commands on installed agents: status, list, start, stop, restart, remove, tag, enable,
disable, health, clear (docs/protocol.md §5.1).

Agents are named by UUID, unique UUID prefix or VIP identity (or a ``*``/``?`` pattern matching
identities and names). The plain functions do the work against a
:class:`~volttron.client.commands.connection.ControlConnection`; the click callbacks parse, connect
and print. ``status`` prints ``UUID AGENT IDENTITY TAG PRIORITY STATUS HEALTH``, the header on
stdout with the rows, the UUID as its shortest unique prefix (at least ``-n``
characters; ``-n 0`` for whole ones). A platform in secure mode reports each agent's system user:
``status`` then adds an ``AGENT_USER`` column after ``AGENT`` (docs/protocol.md §5.1), and ``--json`` rows
have ``"user"``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from volttron.client.commands.cli import EXIT_ERROR, CommandError, echo_table

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

HEALTH_PEER = "platform.health"
HEALTH_TIMEOUT = 5.0
STATUS_HEADER = ["UUID", "AGENT", "IDENTITY", "TAG", "PRIORITY", "STATUS", "HEALTH"]
SECURE_STATUS_HEADER = ["UUID", "AGENT", "AGENT_USER", "IDENTITY", "TAG", "PRIORITY", "STATUS", "HEALTH"]
LIST_HEADER = ["UUID", "AGENT", "IDENTITY", "TAG", "PRI"]
UNKNOWN_HEALTH = "UNKNOWN"

# ---------------------------------------------------------------------------- naming agents


def match_ref(agents: Sequence[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
    """The agents ``ref`` names: a full UUID, an identity, a unique UUID prefix, or a pattern.

    An exact UUID or identity wins; otherwise every agent whose UUID starts with ``ref`` (several
    means ambiguous); a ref with ``*`` or ``?`` matches identities and names.
    """
    exact = [a for a in agents if ref in (a["uuid"], a["identity"])]
    if exact:
        return exact[:1]
    if any(c in ref for c in "*?["):
        return [
            a
            for a in agents
            if fnmatch.fnmatchcase(a["identity"], ref) or fnmatch.fnmatchcase(a["name"], ref)
        ]
    return [a for a in agents if a["uuid"].startswith(ref)]


def resolve_refs(
    agents: Sequence[dict[str, Any]], refs: Iterable[str], allow_many: bool = True
) -> list[dict[str, Any]]:
    """The agents named by ``refs``, each once, in the order named.

    :class:`CommandError` for a ref that names nothing, a UUID prefix shared by several agents, or
    (``allow_many`` False) a pattern matching several.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for ref in refs:
        ref = ref.strip()
        if not ref:
            raise CommandError("an empty agent name was given", EXIT_ERROR)
        found = match_ref(agents, ref)
        if not found:
            raise CommandError(
                f"no installed agent has the UUID, UUID prefix or identity {ref!r}", EXIT_ERROR
            )
        is_pattern = any(c in ref for c in "*?[")
        if len(found) > 1 and (not is_pattern or not allow_many):
            listed = ", ".join(f"{a['uuid']} ({a['identity']})" for a in found)
            raise CommandError(f"{ref!r} matches {len(found)} agents: {listed}; be more specific", EXIT_ERROR)
        for agent in found:
            chosen.setdefault(agent["uuid"], agent)
    return list(chosen.values())


def short_uuids(uuids: Sequence[str], minimum: int = 1) -> dict[str, str]:
    """Each UUID cut to the shortest prefix (at least ``minimum``; 0: whole) no other UUID shares."""
    result = {}
    for uuid in uuids:
        if minimum <= 0:
            result[uuid] = uuid
            continue
        length = minimum
        while length < len(uuid) and any(o != uuid and o.startswith(uuid[:length]) for o in uuids):
            length += 1
        result[uuid] = uuid[:length]
    return result


def agent_label(row: dict[str, Any]) -> str:
    """The AGENT column: ``<name>-<version>``."""
    return f"{row['name']}-{row['version']}" if row.get("version") else str(row["name"])


# ---------------------------------------------------------------------------- status


def describe_state(row: dict[str, Any]) -> str:
    """The STATUS column: ``running [pid]``, ``FAILED (exit N): <last error>``, ``stopped (exit N)``..."""
    state, code = row.get("state"), row.get("returncode")
    if state == "running":
        return f"running [{row.get('pid')}]"
    if state == "FAILED":
        text = f"FAILED (exit {code})" if code is not None else "FAILED"
        return f"{text}: {row['last_error']}" if row.get("last_error") else text
    if state == "restarting":  # the first crash's reason at once, not after the restart limit
        text = f"restarting (exit {code}, crash {row.get('crashes', 0)})"
        return f"{text}: {row['last_error']}" if row.get("last_error") else text
    if state == "stopped" and code not in (None, 0):
        return f"stopped (exit {code})"
    return str(state or "")


def fetch_health(connection: ControlConnection, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any] | None:
    """``platform.health``'s record of every peer, or None when the health service does not answer."""
    try:
        health = connection.call("get_platform_health", peer=HEALTH_PEER, timeout=timeout)
    except CommandError:
        return None
    return health if isinstance(health, dict) else None


def health_of(health: dict[str, Any] | None, identity: str, running: bool) -> str:
    """The HEALTH column: ``platform.health``'s status of the agent (what ``vctl health`` shows).

    The status, not the last heartbeat's message: an agent whose heartbeats stopped is stale and
    its status ``UNKNOWN`` even though its last message said ``GOOD``. Blank when not running.
    """
    if not running:
        return ""
    if health is None:
        return UNKNOWN_HEALTH
    record = health.get(identity)
    if not isinstance(record, dict):
        return UNKNOWN_HEALTH
    value = record.get("status")
    if value is None:  # a health service that reports only the message
        value = record.get("message")
    if isinstance(value, dict):
        value = value.get("status")
    return str(value) if value else UNKNOWN_HEALTH


def status_rows(connection: ControlConnection, refs: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every agent's status row (or those ``refs`` name) with ``"health"`` added, sorted by identity."""
    rows = connection.call("agent_status_rows")
    if refs:
        wanted = {a["uuid"] for a in resolve_refs(rows, refs)}
        rows = [r for r in rows if r["uuid"] in wanted]
    health = fetch_health(connection) if any(r.get("state") == "running" for r in rows) else None
    for row in rows:
        row["health"] = health_of(health, row["identity"], row.get("state") == "running")
        row["status"] = describe_state(row)
    return sorted(rows, key=lambda r: r["identity"])


def secure_mode(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the rows come from a platform in secure mode (they name each agent's system user)."""
    return any("user" in r for r in rows)


def status_header(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The ``status`` header: with ``AGENT_USER`` when the platform runs agents as their own users."""
    return SECURE_STATUS_HEADER if secure_mode(rows) else STATUS_HEADER


def status_table(rows: Sequence[dict[str, Any]], minimum: int = 1) -> list[list[str]]:
    """The ``status`` table rows (columns as :func:`status_header`)."""
    short = short_uuids([r["uuid"] for r in rows], minimum)
    users = secure_mode(rows)
    table = []
    for r in rows:
        line = [
            short[r["uuid"]],
            agent_label(r),
            r["identity"],
            r.get("tag") or "",
            r.get("priority") or "",
            r["status"],
            r["health"],
        ]
        if users:
            line.insert(2, r.get("user") or "")
        table.append(line)
    return table


# ---------------------------------------------------------------------------- actions


def act_on(
    connection: ControlConnection, method: str, refs: Sequence[str], **kwargs: Any
) -> list[dict[str, Any]]:
    """Call ``method(uuid, **kwargs)`` for each agent ``refs`` names; returns ``(agent, answer)`` rows."""
    agents = resolve_refs(connection.call("list_agents"), refs)
    return [{"agent": a, "result": connection.call(method, a["uuid"], **kwargs)} for a in agents]


def health_record(connection: ControlConnection, ref: str) -> dict[str, Any]:
    """The health record of one agent: from ``platform.health``, else the agent's own status."""
    (agent,) = resolve_refs(connection.call("list_agents"), [ref], allow_many=False)
    health = fetch_health(connection)
    if health is not None and isinstance(health.get(agent["identity"]), dict):
        return health[agent["identity"]]
    return connection.call("health.get_status", peer=agent["identity"])


def all_health(connection: ControlConnection) -> dict[str, Any]:
    """``platform.health``'s record of every peer; :class:`CommandError` when it does not answer."""
    return connection.call("get_platform_health", peer=HEALTH_PEER, timeout=HEALTH_TIMEOUT)


def needless_action(method: str, row: dict[str, Any] | None) -> str | None:
    """Why ``method`` (``start_agent``/``stop_agent``) has nothing to do for an agent in ``row``."""
    if row is None:
        return None
    state = row.get("state")
    if method == "start_agent" and state == "running":
        return f"{row['identity']} is already running [{row.get('pid')}]"
    if method == "stop_agent" and state not in ("running", "restarting", "stopping"):
        return f"{row['identity']} is not running ({describe_state(row) or 'stopped'})"
    return None


# ---------------------------------------------------------------------------- click commands

_uuid_length = click.option(
    "-n",
    "uuid_length",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Show at least N characters of each UUID (0: the whole UUID).",
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _run(opts: VctlOptions, work: Any, *args: Any, **kwargs: Any) -> Any:
    from volttron.client.commands.connection import connected

    with connected(opts.connection_settings()) as connection:
        return work(connection, *args, **kwargs)


@click.command()
@click.argument("agents", nargs=-1)
@_uuid_length
@_as_json
@click.pass_obj
def status(opts: VctlOptions, agents: tuple[str, ...], uuid_length: int, as_json: bool) -> None:
    """Show installed agents: process state, exit code, last error and health."""
    rows = _run(opts, status_rows, agents)
    if as_json or opts.json:
        _echo_json(rows)
    elif rows:
        echo_table(status_table(rows, uuid_length), status_header(rows))
    else:
        click.echo("No installed agents.", err=True)


@click.command("list")
@click.argument("agents", nargs=-1)
@_uuid_length
@_as_json
@click.pass_obj
def list_command(opts: VctlOptions, agents: tuple[str, ...], uuid_length: int, as_json: bool) -> None:
    """List installed agents with their identity, tag and start priority."""

    def work(connection: ControlConnection) -> list[dict[str, Any]]:
        rows = connection.call("list_agents")
        return resolve_refs(rows, agents) if agents else rows

    rows = sorted(_run(opts, work), key=lambda r: r["identity"])
    if as_json or opts.json:
        _echo_json(rows)
        return
    short = short_uuids([r["uuid"] for r in rows], uuid_length)
    table = [
        [short[r["uuid"]], r["name"], r["identity"], r.get("tag") or "", r.get("priority") or ""]
        for r in rows
    ]
    if table:
        echo_table(table, LIST_HEADER)
    else:
        click.echo("No installed agents.", err=True)


def _action(name: str, method: str, verb: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("agents", nargs=-1, required=True)
    @click.pass_obj
    def command(opts: VctlOptions, agents: tuple[str, ...]) -> None:
        def work(connection: ControlConnection) -> None:
            chosen = resolve_refs(connection.call("list_agents"), agents)
            states = {r["uuid"]: r for r in connection.call("agent_status_rows")}
            for agent in chosen:
                reason = needless_action(method, states.get(agent["uuid"]))
                if reason is not None:
                    click.echo(reason)
                    continue
                click.echo(f"{verb} {agent['uuid']} {agent['identity']}")
                row = connection.call(method, agent["uuid"])
                if opts.json:
                    _echo_json(row)
                elif isinstance(row, dict) and row.get("state") not in (None, "running", "stopped"):
                    click.echo(f"  {row['identity']} is {describe_state(row)}", err=True)

        _run(opts, work)

    return command


start = _action("start", "start_agent", "Starting",
                "Start agents (one already running is left alone, and said so).")
stop = _action("stop", "stop_agent", "Stopping",
               "Stop agents (SIGINT, then SIGTERM, then SIGKILL); one not running is said so.")
restart = _action("restart", "restart_agent", "Restarting", "Stop agents if they run, then start them.")


@click.command()
@click.argument("agents", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove every agent a pattern matches.")
@click.pass_obj
def remove(opts: VctlOptions, agents: tuple[str, ...], force: bool) -> None:
    """Stop and remove agents (their code too when no other instance uses it)."""

    def work(connection: ControlConnection) -> None:
        chosen = resolve_refs(connection.call("list_agents"), agents)
        if len(chosen) > len(agents) and not force:
            names = ", ".join(a["identity"] for a in chosen)
            raise CommandError(
                f"the patterns match {len(chosen)} agents ({names}); pass --force to remove them all"
            )
        for agent in chosen:
            click.echo(f"Removing {agent['uuid']} {agent['identity']}")
            result = connection.call("remove_agent", agent["uuid"])
            for note in (result or {}).get("notes", []) if isinstance(result, dict) else []:
                click.echo(f"  {note}", err=True)

    _run(opts, work)


@click.command()
@click.argument("agent")
@click.argument("tag_text", metavar="[TAG]", required=False)
@click.option("-r", "--remove", "remove_tag", is_flag=True, help="Remove the tag.")
@click.pass_obj
def tag(opts: VctlOptions, agent: str, tag_text: str | None, remove_tag: bool) -> None:
    """Set (or with -r remove) an agent's tag; without TAG show it."""
    if remove_tag and tag_text:
        raise click.UsageError("give a TAG or --remove, not both")

    def work(connection: ControlConnection) -> dict[str, Any]:
        (entry,) = resolve_refs(connection.call("list_agents"), [agent], allow_many=False)
        if tag_text is None and not remove_tag:
            return entry
        return connection.call("tag_agent", entry["uuid"], None if remove_tag else tag_text)

    entry = _run(opts, work)
    click.echo(entry.get("tag") or "")


@click.command()
@click.argument("agents", nargs=-1, required=True)
@click.option("-p", "--priority", default="50", show_default=True, help="Start priority 0-99 (lower first).")
@click.pass_obj
def enable(opts: VctlOptions, agents: tuple[str, ...], priority: str) -> None:
    """Start agents with the platform."""
    for row in _run(opts, act_on, "enable_agent", agents, priority=priority):
        agent, entry = row["agent"], row["result"]
        click.echo(f"Enabling {agent['uuid']} {agent['identity']} with priority {entry['priority']}")


@click.command()
@click.argument("agents", nargs=-1, required=True)
@click.pass_obj
def disable(opts: VctlOptions, agents: tuple[str, ...]) -> None:
    """Do not start agents with the platform."""
    for row in _run(opts, act_on, "disable_agent", agents):
        click.echo(f"Disabling {row['agent']['uuid']} {row['agent']['identity']}")


@click.command()
@click.argument("agent", required=False)
@click.pass_obj
def health(opts: VctlOptions, agent: str | None) -> None:
    """Show an agent's health record as JSON; without AGENT, every peer's."""
    if agent is None:
        _echo_json(_run(opts, all_health))
    else:
        _echo_json(_run(opts, health_record, agent))


@click.command()
@click.option("-a", "--all", "clear_all", is_flag=True, help="Also clear agents that are still installed.")
@click.pass_obj
def clear(opts: VctlOptions, clear_all: bool) -> None:
    """Forget the exit status of stopped agents (a FAILED agent becomes stopped)."""
    cleared = _run(opts, lambda c: c.call("clear_status", clear_all))
    for identity in cleared or []:
        click.echo(f"Cleared {identity}")
