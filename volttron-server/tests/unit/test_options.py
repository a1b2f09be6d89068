"""Options of the volttron command merged with $VOLTTRON_HOME/config (docs/protocol.md §5.2, §5.3)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from volttron.server.options import DEFAULT_MAX_MESSAGE_SIZE, OptionsError, parse_options


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "vhome"
    path.mkdir()
    return path


def parse(home: Path, *argv: str, config: str | None = None):
    if config is not None:
        (home / "config").write_text(config)
    return parse_options(list(argv), env={"VOLTTRON_HOME": str(home) + "/"})


def test_defaults(home: Path) -> None:
    options = parse(home)
    assert options.home == home
    assert options.vip_addresses == ()
    assert options.vip_local_address == f"ipc://@{home}/run/vip.socket"
    assert options.instance_name == socket.gethostname()
    assert options.message_bus == "zmq"
    assert options.auth_enabled and not options.msgdebug and not options.debug
    assert (options.verbose, options.quiet, options.log_file) == (0, 0, None)
    assert options.agent_monitor_frequency == 600
    assert options.max_message_size == DEFAULT_MAX_MESSAGE_SIZE
    assert options.notes == ()


def test_config_file_values(home: Path) -> None:
    options = parse(home, config="""[volttron]
vip-address = tcp://127.0.0.1:22916
    tcp://127.0.0.1:22917, tcp://127.0.0.1:22916
instance-name = volttron1
message-bus = zmq
allow-auth = False
msgdebug = yes
bind-web-address = https://host:8443
agent-monitor-frequency = 30
log = /tmp/x.log
web-ssl-cert = /some/cert
""")
    assert options.vip_addresses == ("tcp://127.0.0.1:22916", "tcp://127.0.0.1:22917")
    assert options.instance_name == "volttron1"
    assert not options.auth_enabled
    assert options.msgdebug
    assert options.bind_web_address == "https://host:8443"
    assert options.agent_monitor_frequency == 30
    assert options.log_file == "/tmp/x.log"
    assert options.notes == ()


def test_command_line_wins(home: Path) -> None:
    options = parse(home, "--vip-address", "tcp://127.0.0.1:1", "--vip-address", "tcp://127.0.0.1:2",
                    "--instance-name", "cli", "-vv", "-q", "-l", "-",
                    config="[volttron]\nvip-address = tcp://127.0.0.1:9\ninstance-name = file\n")
    assert options.vip_addresses == ("tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    assert options.instance_name == "cli"
    assert (options.verbose, options.quiet, options.log_file) == (2, 1, "-")


@pytest.mark.parametrize("line,enabled", [
    ("auth-disabled = true", False), ("auth-disabled = false", True), ("allow-auth = True", True),
    ("allow-auth = no", False), ("auth-enabled = off", False),
])
def test_auth_keys_in_config(home: Path, line: str, enabled: bool) -> None:
    assert parse(home, config=f"[volttron]\n{line}\n").auth_enabled is enabled


def test_auth_disabled_flag(home: Path) -> None:
    assert not parse(home, "--auth-disabled", config="[volttron]\nallow-auth = True\n").auth_enabled


def test_bare_key_value_file_and_unknown_keys(home: Path) -> None:
    options = parse(home, config="instance-name = bare\nfrobnicate = 1\n")
    assert options.instance_name == "bare"
    assert options.notes and "frobnicate" in options.notes[0]


def test_explicit_config_file(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.ini"
    other.write_text("[volttron]\ninstance-name = other\n")
    assert parse(home, "--config", str(other)).instance_name == "other"
    with pytest.raises(OptionsError, match="not found"):
        parse(home, "--config", str(tmp_path / "missing.ini"))


def test_rmq_is_parsed_here_and_refused_by_the_platform(home: Path) -> None:
    assert parse(home, "--message-bus", "rmq").message_bus == "rmq"


@pytest.mark.parametrize("argv,config,match", [
    (["--message-bus", "kafka"], None, "message-bus must be one of zmq, rmq"),
    (["--vip-address", "127.0.0.1:22916"], None, "not a tcp:// or ipc://"),
    (["--vip-address", "tcp://127.0.0.1"], None, "host and a port"),
    (["--vip-local-address", "tcp://127.0.0.1:5"], None, "not an ipc://"),
    (["--instance-name", "has space"], None, "instance-name"),
    (["--agent-monitor-frequency", "0"], None, "at least 1"),
    (["--bogus"], None, "No such option '--bogus'"),
    (["--max-message-size", "big"], None, "max-message-size must be a whole number"),
    ([], "[volttron]\nmessage-bus = amqp\n", "message-bus"),
    ([], "[volttron]\nallow-auth = maybe\n", "true or false"),
    ([], "[volttron]\nagent-monitor-frequency = soon\n", "whole number"),
    ([], "[volttron\nbroken", "invalid platform configuration"),
])
def test_bad_values_are_one_clear_error(home: Path, argv, config, match) -> None:
    with pytest.raises(OptionsError, match=match) as info:
        parse(home, *argv, config=config)
    assert "\n" not in str(info.value).strip()


def test_help_and_version_end_the_command_with_zero(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from volttron.server.main import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--vip-address" in out and "[volttron]" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("volttron ")


def test_file_values_are_defaults_the_command_line_overrides_flag_by_flag(home: Path) -> None:
    config = "[volttron]\nsecure-agent-users = yes\nmsgdebug = on\nverbose = 2\nmax-message-size = 2048\n"
    options = parse(home, "--max-message-size", "4096", config=config)
    assert options.secure_agent_users and options.msgdebug and options.verbose == 2
    assert options.max_message_size == 4096
