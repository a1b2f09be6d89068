"""What ``vctl`` and ``vcfg`` share: lazily loaded sub-commands and one-line failures.

Every failure a user can cause ends as one line on stderr and a non-zero exit code; a traceback
is shown only with ``--debug``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import click

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 10
EXIT_REMOTE = 20
EXIT_TIMEOUT = 75
EXIT_INTERRUPTED = 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "done"),
    (EXIT_ERROR, "refused on this side: unknown agent or identity, missing file or folder, a file that "
                 "does not parse (JSON, YAML, CSV), a folder that is not an agent project"),
    (EXIT_USAGE, "bad usage: unknown command or option, missing or malformed argument (a JSON argument "
                 "that does not parse)"),
    (EXIT_NOT_RUNNING, "the platform is not running, or does not answer at the address"),
    (EXIT_REMOTE, "refused or failed on the platform: not authorized, remote error, no such method, "
                  "the agent is not connected"),
    (EXIT_TIMEOUT, "no answer within the timeout (-t)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)
"""vctl's exit codes: the one table that ``vctl --help`` prints and the user guide shows."""


def exit_codes_help() -> str:
    """The exit-code table as ``vctl --help``'s epilog (click keeps ``\b`` paragraphs as they are)."""
    lines = ["\b", "Exit codes:"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


class CommandError(click.ClickException):
    """A failure to report as one line with a chosen exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a class variable


@dataclass(frozen=True)
class LazyCommand:
    """A sub-command named by ``"module:attribute"`` and imported only when it runs."""

    target: str
    short_help: str


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use (idea of pypa/hatch's CLI)."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy_commands.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = lazy.target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{lazy.target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            lazy = self.lazy_commands.get(name)
            if lazy is not None:
                rows.append((name, lazy.short_help))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str()))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = _close_matches(name, self.list_commands(ctx))
            hint = f" (did you mean {' or '.join(close)}?)" if close else f"; see '{ctx.command_path} --help'"
            raise CommandError(f"no such command '{name}'{hint}", EXIT_USAGE)
        return super().resolve_command(ctx, args)


def _close_matches(name: str, choices: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, choices, n=2)


def run_cli(group: click.Command, prog_name: str, argv: list[str] | None = None) -> NoReturn:
    """Run ``group`` and turn every failure into one line on stderr with a meaningful exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        group.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        _fail(prog_name, "aborted", EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CommandError as exc:
        if debug:
            raise
        _fail(prog_name, exc.format_message(), exc.exit_code)
    except click.UsageError as exc:
        if debug:
            raise
        where = (
            f"{exc.ctx.command_path}: " if exc.ctx is not None and exc.ctx.command_path != prog_name else ""
        )
        _fail(prog_name, f"{where}{exc.format_message()}", EXIT_USAGE)
    except click.ClickException as exc:
        if debug:
            raise
        _fail(prog_name, exc.format_message(), exc.exit_code)
    except KeyboardInterrupt:
        _fail(prog_name, "interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # the last line of defence: one line, unless --debug
        if debug:
            raise
        from volttron.utils.errors import VolttronError

        kind = "" if isinstance(exc, VolttronError) else f"{type(exc).__name__}: "
        _fail(prog_name, f"{kind}{exc} (run with --debug for details)", EXIT_ERROR)
    sys.exit(0)


def _fail(prog_name: str, message: str, code: int) -> NoReturn:
    click.echo(f"{prog_name}: error: {message}", err=True)
    sys.exit(code)


def echo_table(rows: list[list[str]], header: list[str]) -> None:
    """Print ``rows`` under ``header`` in aligned columns, all on stdout (so ``| head`` shows the header)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    click.echo(line(header))
    for row in rows:
        click.echo(line(row))


def lazy(target: str, short_help: str) -> LazyCommand:
    """Shorthand for a :class:`LazyCommand` table entry."""
    return LazyCommand(target, short_help)
