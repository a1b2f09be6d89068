"""Agents' own environments: the platform option, the agent directory's marker, pruning (issue 12)."""

from __future__ import annotations

from pathlib import Path

from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.environment import PipOptions, PythonEnvironment
from volttron.server.aip.isolation import AgentEnvironments, environment_of, mark_environment
from volttron.server.options import parse_options


def test_isolate_agents_is_a_flag_and_a_config_key(tmp_path: Path) -> None:
    env = {"VOLTTRON_HOME": str(tmp_path)}
    assert parse_options([], env=env).isolate_agents is False
    assert parse_options(["--isolate-agents"], env=env).isolate_agents is True
    (tmp_path / "config").write_text("[volttron]\nisolate-agents = true\n")
    assert parse_options([], env=env).isolate_agents is True


def test_the_agent_directory_names_its_environment(tmp_path: Path) -> None:
    directory = AgentDirectory(tmp_path / "agent")
    directory.path.mkdir()
    assert environment_of(directory) is None
    mark_environment(directory, "volttron-listener")
    assert environment_of(directory) == "volttron-listener"
    mark_environment(directory, None)
    assert environment_of(directory) is None


def test_environments_are_named_by_distribution_and_unused_ones_pruned(tmp_path: Path) -> None:
    environments = AgentEnvironments(tmp_path, PythonEnvironment(), PipOptions(), uv="")
    assert environments.name_for("Volttron_Listener") == "volttron-listener"
    for name in ("used", "orphan"):
        (environments.path(name) / "bin").mkdir(parents=True)
    assert environments.prune({"used"}) == ["orphan"]
    assert environments.path("used").is_dir() and not environments.path("orphan").exists()
    environments.remove("..")  # never anything outside environments/
    assert tmp_path.is_dir()
