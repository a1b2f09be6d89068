"""The ``volttron`` pytest plugin as another project sees it: a pytest run in a fresh folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the repository's settings out
    return tmp_path


def test_plugin_import_loads_neither_gevent_nor_zmq() -> None:
    code = (
        "import sys, volttron.client.testing.plugin, volttron.client.testing as t; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'zmq', 'pika')); "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_plugin_is_registered_and_leaves_other_tests_alone(project: Path) -> None:
    (project / "test_plain.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_plain():
                assert "gevent" not in sys.modules and "zmq" not in sys.modules
            """
        )
    )
    result = run_pytest(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_agent_harness_fixture_in_another_project(project: Path) -> None:
    (project / "test_agent.py").write_text(
        textwrap.dedent(
            """
            from volttron.client.vip.agent import Agent, RPC

            class Doubler(Agent):
                @RPC.export
                def double(self, x):
                    return 2 * x

            def test_double(agent_harness):
                harness = agent_harness(Doubler).start()
                assert harness.rpc.invoke("double", 21) == 42

            def test_failure_is_reported(agent_harness):
                harness = agent_harness(Doubler).start()
                assert harness.rpc.invoke("double", 1) == 3
            """
        )
    )
    result = run_pytest(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout and "assert 2 == 3" in result.stdout


def test_message_bus_option_parametrizes_platform_tests(project: Path) -> None:
    (project / "test_buses.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_on_a_platform(volttron_platform):
                pass

            @pytest.mark.parametrize("volttron_message_bus", ["zmq"], indirect=True)
            def test_zmq_only(volttron_platform):
                pass

            def test_no_platform():
                pass
            """
        )
    )
    result = run_pytest(project, "--collect-only", "--volttron-message-bus", "all")
    assert result.returncode == 0, result.stdout + result.stderr
    for test_id in (
        "test_on_a_platform[zmq]",
        "test_on_a_platform[rmq]",
        "test_zmq_only[zmq]",
        "test_no_platform",
    ):
        assert test_id in result.stdout
    assert "test_zmq_only[rmq]" not in result.stdout
    default = run_pytest(project, "--collect-only")
    assert "test_on_a_platform[zmq]" in default.stdout and "[rmq]" not in default.stdout
    bad = run_pytest(project, "--volttron-message-bus", "mqtt")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
