"""The platform's packages as pip sees them: what is protected, the constraints, reading pip's conflicts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from volttron.server.aip.environment import (
    EnvironmentSnapshot,
    InstalledDistribution,
    PipOptions,
    PipResult,
    PythonEnvironment,
    _conflict_causes,
    dependency_closure,
    requirement_name,
)
from volttron.server.aip.errors import AgentInstallError, DependencyConflictError

PIP_CONFLICT_OUTPUT = """\
Processing /tmp/x/volttron_testagent_conflict-0.1.0-py3-none-any.whl
ERROR: Cannot install volttron-testagent-conflict==0.1.0 because these package versions have conflicts.

The conflict is caused by:
    volttron-testagent-conflict 0.1.0 depends on pyzmq<20
    The user requested (constraint) pyzmq==27.3.0

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    pyzmq

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""


def dist(name: str, version: str = "1.0", requires: tuple[str, ...] = (), editable: bool = False):
    return InstalledDistribution(
        name=name, display_name=name, version=version, requires=requires, editable=editable
    )


class TestNames:
    @pytest.mark.parametrize(
        "requirement,name",
        [
            ("pyzmq<20", "pyzmq"),
            ("Zope.Interface>=5 ; python_version>'3'", "zope-interface"),
            ("gevent", "gevent"),
            ("my_pkg[extra]==1.0", "my-pkg"),
            ("", None),
            ("<1", None),
        ],
    )
    def test_requirement_name(self, requirement: str, name: str | None) -> None:
        assert requirement_name(requirement) == name


class TestClosure:
    def test_follows_installed_requirements_but_not_extras(self) -> None:
        installed = {
            "gevent": dist("gevent", requires=("greenlet>=3", "zope-event", "pytest ; extra == 'test'")),
            "greenlet": dist("greenlet"),
            "zope-event": dist("zope-event", requires=("setuptools",)),
            "pytest": dist("pytest"),
            "requests": dist("requests"),
        }
        assert dependency_closure(["gevent", "not-installed"], installed) == {
            "gevent",
            "greenlet",
            "zope-event",
        }

    def test_cycles_end(self) -> None:
        installed = {"a": dist("a", requires=("b",)), "b": dist("b", requires=("a",))}
        assert dependency_closure(["a"], installed) == {"a", "b"}


class TestConstraints:
    def test_pins_protected_except_excluded(self) -> None:
        snapshot = EnvironmentSnapshot(
            installed={},
            protected={"pyzmq": dist("pyzmq", "27.3.0"),
                       "volttron-listener-agent": dist("volttron-listener-agent")},
        )
        text = PythonEnvironment.constraints_text(snapshot, exclude=["volttron_listener_agent"])
        assert text == "pyzmq==27.3.0\n"

    def test_pip_options(self) -> None:
        options = PipOptions(index_url="file:///i", extra_index_urls=("file:///e",), find_links=("/w",))
        assert options.arguments() == [
            "--index-url",
            "file:///i",
            "--extra-index-url",
            "file:///e",
            "--find-links",
            "/w",
        ]
        assert PipOptions().arguments() == []


class TestConflicts:
    def test_causes_are_read(self) -> None:
        assert _conflict_causes(PIP_CONFLICT_OUTPUT) == [
            "volttron-testagent-conflict 0.1.0 depends on pyzmq<20",
            "The user requested (constraint) pyzmq==27.3.0",
        ]

    def test_resolution_failure_naming_a_pin_is_a_conflict(self, tmp_path: Path) -> None:
        constraints = tmp_path / "c.txt"
        constraints.write_text("pyzmq==27.3.0\ngevent==26.9.0\n")
        result = PipResult(("pip",), 1, PIP_CONFLICT_OUTPUT)
        error = PythonEnvironment()._resolution_error(
            "volttron-testagent-conflict 0.1.0", result, constraints
        )
        assert isinstance(error, DependencyConflictError)
        assert error.conflicts == ["pyzmq"] and error.step == "check"
        message = str(error)
        assert "pyzmq 27.3.0" in message and "depends on pyzmq<20" in message
        assert message.startswith("refusing to install volttron-testagent-conflict 0.1.0")

    def test_other_failures_are_plain_install_errors(self, tmp_path: Path) -> None:
        constraints = tmp_path / "c.txt"
        constraints.write_text("pyzmq==27.3.0\n")
        result = PipResult(("pip",), 1, "ERROR: No matching distribution found for nothing-here\n")
        error = PythonEnvironment()._resolution_error("nothing-here", result, constraints)
        assert type(error) is AgentInstallError and error.step == "resolve"
        assert "No matching distribution found for nothing-here" in str(error)

    def test_tail_drops_pip_noise(self) -> None:
        output = (
            "WARNING: Location 'file:///x' is ignored: it is neither a file nor a directory.\nreal line\n"
        )
        assert PipResult(("pip",), 1, output).tail() == "real line"


class TestRealEnvironment:
    def test_snapshot_protects_the_platform(self) -> None:
        snapshot = PythonEnvironment(sys.executable).snapshot()
        for name in (
            "volttron-utils",
            "volttron-client",
            "volttron-server",
            "gevent",
            "greenlet",
            "pyzmq",
            "pika",
            "pyyaml",
            "cryptography",
        ):
            assert name in snapshot.core, name
            assert name in snapshot.protected, name
        assert "pytest" not in snapshot.protected
        assert snapshot.installed["volttron-utils"].editable in (True, False)

    def test_pip_timeout_is_reported(self) -> None:
        result = PythonEnvironment(sys.executable).run_pip(["--version"], timeout=0.0001)
        assert result.returncode == -1 and "did not finish" in result.output
