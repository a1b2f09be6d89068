"""What an agent is started with, where its output goes, and the auth entry that lets it connect."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.agent_output import AgentOutputRelay
from volttron.server.aip.auth_entries import AuthFileHooks, agent_auth_entry
from volttron.server.aip.errors import AgentProcessError, AIPError
from volttron.server.aip.launcher import (
    LaunchSettings,
    agent_environment,
    build_launch_spec,
    find_entry_point,
    launcher_code,
)


@pytest.fixture
def agent(tmp_path: Path) -> AgentDirectory:
    return AgentDirectory.populate(
        tmp_path / "home" / "agents" / "demo.agent", name="pip", version="1", config="{}", tag="lab"
    )


class TestLauncher:
    def test_code_of_a_function(self) -> None:
        assert launcher_code("pkg.agent:main") == "import sys; from pkg.agent import main; sys.exit(main())"
        assert launcher_code("pkg.agent:Cls.run [extra]") == (
            "import sys; from pkg.agent import Cls; sys.exit(Cls.run())"
        )
        assert "runpy.run_module('pkg.agent'" in launcher_code("pkg.agent")

    @pytest.mark.parametrize("value", ["pkg;import os:main", "pkg:main()", ":main", "1pkg:main"])
    def test_unusable_entry_points(self, value: str) -> None:
        with pytest.raises(AgentProcessError, match="unusable entry point"):
            launcher_code(value)

    def test_code_runs_and_passes_the_return_value_as_exit_code(self) -> None:
        import subprocess

        code = launcher_code("json:dumps")  # dumps() without arguments raises: exit 1
        assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 1

    def test_entry_point_of_an_installed_distribution(self) -> None:
        group, name, value = find_entry_point("pip")
        assert group == "console_scripts" and value.startswith("pip.")

    def test_entry_point_of_a_missing_distribution(self) -> None:
        with pytest.raises(AgentProcessError, match="not installed"):
            find_entry_point("volttron-testagent-not-installed")

    def test_entry_point_missing(self) -> None:
        with pytest.raises(AgentProcessError, match="no agent entry point"):
            find_entry_point("pyyaml")

    def test_environment(self, agent: AgentDirectory, tmp_path: Path) -> None:
        base = {"PATH": "/bin", "AGENT_UUID": "inherited", "AGENT_CONFIG": "/elsewhere", "KEEP": "1"}
        settings = LaunchSettings(
            volttron_home=tmp_path / "home",
            message_bus="zmq",
            vip_address="tcp://127.0.0.1:22916",
            serverkey="S" * 43,
            base_env=base,
        )
        before = dict(os.environ)
        env = agent_environment(agent, settings)
        assert dict(os.environ) == before
        keys = agent.keys()
        assert env["PATH"] == "/bin" and env["KEEP"] == "1"
        assert env["AGENT_UUID"] == agent.uuid
        assert env["AGENT_VIP_IDENTITY"] == "demo.agent"
        assert env["AGENT_CONFIG"] == str(agent.path / "config")
        assert env["AGENT_DATA_DIR"] == str(agent.data_dir)
        assert env["AGENT_TAG"] == "lab"
        assert env["AGENT_PUBLICKEY"] == keys.public and env["AGENT_SECRETKEY"] == keys.secret
        assert env["VOLTTRON_SERVERKEY"] == "S" * 43
        assert env["VOLTTRON_VIP_ADDR"] == "tcp://127.0.0.1:22916"
        assert env["VOLTTRON_HOME"] == str(tmp_path / "home")
        assert env["_LAUNCHED_BY_PLATFORM"] == "1" and env["MESSAGEBUS"] == "zmq"
        assert base["AGENT_UUID"] == "inherited"  # the input mapping is not changed

    def test_inherited_agent_variables_are_dropped_when_unset(self, tmp_path: Path) -> None:
        plain = AgentDirectory.populate(tmp_path / "agents" / "plain", name="pip", version="1")
        base = {"AGENT_CONFIG": "/x", "AGENT_TAG": "t", "VOLTTRON_SERVERKEY": "k", "VOLTTRON_VIP_ADDR": "a"}
        env = agent_environment(plain, LaunchSettings(volttron_home=tmp_path, base_env=base))
        assert not {"AGENT_CONFIG", "AGENT_TAG", "VOLTTRON_SERVERKEY", "VOLTTRON_VIP_ADDR"} & set(env)

    def test_launch_spec(self, agent: AgentDirectory, tmp_path: Path) -> None:
        spec = build_launch_spec(agent, LaunchSettings(volttron_home=tmp_path / "home"))
        assert spec.cwd == agent.path and spec.identity == "demo.agent"
        assert spec.argv[0] == sys.executable and spec.argv[1] == "-c"
        assert spec.argv[2].startswith("import sys; from pip.")


class TestOutputRelay:
    def test_json_record_is_reemitted_with_attribution(self, caplog: pytest.LogCaptureFixture) -> None:
        relay = AgentOutputRelay("demo.agent")
        line = json.dumps(
            {"name": "demo.core", "levelno": 30, "levelname": "WARNING", "msg": "careful", "lineno": 9}
        )
        with caplog.at_level(logging.DEBUG, logger="agents"):
            relay.stderr_line(line.encode() + b"\n")
        (record,) = caplog.records
        assert record.name == "agents.demo.agent.demo.core"
        assert record.getMessage() == "careful" and record.levelno == logging.WARNING
        assert record.agent_identity == "demo.agent" and record.remote_name == "demo.core"
        assert record.processName == "demo.agent"
        assert relay.last_error is None

    def test_json_error_becomes_the_last_error(self, caplog: pytest.LogCaptureFixture) -> None:
        relay = AgentOutputRelay("a")
        record = {"name": "x", "levelno": 40, "msg": "it broke", "exc_text": "Traceback\nValueError: bad"}
        with caplog.at_level(logging.DEBUG, logger="agents"):
            relay.stderr_line(json.dumps(record))
        assert relay.last_error == "it broke: ValueError: bad"

    def test_records_below_the_level_are_not_emitted(self, caplog: pytest.LogCaptureFixture) -> None:
        relay = AgentOutputRelay("quiet")
        with caplog.at_level(logging.WARNING, logger="agents"):
            relay.stderr_line(json.dumps({"name": "x", "levelno": 10, "msg": "debug detail"}))
        assert not caplog.records

    def test_plain_stderr_is_a_warning_and_the_last_error(self, caplog: pytest.LogCaptureFixture) -> None:
        relay = AgentOutputRelay("a")
        relay.pid = 4242
        with caplog.at_level(logging.DEBUG, logger="agents"):
            relay.stderr_line(b"RuntimeError: boom\n")
            relay.stderr_line(b"<6>just information\n")
            relay.stderr_line(b"   \n")
        assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
            ("agents.a", logging.WARNING, "RuntimeError: boom"),
            ("agents.a", logging.INFO, "just information"),
        ]
        assert relay.last_error == "RuntimeError: boom"
        assert {(r.processName, r.process, r.remote_name) for r in caplog.records} == {("a", 4242, "a")}

    def test_stdout_is_info_under_agents_stdout(self, caplog: pytest.LogCaptureFixture) -> None:
        relay = AgentOutputRelay("a")
        with caplog.at_level(logging.DEBUG, logger="agents"):
            relay.stdout_line(b"hello\xff\n")
        (record,) = caplog.records
        assert record.name == "agents.stdout" and record.levelno == logging.INFO
        assert record.getMessage() == "hello\ufffd" and record.agent_identity == "a"

    def test_pump_reads_to_the_end_and_closes(self, tmp_path: Path) -> None:
        path = tmp_path / "out"
        path.write_bytes(b"one\ntwo\n" + b"x" * 70000 + b"\n")
        lines: list[bytes] = []
        with open(path, "rb") as stream:
            AgentOutputRelay("a").pump(stream, lines.append)
            assert stream.closed
        assert lines[:2] == [b"one\n", b"two\n"] and sum(len(x) for x in lines) == path.stat().st_size


class TestAuthFileHooks:
    def test_add_and_remove(self, tmp_path: Path) -> None:
        hooks = AuthFileHooks(tmp_path)
        hooks.on_agent_installed("demo.agent", "K" * 43)
        hooks.on_agent_installed("other", "O" * 43)
        data = json.loads((tmp_path / "auth.json").read_text())
        assert stat.S_IMODE(os.stat(tmp_path / "auth.json").st_mode) == 0o600
        assert data["allow"] == [
            agent_auth_entry("demo.agent", "K" * 43),
            agent_auth_entry("other", "O" * 43),
        ]
        entry = data["allow"][0]
        assert entry["credentials"] == "K" * 43 and entry["user_id"] == entry["identity"] == "demo.agent"
        assert entry["capabilities"] == {"edit_config_store": {"identity": "demo.agent"}}
        assert data["version"] == {"major": 1, "minor": 4} and data["deny"] == []
        hooks.on_agent_installed("demo.agent", "N" * 43)  # a reinstall replaces, never duplicates
        assert [e["credentials"] for e in hooks.entries_for("demo.agent")] == ["N" * 43]
        hooks.on_agent_removed("demo.agent")
        assert hooks.entries_for("demo.agent") == [] and len(hooks.entries_for("other")) == 1

    def test_existing_entries_and_comments_are_kept(self, tmp_path: Path) -> None:
        (tmp_path / "auth.json").write_text(
            '# written by hand\n{"allow": [{"user_id": "admin", "credentials": "A"}],\n'
            ' "groups": {"g": ["r"]}}\n'
        )
        AuthFileHooks(tmp_path).on_agent_installed("x", "K" * 43)
        data = json.loads((tmp_path / "auth.json").read_text())
        assert data["allow"][0] == {"user_id": "admin", "credentials": "A"} and data["groups"] == {"g": ["r"]}

    def test_removing_without_a_file_creates_nothing(self, tmp_path: Path) -> None:
        AuthFileHooks(tmp_path).on_agent_removed("x")
        assert not (tmp_path / "auth.json").exists()

    def test_corrupt_file_is_reported_and_left_alone(self, tmp_path: Path) -> None:
        (tmp_path / "auth.json").write_text("{not json")
        with pytest.raises(AIPError, match="not valid JSON"):
            AuthFileHooks(tmp_path).on_agent_installed("x", "K" * 43)
        assert (tmp_path / "auth.json").read_text() == "{not json"
