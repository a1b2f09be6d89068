"""``vctl install``: a source directory, a wheel file or a package name (docs/protocol.md §5.4).

A directory is built into a wheel here, beside vctl (``volttron.client.packaging.build_wheel``),
so an agent installs into a remote platform too. Files are checked before anything is sent: a
missing path, a file that is not a wheel, or a wheel without an agent entry point fail at once.
The wheel goes to the platform over a VIP channel; a package name is resolved by pip on the
platform against its configured index. One ``install`` call then installs, tags, enables and
starts the agent on the platform, streaming its steps back on the channel (printed on stderr).

Output: ``Agent <uuid> installed as <identity>`` or ``Agent <uuid> installed as <identity> and
started [<pid>]``; with ``--json`` ``{"agent_uuid", "identity", "tag", "priority", "enabling",
"starting", "started", "pid", ...}``.

An install takes as long as pip needs. While it runs, the platform says it is alive every few
seconds, so ``--timeout`` bounds a silence, never the install: vctl waits while the platform works,
and calls it silent only after ``max(--timeout, SILENCE_GRACE)`` seconds without a word. When the
answer does not come (a silence, or an answer lost), vctl asks the platform whether the agent is
there now and reports the truth: installed, or that the platform may still be finishing the install.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from volttron.client.commands.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TIMEOUT, CommandError
from volttron.utils.errors import VolttronError

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

Say = Callable[[str], None]
CONNECT_POLL_SECONDS = 0.2
SILENCE_GRACE = 20.0
"""Seconds of silence before an install is given up: the platform sends ``alive`` every 5 s."""


@dataclass(frozen=True)
class InstallRequest:
    """What to install and how."""

    source: str
    vip_identity: str | None = None
    tag: str | None = None
    agent_config: str | None = None
    """The configuration text (YAML or JSON), read from ``--agent-config FILE``."""
    priority: str | None = None
    enable: bool = False
    start: bool = False
    force: bool = False
    pre: bool = False
    isolated: bool | None = None
    """True: the agent's own environment; False: the platform's only; None: the platform chooses."""
    start_wait: float = 5.0
    """With ``start``: seconds to wait for the agent to connect (0: do not wait)."""


@dataclass(frozen=True)
class PreparedSource:
    """The agent to send: a wheel file, or a package name for the platform's pip."""

    wheel: Path | None = None
    package: str | None = None


def looks_like_path(source: str) -> bool:
    """True when ``source`` is meant as a file or directory rather than a package name."""
    if "://" in source:
        return False
    return "/" in source or os.sep in source or source.startswith((".", "~")) or source.endswith(".whl")


def prepare_source(
    source: str, build_dir: Path, say: Say | None = None, build_timeout: float = 600.0
) -> PreparedSource:
    """A checked wheel for ``source`` (building a directory into ``build_dir``), or a package name.

    Raises :class:`CommandError` for a missing path, a failed build, a file that is not a wheel
    or a wheel without an agent entry point.
    """
    from volttron.client.packaging import BuildError, PackagingError, build_wheel, inspect_wheel

    path = Path(source).expanduser()
    if not looks_like_path(source):
        # pip's rule: a bare word is a package name even where a folder of that name exists
        # (``vctl install volttron-listener-agent`` in the repository root means the index's).
        if say and path.is_dir():
            say(f"installing the package {source.strip()}; for the folder, give ./{source.strip()}")
        return PreparedSource(package=source.strip())
    try:
        if path.is_dir():
            if say:
                say(f"building a wheel from {path}")
            wheel = build_wheel(path, build_dir, build_timeout, progress=say)
        elif path.exists():
            wheel = path
        else:
            raise CommandError(f"{source}: no such file or directory", EXIT_ERROR)
        info = inspect_wheel(wheel)
    except BuildError as exc:
        first = str(exc).splitlines()[0].removesuffix("; last lines:").removesuffix(":")
        if say and exc.output_tail:
            say("build output (last lines):\n" + exc.output_tail)
        raise CommandError(first + _last_words(exc.output_tail), EXIT_ERROR) from exc
    except PackagingError as exc:
        text = " ".join(str(exc).split()).replace(
            f"{build_dir}{os.sep}", ""
        )  # the temporary folder says nothing
        raise CommandError(text, EXIT_ERROR) from exc
    if say:
        say(f"agent {info.name} {info.version} in {wheel.name}")
    return PreparedSource(wheel=wheel)


def _last_words(tail: str) -> str:
    """``: <the last line of the build output that says something>``, or nothing."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines
    return f": {errors[-1]}" if errors else ""


def read_agent_config(path: str | None) -> str | None:
    """The text of ``--agent-config FILE``, checked to parse as YAML or JSON."""
    if path is None:
        return None
    from volttron.utils.config import parse_config
    from volttron.utils.errors import ConfigError

    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"--agent-config {path}: cannot read it: {exc}", EXIT_ERROR) from exc
    try:
        parse_config(text, str(file))
    except ConfigError as exc:
        raise CommandError(f"--agent-config {path}: {' '.join(str(exc).split())}", EXIT_ERROR) from exc
    return text


def install_agent(
    connection: ControlConnection, request: InstallRequest, prepared: PreparedSource, say: Say | None = None
) -> dict[str, Any]:
    """Send the agent (if a wheel) and install it; returns the platform's install report.

    Interrupted (Ctrl-C), it says what the platform does: after the upload the install goes on
    there (the call cannot be taken back); during it, the platform gets an incomplete file.
    """
    before = {row["uuid"] for row in connection.call("list_agents")}
    channel = connection.channel()
    # the platform has the whole file once it says so ("transfer: received") or moves on
    uploaded = {"done": prepared.wheel is None}
    printer = _progress_printer(say)

    def progress(step: str, message: str) -> None:
        if step != "transfer" or message.startswith("received"):
            uploaded["done"] = True
        if printer is not None:
            printer(step, message)

    agent = prepared.wheel.name if prepared.wheel is not None else prepared.package
    try:
        return _install_call(connection, request, prepared, channel, before, progress, say)
    except KeyboardInterrupt:
        if uploaded["done"]:
            raise CommandError(
                f"interrupted: the platform goes on and finishes the install of {agent}; "
                "see 'vctl status' (and 'vctl remove' it if it was not wanted)",
                EXIT_INTERRUPTED,
            ) from None
        raise CommandError(
            f"interrupted during the upload of {agent}: the platform gets an incomplete file and "
            "installs nothing; see 'vctl status'",
            EXIT_INTERRUPTED,
        ) from None
    finally:
        channel.close()


def _install_call(
    connection: ControlConnection,
    request: InstallRequest,
    prepared: PreparedSource,
    channel: Any,
    before: set[str],
    progress: Callable[[str, str], None],
    say: Say | None,
) -> dict[str, Any]:
    """The ``install`` call, the upload and the progress stream; see :func:`install_agent`."""
    from volttron.client.commands.connection import translate_error
    from volttron.client.commands.transfer import UploadError, UploadTimeout, serve_install

    agent = prepared.wheel.name if prepared.wheel is not None else prepared.package
    isolated: dict[str, Any] = {} if request.isolated is None else {"isolated": request.isolated}
    result = connection.call_async(
        "install",
        agent,
        channel_name=channel.name if prepared.wheel is not None else None,
        vip_identity=request.vip_identity,
        tag=request.tag,
        agent_config=request.agent_config,
        priority=request.priority,
        enable=request.enable,
        start=request.start,
        force=request.force,
        pre_release=request.pre,
        progress_channel=channel.name,
        **isolated,
    )
    idle = max(connection.settings.timeout, SILENCE_GRACE)
    try:
        serve_install(
            channel,
            result,
            prepared.wheel,
            idle,
            progress=progress,
            sent=_sent_printer(say),
        )
    except UploadTimeout as exc:
        raise _outcome_unknown(connection, before, request, prepared, f"install: {exc}") from exc
    except UploadError as exc:
        raise CommandError(f"install: {exc}", EXIT_ERROR) from exc
    try:
        return result.get(timeout=idle)
    except VolttronError as exc:
        error = translate_error(exc, "install", "platform.control", idle)
        if error.exit_code != EXIT_TIMEOUT:
            raise error from exc
        raise _outcome_unknown(connection, before, request, prepared, str(error)) from exc


class InstalledWithoutAnswer(CommandError):
    """The install's answer never came, but the platform lists the agent: it was installed."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(f"installed as {report['identity']}", 0)
        self.report = report


def _outcome_unknown(
    connection: ControlConnection,
    before: set[str],
    request: InstallRequest,
    prepared: PreparedSource,
    why: str,
) -> CommandError:
    """What to say when the install's answer did not come: the agent as the platform lists it now, if
    it is there (:class:`InstalledWithoutAnswer`), else that the platform may still be finishing."""
    try:
        rows = connection.call("agent_status_rows")
    except (CommandError, VolttronError):
        rows = []
    wanted = _distribution_name(prepared)
    found = [
        r
        for r in rows
        if r.get("uuid") not in before
        and (request.vip_identity is None or r.get("identity") == request.vip_identity)
        and (wanted is None or _normal(str(r.get("name", ""))) == wanted)
    ]
    if len(found) == 1:
        row = found[0]
        return InstalledWithoutAnswer(
            {
                "agent_uuid": row["uuid"],
                "identity": row["identity"],
                "name": row.get("name"),
                "version": row.get("version"),
                "tag": row.get("tag"),
                "priority": row.get("priority"),
                "started": row.get("state") == "running",
                "pid": row.get("pid"),
                "notes": [f"the platform's answer did not come ({why}); the agent was found installed"],
            }
        )
    return CommandError(
        f"{why}; the platform may still be finishing the install: see 'vctl status' in a while", EXIT_TIMEOUT
    )


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution_name(prepared: PreparedSource) -> str | None:
    """The normalized distribution name of the wheel (from its file name) or of the requirement."""
    if prepared.wheel is not None:
        return _normal(prepared.wheel.name.split("-", 1)[0])
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", prepared.package or "")
    return _normal(match.group(1)) if match else None


def wait_connected(connection: ControlConnection, identity: str, timeout: float) -> dict[str, Any]:
    """Poll until ``identity`` is connected or its process has stopped; returns its last status row."""
    deadline = time.monotonic() + timeout
    while True:
        row = next((r for r in connection.call("agent_status_rows") if r["identity"] == identity), None)
        if row is None or row.get("state") != "running":
            return row or {}
        if identity in connection.call("peerlist"):
            row["connected"] = True
            return row
        if time.monotonic() >= deadline:
            row["connected"] = False
            return row
        import gevent

        gevent.sleep(CONNECT_POLL_SECONDS)


def run_install(
    connection: ControlConnection, request: InstallRequest, prepared: PreparedSource, say: Say | None = None
) -> dict[str, Any]:
    """Send and install a prepared agent; with ``start``, wait for the agent to connect."""
    try:
        report = install_agent(connection, request, prepared, say)
    except InstalledWithoutAnswer as found:
        report = found.report
        if say is not None:
            say(f"note: {report['notes'][0]}")
    report.update(enabling=request.enable or request.priority is not None, starting=request.start)
    if request.start and report.get("started") and request.start_wait > 0:
        row = wait_connected(connection, report["identity"], request.start_wait)
        report["state"] = row.get("state")
        report["connected"] = row.get("connected", False)
        report["pid"] = row.get("pid", report.get("pid"))
        if row.get("state") not in (None, "running"):
            from volttron.client.commands.agent import describe_state

            report["error"] = describe_state(row)
    return report


def _progress_printer(say: Say | None) -> Callable[[str, str], None] | None:
    if say is None:
        return None
    return lambda step, message: say(f"{step}: {message}")


def _sent_printer(say: Say | None) -> Callable[[int, int], None] | None:
    if say is None:
        return None
    shown = {"percent": -1}

    def report(sent: int, total: int) -> None:
        percent = 100 if total == 0 else min(100, sent * 100 // total)
        if percent >= shown["percent"] + 25 or (percent == 100 and shown["percent"] != 100):
            shown["percent"] = percent
            say(f"transfer: sent {sent} of {total} bytes ({percent}%)")

    return report


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.argument("source", metavar="DIRECTORY|WHEEL|PACKAGE")
@click.option("--vip-identity", help="The agent's identity (default: <name>-<version>_<n>).")
@click.option("--tag", help="A label for the agent (at most 64 characters).")
@click.option(
    "--agent-config", "agent_config", metavar="FILE", help="The agent's configuration (YAML or JSON)."
)
@click.option("--priority", help="Enable the agent at this start priority 0-99.")
@click.option("--enable", is_flag=True, help="Start the agent with the platform (priority 50 by default).")
@click.option("--start", is_flag=True, help="Start the agent now.")
@click.option("-f", "--force", is_flag=True, help="Reinstall over an agent with the same identity.")
@click.option("--pre", "--pre-release", "pre", is_flag=True, help="Allow pre-release versions.")
@click.option(
    "--isolated/--shared",
    "isolated",
    default=None,
    help="Install into a virtual environment of the agent's own under VOLTTRON_HOME, or only into the "
    "platform's (refused if that would change the platform's packages). Default: the platform's, unless "
    "that would change its packages or files, or the platform runs with --isolate-agents.",
)
@click.option(
    "-st",
    "--agent-start-time",
    "start_wait",
    type=float,
    default=5.0,
    show_default=True,
    help="With --start: seconds to wait for the agent to connect.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def install(
    opts: VctlOptions,
    source: str,
    vip_identity: str | None,
    tag: str | None,
    agent_config: str | None,
    priority: str | None,
    enable: bool,
    start: bool,
    force: bool,
    pre: bool,
    isolated: bool | None,
    start_wait: float,
    as_json: bool,
) -> None:
    """Install an agent from a source DIRECTORY, a WHEEL file, or a PACKAGE name on the platform's index."""
    from volttron.client.commands.connection import check_local_platform, connected

    request = InstallRequest(
        source=source,
        vip_identity=vip_identity,
        tag=tag,
        agent_config=read_agent_config(agent_config),
        priority=priority,
        enable=enable,
        start=start,
        force=force,
        pre=pre,
        isolated=isolated,
        start_wait=max(0.0, start_wait),
    )
    settings = opts.connection_settings()
    is_dir = Path(source).expanduser().is_dir()
    with tempfile.TemporaryDirectory(prefix="vctl-build-") as tmp:
        # Files and names are checked first (quick, no platform needed); a platform that is not
        # running is reported before a directory's build, which may take a while.
        prepared = None if is_dir else prepare_source(source, Path(tmp), _say)
        if settings.is_local:
            check_local_platform(settings.home)
        if prepared is None:
            prepared = prepare_source(source, Path(tmp), _say)
        with connected(settings) as connection:
            report = run_install(connection, request, prepared, _say)
    if as_json or opts.json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    elif report.get("error"):
        click.echo(f"Agent {report['agent_uuid']} installed as {report['identity']}")
    elif report.get("started"):
        click.echo(
            f"Agent {report['agent_uuid']} installed as {report['identity']} and started [{report['pid']}]"
        )
    else:
        click.echo(f"Agent {report['agent_uuid']} installed as {report['identity']}")
    if report.get("environment") and not (as_json or opts.json):
        click.echo(f"in its own environment {report['environment']}")
    if report.get("error"):
        raise CommandError(f"{report['identity']} did not stay up: {report['error']}", EXIT_ERROR)
