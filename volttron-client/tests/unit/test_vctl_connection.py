"""vctl's connection helper without a platform: which address is local, and how RPC failures map to
one line and the documented exit codes (20 remote, 75 timeout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from volttron.client.commands.cli import EXIT_ERROR, EXIT_REMOTE, EXIT_TIMEOUT
from volttron.client.commands.connection import ConnectionSettings, running_pid, translate_error
from volttron.client.vip.agent.errors import ResultTimeout, Unreachable, VIPError
from volttron.utils.home import local_vip_address
from volttron.utils.jsonrpc import METHOD_NOT_FOUND, UNAUTHORIZED, MethodNotFound, Unauthorized, remote_error


def test_local_is_no_address_or_the_homes_own_ipc_address(tmp_path: Path) -> None:
    assert ConnectionSettings(home=tmp_path).is_local
    assert ConnectionSettings(home=tmp_path, address=local_vip_address(tmp_path)).is_local
    assert ConnectionSettings(home=tmp_path, address=local_vip_address(tmp_path) + "?serverkey=x").is_local
    remote = ConnectionSettings(home=tmp_path, address="tcp://10.0.0.5:22916?serverkey=abc")
    assert not remote.is_local and remote.target == "tcp://10.0.0.5:22916"


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (ResultTimeout(3, "late"), EXIT_TIMEOUT, "no answer from platform.control to status within 3 s"),
        (
            Unauthorized(UNAUTHORIZED, "unauthorized", {"detail": "user 'x' lacks capabilities"}),
            EXIT_REMOTE,
            "status refused by platform.control: user 'x' lacks capabilities",
        ),
        (MethodNotFound(METHOD_NOT_FOUND, "unimplemented method"), EXIT_REMOTE, "does not offer status"),
        (
            remote_error(
                "unhandled exception", {"exc_type": "x.AgentNotFoundError"}, "no installed agent\n 'x'"
            ),
            EXIT_REMOTE,
            "no installed agent 'x'",
        ),
        (Unreachable(113, "No route to host", "platform.control"), EXIT_REMOTE, "is not connected"),
        (VIPError(93, "Protocol not supported"), EXIT_REMOTE, "status on platform.control failed"),
        (ValueError("odd"), EXIT_ERROR, "odd"),
    ],
)
def test_rpc_errors_become_one_line_with_their_exit_code(error, code: int, text: str) -> None:
    command_error = translate_error(error, "status", "platform.control", 3)
    assert command_error.exit_code == code
    assert text in command_error.format_message() and "\n" not in command_error.format_message()


def test_running_pid_needs_a_live_process(tmp_path: Path) -> None:
    import os

    assert running_pid(tmp_path) is None
    (tmp_path / "VOLTTRON_PID").write_text("not a number")
    assert running_pid(tmp_path) is None
    (tmp_path / "VOLTTRON_PID").write_text(f"{os.getpid()}\n")
    assert running_pid(tmp_path) == os.getpid()
