"""``vctl config``: the platform's configuration store (docs/protocol.md §2.10, §5.1).

::

    vctl config store IDENTITY NAME [FILE|-] [--json|--csv|--raw]   (default --json; stdin without FILE)
    vctl config store-dir IDENTITY DIRECTORY                        (every file, one call, all or none)
    vctl config get IDENTITY NAME [--raw]
    vctl config get-all IDENTITY                                    (config:// references resolved)
    vctl config list [IDENTITY]
    vctl config delete IDENTITY [NAME] [--all]
    vctl config edit IDENTITY NAME [--editor E] [--json|--csv|--raw] [--new]

Contents are checked here before anything is sent, so a JSON syntax error is one line naming the
file and the line, and nothing is stored. ``store-dir`` names each configuration by its path
relative to the directory (``devices/campus/rtu1``, ``registry/rtu1.csv``) and types it by its
extension: ``.json`` JSON, ``.csv`` CSV; any other file is JSON when its text starts with ``{`` or
``[`` and raw otherwise. Hidden files and folders are skipped.

vctl reaches ``platform.config_store`` as ``control.connection``, which holds the
``edit_config_store`` capability (:mod:`volttron.client.commands.connection`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from volttron.client.commands.cli import EXIT_ERROR, CommandError
from volttron.client.known_identities import CONFIGURATION_STORE

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

CONFIG_TYPES = ("json", "csv", "raw")
SUFFIXES = {"json": ".json", "csv": ".csv", "raw": ".txt"}
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_FILES = 10000
DEFAULT_EDITOR = "nano"


# ---------------------------------------------------------------------------- contents


def check_contents(text: str, config_type: str, source: str) -> None:
    """Raise :class:`CommandError` naming ``source`` (and the line) when ``text`` is not a valid
    configuration of ``config_type``; the store applies the same rules."""
    if config_type == "json":
        from volttron.utils.config import strip_comments

        try:
            value = json.loads(strip_comments(text))
        except json.JSONDecodeError as exc:
            raise CommandError(f"{source}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}",
                               EXIT_ERROR) from None
        except RecursionError:
            raise CommandError(f"{source}: JSON nested too deeply", EXIT_ERROR) from None
        if not isinstance(value, (dict, list)):
            raise CommandError(f"{source}: a JSON configuration must be an object or a list", EXIT_ERROR)
    elif config_type == "csv":
        try:
            reader = csv.DictReader(io.StringIO(text))
            for _ in reader:
                pass
        except csv.Error as exc:
            raise CommandError(f"{source}: invalid CSV: {exc}", EXIT_ERROR) from None
        if reader.fieldnames is None:
            raise CommandError(f"{source}: a CSV configuration needs a header row", EXIT_ERROR)


def read_text(path: str) -> str:
    """The UTF-8 text of ``path`` (``-`` is stdin); :class:`CommandError` saying why it cannot be read."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        source = "<stdin>"
    else:
        source = path
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"{path}: cannot read: {exc.strerror or exc}", EXIT_ERROR) from None
    if len(data) > MAX_FILE_BYTES:
        raise CommandError(f"{source}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", EXIT_ERROR)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{source}: not UTF-8 text (byte {exc.start})", EXIT_ERROR) from None


def type_of_file(path: Path, text: str) -> str:
    """The configuration type ``store-dir`` gives a file (see the module docstring)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    from volttron.utils.config import strip_comments

    return "json" if strip_comments(text).lstrip()[:1] in ("{", "[") else "raw"


def collect_directory(directory: str) -> list[dict[str, str]]:
    """``[{"name", "raw_contents", "config_type"}]`` for every file under ``directory``, checked.

    Names are paths relative to ``directory`` with ``/`` separators, in sorted order.
    """
    root = Path(directory)
    if not root.is_dir():
        raise CommandError(f"{directory}: not a directory", EXIT_ERROR)
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                found.append(Path(folder) / name)
                if len(found) > MAX_FILES:
                    raise CommandError(f"{directory}: more than {MAX_FILES} files", EXIT_ERROR)
    if not found:
        raise CommandError(f"{directory}: no files to store", EXIT_ERROR)
    configs = []
    for path in found:
        text = read_text(str(path))
        config_type = type_of_file(path, text)
        check_contents(text, config_type, str(path))
        name = path.relative_to(root).as_posix()
        configs.append({"name": name, "raw_contents": text, "config_type": config_type})
    return configs


# ---------------------------------------------------------------------------- the store's methods


class ConfigStoreCalls:
    """The store's RPC methods over a :class:`ControlConnection` (or anything with its ``call``)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method`` on ``platform.config_store``."""
        return self.connection.call(method, *args, peer=CONFIGURATION_STORE, **kwargs)

    def store(self, identity: str, name: str, text: str, config_type: str) -> None:
        """Store one configuration (checked by the store too)."""
        self.call("manage_store", identity, name, text, config_type)

    def store_many(self, identity: str, configs: list[dict[str, str]]) -> list[str]:
        """Store many in one call, all or none; returns their names."""
        return self.call("manage_store_configs", identity, configs)

    def get(self, identity: str, name: str, raw: bool) -> Any:
        """The raw text, or the parsed value."""
        return self.call("manage_get", identity, name, raw=raw)

    def metadata(self, identity: str, name: str) -> dict[str, Any]:
        """``{"type", "modified", "data"}``."""
        return self.call("manage_get_metadata", identity, name)

    def get_all(self, identity: str) -> dict[str, Any]:
        """Every configuration with references resolved."""
        return self.call("manage_get_all", identity)

    def list(self, identity: str | None) -> list[str]:
        """Configuration names of ``identity``, or the identities with a store."""
        if identity is None:
            return self.call("manage_list_stores")
        return self.call("manage_list_configs", identity)

    def delete(self, identity: str, name: str | None) -> None:
        """Delete one configuration, or (``name`` None) the whole store."""
        if name is None:
            self.call("manage_delete_store", identity)
        else:
            self.call("manage_delete_config", identity, name)


def is_not_found(error: CommandError) -> bool:
    """Whether a failed call said there is no such configuration."""
    return "no configuration" in error.format_message()


# ---------------------------------------------------------------------------- editing


def edit_text(text: str, config_type: str, editor: str, run: Callable[[list[str]], int] | None = None
              ) -> tuple[str, Path]:
    """Open ``text`` in ``editor``; returns the edited text and the file holding it.

    The file is left for the caller to remove (it keeps the edits when they cannot be stored).
    """
    fd, name = tempfile.mkstemp(prefix="vctl-config-", suffix=SUFFIXES[config_type])
    path = Path(name)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    command = [*shlex.split(editor), str(path)]
    runner = run or (lambda argv: subprocess.call(argv))
    try:
        code = runner(command)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise CommandError(f"cannot run the editor {editor!r}: {exc.strerror or exc}", EXIT_ERROR) from None
    if code != 0:
        path.unlink(missing_ok=True)
        raise CommandError(f"the editor {editor!r} exited with {code}; nothing stored", EXIT_ERROR)
    return read_text(str(path)), path


Runner = Callable[[Callable[[ConfigStoreCalls], Any]], Any]
"""``runner(work)``: connect, call ``work(calls)``, disconnect, return what it returned."""


def edit_config(runner: Runner, identity: str, name: str, editor: str, config_type: str | None = None,
                create: bool = False, run_editor: Callable[[list[str]], int] | None = None) -> bool:
    """Fetch a configuration, let ``editor`` change it, check and store it; False when unchanged.

    When the edited text cannot be stored, the error names the file that keeps the edits.
    """
    def fetch(calls: ConfigStoreCalls) -> dict[str, Any] | None:
        try:
            return calls.metadata(identity, name)
        except CommandError as exc:
            if not is_not_found(exc):
                raise
            if create:
                return None
            raise CommandError(f"{exc.format_message()} (use --new to create it)", exc.exit_code) from None

    current = runner(fetch)
    if current is not None and create:
        raise CommandError(f"configuration {name!r} of {identity!r} exists; edit it without --new",
                           EXIT_ERROR)
    original = current["data"] if current else ""
    chosen = config_type or (current["type"] if current else "json")
    text, path = edit_text(original, chosen, editor, run_editor)
    if current is not None and text == original and chosen == current["type"]:
        path.unlink(missing_ok=True)
        return False
    try:
        check_contents(text, chosen, name)
        runner(lambda calls: calls.store(identity, name, text, chosen))
    except CommandError as exc:
        raise CommandError(f"{exc.format_message()}; nothing stored, your edits are in {path}",
                           exc.exit_code) from None
    path.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------- click commands


def _run(opts: VctlOptions, work: Callable[[ConfigStoreCalls], Any]) -> Any:
    """Connect, run ``work`` on the store's methods, disconnect: the one place vctl config connects."""
    from volttron.client.commands.connection import connected

    connection: ControlConnection
    with connected(opts.connection_settings()) as connection:
        return work(ConfigStoreCalls(connection))


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _type_flags(default: str | None) -> Callable[[Any], Any]:
    """``--json``, ``--csv`` and ``--raw`` as flags; the command gets ``config_type`` (None if none given
    and no ``default``)."""
    def decorate(function: Any) -> Any:
        for name in reversed(CONFIG_TYPES):
            what = "raw text" if name == "raw" else name.upper()
            note = " (default)" if default == name else ""
            function = click.option(f"--{name}", f"as_{name}", is_flag=True,
                                    help=f"The contents are {what}{note}.")(function)
        return function

    return decorate


def chosen_type(default: str | None, **flags: bool) -> str | None:
    """The type the ``--json``/``--csv``/``--raw`` flags name; a usage error for more than one."""
    given = [name for name in CONFIG_TYPES if flags.get(f"as_{name}")]
    if len(given) > 1:
        both = " and ".join(f"--{g}" for g in given)
        raise click.UsageError(f"give one of --json, --csv and --raw, not {both}")
    return given[0] if given else default


@click.group()
def config() -> None:
    """Manage agents' configurations in the platform's configuration store."""


@config.command()
@click.argument("identity")
@click.argument("name")
@click.argument("infile", metavar="[FILE|-]", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@_type_flags("json")
@click.pass_obj
def store(opts: VctlOptions, identity: str, name: str, infile: str, **flags: bool) -> None:
    """Store FILE (or stdin) as configuration NAME of agent IDENTITY."""
    config_type = chosen_type("json", **flags) or "json"
    text = read_text(infile)
    check_contents(text, config_type, "<stdin>" if infile == "-" else infile)
    _run(opts, lambda calls: calls.store(identity, name, text, config_type))


@config.command("store-dir")
@click.argument("identity")
@click.argument("directory", type=click.Path(file_okay=False))
@click.pass_obj
def store_dir(opts: VctlOptions, identity: str, directory: str) -> None:
    """Store every file under DIRECTORY for agent IDENTITY, named by relative path, in one step."""
    configs = collect_directory(directory)
    names = _run(opts, lambda calls: calls.store_many(identity, configs))
    if opts.json:
        _echo_json(names)
    else:
        click.echo(f"stored {len(names)} configuration(s) for {identity}")


@config.command()
@click.argument("identity")
@click.argument("name")
@click.option("--raw", is_flag=True, help="Print the text as stored.")
@click.pass_obj
def get(opts: VctlOptions, identity: str, name: str, raw: bool) -> None:
    """Print configuration NAME of agent IDENTITY (parsed, as indented JSON, unless --raw)."""
    value = _run(opts, lambda calls: calls.get(identity, name, raw))
    if raw:
        click.echo(value, nl=not value.endswith("\n"))
    else:
        _echo_json(value)


@config.command("get-all")
@click.argument("identity")
@click.pass_obj
def get_all(opts: VctlOptions, identity: str) -> None:
    """Print every configuration of IDENTITY as the agent sees them (references resolved)."""
    _echo_json(_run(opts, lambda calls: calls.get_all(identity)))


@config.command("list")
@click.argument("identity", required=False)
@click.pass_obj
def list_command(opts: VctlOptions, identity: str | None) -> None:
    """List the agents with stored configurations, or the configuration names of IDENTITY."""
    names = _run(opts, lambda calls: calls.list(identity))
    if opts.json:
        _echo_json(names)
        return
    for name in names:
        click.echo(name)


@config.command()
@click.argument("identity")
@click.argument("name", required=False)
@click.option("--all", "delete_all", is_flag=True, help="Delete every configuration of IDENTITY.")
@click.pass_obj
def delete(opts: VctlOptions, identity: str, name: str | None, delete_all: bool) -> None:
    """Delete configuration NAME of agent IDENTITY, or all of them with --all."""
    if (name is None) == (not delete_all):
        raise click.UsageError("give a configuration NAME or --all (not both)")
    _run(opts, lambda calls: calls.delete(identity, name))


@config.command()
@click.argument("identity")
@click.argument("name")
@click.option("--editor", metavar="COMMAND",
              help=f"Editor to use (default: $VISUAL, $EDITOR or {DEFAULT_EDITOR}).")
@_type_flags(None)
@click.option("--new", "create", is_flag=True, help="Start a configuration that does not exist yet.")
@click.pass_obj
def edit(opts: VctlOptions, identity: str, name: str, editor: str | None, create: bool,
         **flags: bool) -> None:
    """Edit configuration NAME of agent IDENTITY in an editor and store the result.

    The type stays as stored unless --json, --csv or --raw is given; a new one is JSON by default.
    """
    config_type = chosen_type(None, **flags)
    editor = editor or os.environ.get("VISUAL") or os.environ.get("EDITOR") or DEFAULT_EDITOR
    if not edit_config(lambda work: _run(opts, work), identity, name, editor, config_type, create):
        click.echo("no changes; nothing stored", err=True)
