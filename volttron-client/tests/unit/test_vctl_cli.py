"""The command-line shell of vctl/vcfg: lazy sub-commands, one-line failures, light imports."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from volttron.client.commands.cli import EXIT_USAGE, CommandError, LazyGroup, lazy, run_cli


def _run(group: click.Command, args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        run_cli(group, "prog", args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@click.group(
    cls=LazyGroup,
    lazy_commands={"later": lazy("tests_vctl_lazy_target:command", "Imported when run.")},
)
@click.option("--debug", is_flag=True)
def group(debug: bool) -> None:
    """A test group."""


@group.command()
@click.argument("what")
def fail(what: str) -> None:
    """Raise a CommandError."""
    raise CommandError(f"cannot {what}", 42)


@group.command()
def crash() -> None:
    """Raise an unexpected error."""
    raise RuntimeError("boom")


def test_unknown_command_is_one_line_with_suggestion(capsys) -> None:
    code, out, err = _run(group, ["fial"], capsys)
    assert code == EXIT_USAGE
    assert err.strip().count("\n") == 0
    assert "no such command 'fial'" in err and "fail" in err


def test_command_error_is_one_line_with_its_exit_code(capsys) -> None:
    code, _, err = _run(group, ["fail", "fly"], capsys)
    assert code == 42
    assert err == "prog: error: cannot fly\n"


def test_unexpected_error_is_one_line_without_debug(capsys) -> None:
    code, _, err = _run(group, ["crash"], capsys)
    assert code == 1
    assert err.strip().count("\n") == 0 and "boom" in err and "Traceback" not in err


def test_unexpected_error_raises_with_debug(capsys) -> None:
    with pytest.raises(RuntimeError):
        run_cli(group, "prog", ["--debug", "crash"])


def test_missing_argument_is_usage_error(capsys) -> None:
    code, _, err = _run(group, ["fail"], capsys)
    assert code == EXIT_USAGE
    assert "Missing argument" in err and err.strip().count("\n") == 0


def test_help_lists_lazy_command_without_importing_it(capsys) -> None:
    code, out, _ = _run(group, ["--help"], capsys)
    assert code == 0
    assert "later" in out and "Imported when run." in out
    assert "tests_vctl_lazy_target" not in sys.modules


@pytest.mark.parametrize("program", ["vctl", "vcfg"])
def test_help_imports_no_gevent_or_zmq(program: str) -> None:
    code = (
        f"import sys; from volttron.client.commands.{program} import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('gevent', 'zmq', 'pika') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
