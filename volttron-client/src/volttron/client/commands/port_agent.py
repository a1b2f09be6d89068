"""``vctl port-agent PATH``: move a monolithic agent's imports to the modular packages.

Every module under PATH is rewritten in place (``--dry-run`` only reports); a ``setup.py`` becomes a
suggested ``pyproject.toml``, written when there is none. Each replacement is listed as
``file:line: old -> new``; names with no equivalent as ``file:line: name: why``, and then the
command exits with status 1. No platform is needed. See ``docs/porting-guide.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from volttron.client.commands.cli import CommandError


@click.command("port-agent")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--no-pyproject", is_flag=True, help="Do not write pyproject.toml from setup.py (still shown).")
@click.pass_context
def port_agent(ctx: click.Context, path: Path, dry_run: bool, no_pyproject: bool) -> None:
    """Port the monolithic agent in PATH to the modular packages (no platform needed)."""
    from volttron.client.commands.create_agent import client_requirement
    from volttron.client.porting import PortingError, port_project

    try:
        from volttron.client import __version__

        report = port_project(
            path,
            dry_run=dry_run,
            write_pyproject=not no_pyproject,
            client_requirement=f"volttron-client{client_requirement(__version__)}",
        )
    except PortingError as exc:
        raise CommandError(str(exc)) from exc
    options: Any = ctx.obj
    if getattr(options, "json", False):
        click.echo(json.dumps(_as_json(report, dry_run), indent=2))
    else:
        _print(report, dry_run)
    if report.problems:
        raise CommandError(f"{len(report.problems)} name(s) could not be mapped; see above")


def _rel(report: Any, path: Path) -> str:
    try:
        return str(path.relative_to(report.root))
    except ValueError:
        return str(path)


def _print(report: Any, dry_run: bool) -> None:
    changed = 0
    for path, result in report.files.items():
        changed += result.changed
        for change in result.changes:
            click.echo(f"{_rel(report, path)}:{change.line}: {change.old} -> {change.new}")
    for path, problem in report.problems:
        click.echo(f"{_rel(report, path)}:{problem.line}: {problem.name}: {problem.reason}", err=True)
    if report.pyproject is not None and not report.pyproject_written:
        click.echo("suggested pyproject.toml:")
        click.echo(report.pyproject.rstrip())
    for note in report.notes:
        click.echo(f"note: {note}")
    verb = "would change" if dry_run else "changed"
    written = "; wrote pyproject.toml" if report.pyproject_written else ""
    click.echo(f"{verb} {changed} file(s){written}")


def _as_json(report: Any, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "changes": [
            {"file": _rel(report, path), "line": c.line, "old": c.old, "new": c.new}
            for path, result in report.files.items()
            for c in result.changes
        ],
        "problems": [
            {"file": _rel(report, path), "line": p.line, "name": p.name, "reason": p.reason}
            for path, p in report.problems
        ],
        "pyproject": report.pyproject,
        "pyproject_written": report.pyproject_written,
        "notes": report.notes,
    }
