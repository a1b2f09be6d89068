"""The `volttron` command: home set-up, single instance, options, clean stops and start-up failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time

import pytest

pytestmark = pytest.mark.integration


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def failed_start(platform, timeout: float = 20.0) -> tuple[int, str]:
    """Launch a platform expected to fail; its exit code and stderr."""
    platform.expect_clean_exit = False
    platform.launch()
    code = platform.wait(timeout)
    return code, platform.stderr_path.read_text()


def test_first_start_creates_home_keys_auth_and_known_hosts(running_platform) -> None:
    home = running_platform.home
    assert mode(home) == 0o700 and mode(home / "run") == 0o700
    assert mode(home / "keystore") == 0o600 and mode(home / "auth.json") == 0o600
    assert int((home / "VOLTTRON_PID").read_text()) == running_platform.process.pid
    serverkey = running_platform.serverkey
    known = json.loads((home / "known_hosts").read_text())
    assert known == {"@": serverkey, f"127.0.0.1:{running_platform.port}": serverkey}
    control = json.loads((home / "keystores/control.connection/keystore.json").read_text())
    auth = json.loads((home / "auth.json").read_text())
    by_user = {e["user_id"]: e for e in auth["allow"]}
    for identity in ("platform", "platform.control", "platform.config_store", "platform.auth",
                     "platform.health", "platform.web"):
        assert by_user[identity]["credentials"] == serverkey and by_user[identity]["identity"] == identity
    assert by_user["control.connection"]["credentials"] == control["public"]
    assert "allow_auth_modifications" in by_user["control.connection"]["capabilities"]
    assert by_user["platform.config_store"]["capabilities"] == {"sync_agent_config": None}


def test_control_connection_keys_can_connect(running_platform, vip_client_factory) -> None:
    control = json.loads((running_platform.home / "keystores/control.connection/keystore.json").read_text())
    from volttron.utils.keys import KeyPair

    vctl = vip_client_factory(running_platform.vip_address, "control.connection",
                              serverkey=running_platform.serverkey, keys=KeyPair(**control))
    assert vctl.hello().args[3] == b"control.connection"


def test_restart_keeps_keys_and_admin_entries(platform_factory) -> None:
    first = platform_factory().start()
    key = first.serverkey
    first.add_allow_entry("kept")
    assert first.stop() == 0
    second = platform_factory().start()
    assert second.serverkey == key
    assert second.client("kept2").hello()
    assert any(e["user_id"] == "kept" for e in json.loads(second.auth_file.read_text())["allow"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(running_platform, sig) -> None:
    running_platform.client("alice").hello()
    running_platform.signal(sig)
    assert running_platform.wait() == 0
    assert not running_platform.pid_file.exists()
    log = running_platform.log_text()
    assert "platform stopped" in log
    assert "failed to stop" not in log and "did not stop" not in log and "Traceback" not in log, log[-2000:]


def test_quit_from_control_stops_the_platform_and_others_are_ignored(running_platform) -> None:
    alice = running_platform.client("alice")
    alice.send("", "quit")
    assert alice.request("", "ping", "ping").args == [b"pong"] and running_platform.running()
    # platform.control itself is the in-process service; "control" (the 9.x name) may quit too, and
    # only a key whose auth entry names it can take that identity
    control = running_platform.client("control")
    control.send("", "quit")
    assert running_platform.wait() == 0
    assert not running_platform.pid_file.exists()


def test_second_platform_on_same_home_refuses(platform_factory) -> None:
    first = platform_factory().start()
    second = platform_factory()  # same tmp root and name: the same VOLTTRON_HOME
    code, stderr = failed_start(second)
    assert code != 0
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert "already running" in stderr and str(first.process.pid) in stderr
    assert first.running() and int(first.pid_file.read_text()) == first.process.pid


def test_stale_pid_file_is_replaced(platform_factory) -> None:
    platform = platform_factory()
    platform.home.mkdir(mode=0o700, parents=True)
    platform.pid_file.write_text("999999\n")  # no such process
    platform.start()
    assert int(platform.pid_file.read_text()) == platform.process.pid


@pytest.mark.parametrize("args,code,text", [
    (["--message-bus", "rmq"], 1, "RabbitMQ message bus is not set up"),
    (["--no-such-option"], 2, "No such option '--no-such-option'"),
    (["--vip-address", "localhost:22916"], 2, "not a tcp:// or ipc:// address"),
])
def test_start_up_errors_are_one_line(platform_factory, args, code, text) -> None:
    platform = platform_factory(args)
    got, stderr = failed_start(platform)
    assert got == code
    assert stderr.startswith("volttron: error:") and text in stderr
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert not platform.pid_file.exists()


def test_unusable_home(platform_factory, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    platform = platform_factory(env={"VOLTTRON_HOME": str(blocker / "home")})
    code, stderr = failed_start(platform)
    assert code == 1 and "Not a directory" in stderr and str(blocker) in stderr
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr


def test_home_that_cannot_be_created(platform_factory) -> None:
    platform = platform_factory(env={"VOLTTRON_HOME": "/proc/volttron-test-home"})
    code, stderr = failed_start(platform)
    assert code == 1 and "cannot create VOLTTRON_HOME /proc/volttron-test-home" in stderr


def test_address_in_use(platform_factory) -> None:
    platform = platform_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", platform.port))
        taken.listen()
        code, stderr = failed_start(platform)
    assert code == 1
    assert f"cannot bind tcp://127.0.0.1:{platform.port}: Address already in use" in stderr
    assert stderr.strip().count("\n") == 0
    assert not platform.pid_file.exists()


def test_debug_shows_traceback(platform_factory) -> None:
    platform = platform_factory(["--debug"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", platform.port))
        taken.listen()
        code, stderr = failed_start(platform)
    assert code == 1 and "Traceback" in stderr + platform.log_text()


def test_corrupt_auth_file_refuses_start_and_is_kept(platform_factory) -> None:
    platform = platform_factory()
    platform.home.mkdir(mode=0o700, parents=True)
    platform.auth_file.write_text('{"allow": [ {"credentials": ')
    code, stderr = failed_start(platform)
    assert code == 1 and "auth.json" in stderr and "kept as" in stderr
    kept = list(platform.home.glob("auth.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"allow": [ {"credentials": '
    assert not platform.auth_file.exists() and not platform.pid_file.exists()


def test_auth_disabled_allows_null_clients_and_warns(platform_factory) -> None:
    platform = platform_factory(["--auth-disabled"]).start()
    client = platform.client("anyone", address=platform.vip_address)
    assert client.hello().args[3] == b"anyone"
    assert client.request("", "query", "serverkey").args == [b"", b""]
    assert "AUTHENTICATION IS DISABLED" in platform.log_text()
    assert not (platform.home / "auth.json").exists()


def test_config_file_and_command_line(platform_factory) -> None:
    platform = platform_factory(["--instance-name", "from-cli"])
    platform.home.mkdir(mode=0o700, parents=True)
    (platform.home / "config").write_text(
        "[volttron]\ninstance-name = from-file\nagent-monitor-frequency = 42\n")
    platform.start()
    alice = platform.client("alice")
    assert alice.request("", "query", "instance-name").args[1] == b"from-cli"
    assert alice.request("", "query", "agent-monitor-frequency").args[1] == b"42"


def test_msgdebug_logs_routed_frames(platform_factory, wait_for) -> None:
    platform = platform_factory(["--msgdebug"]).start()
    platform.client("alice").request("", "ping", "ping", "marker-7f3a")
    wait_for(lambda: "marker-7f3a" in platform.log_text(), 5, "the routed frames in the log")


def test_quiet_log_has_no_info(platform_factory) -> None:
    platform = platform_factory(["-q", "-q", "-q"])  # -vv from the fixture, then three -q: ERROR
    platform.start()
    platform.client("alice").hello()
    assert platform.stop() == 0
    assert "ready" not in platform.log_text()


def test_stop_is_prompt(running_platform) -> None:
    for i in range(20):
        running_platform.client(f"c{i}").hello()
    start = time.monotonic()
    assert running_platform.stop() == 0
    assert time.monotonic() - start < 5
