"""``vctl create-agent``: names, answers, the renderer, and the copier template kept identical."""

from __future__ import annotations

import filecmp
import json
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (scripts/requirements-dev.txt)
    import tomli as tomllib

import pytest
from click.testing import CliRunner
from trove_classifiers import classifiers as trove_classifiers

from volttron.client.commands import create_agent as ca
from volttron.client.commands.create_agent import (
    CreateAgentError,
    agent_project,
    client_requirement,
    render_project,
    render_text,
    template_root,
)
from volttron.client.commands.vctl import vctl

ROOT = Path(__file__).resolve().parents[3]
COPIER_TEMPLATE = ROOT / "templates" / "copier-agent"


def test_names_are_derived_from_the_project_name() -> None:
    project = agent_project("volttron-Chiller_watch", author="Jo", client_version="0.1.0")
    assert project.python_package_distribution_name == "volttron-chiller-watch"
    assert project.python_package_import_name == "volttron_chiller_watch"
    assert project.python_package_command_line_name == "volttron-chiller-watch"
    assert project.agent_class_name == "VolttronChillerWatchAgent"
    assert agent_project("my-agent", client_version="0.1.0").agent_class_name == "MyAgent"
    assert agent_project("weather.v2Agent", client_version="0.1.0").agent_class_name == "WeatherV2agent"


@pytest.mark.parametrize(
    "version,expected",
    [("0.1.0", ">=0.1,<0.2"), ("0.7.3rc1", ">=0.7,<0.8"), ("1.2.0", ">=1.2,<2"), ("2.0", ">=2.0,<3")],
)
def test_client_requirement_is_the_compatible_range(version: str, expected: str) -> None:
    assert client_requirement(version) == expected


def test_the_default_requirement_follows_the_installed_client() -> None:
    from volttron.client import __version__

    assert agent_project("x-agent").volttron_client_requirement == client_requirement(__version__)


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        ("9lives", {}, "invalid agent name"),
        ("my agent", {}, "invalid agent name"),
        ("agent-", {}, "invalid agent name"),
        ("", {}, "invalid agent name"),
        ("volttron", {}, "clash"),
        ("class", {}, "invalid package name"),
        ("ok-agent", {"import_name": "Bad-Name"}, "invalid package name"),
        ("ok-agent", {"class_name": "not a class"}, "invalid class name"),
        ("ok-agent", {"description": 'say "hi"'}, "invalid description"),
        ("ok-agent", {"description": "two\nlines"}, "invalid description"),
        ("ok-agent", {"description": "  "}, "invalid description"),
        ("ok-agent", {"author": "a{b}"}, "invalid author"),
        ("ok-agent", {"author_email": "not-an-email"}, "invalid author email"),
        ("ok-agent", {"license": 'MIT"'}, "invalid license"),
    ],
)
def test_bad_answers_are_refused_with_the_reason(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(CreateAgentError, match=message):
        agent_project(name, client_version="0.1.0", **kwargs)


def test_authors_entry_has_an_email_only_when_given() -> None:
    with_email = agent_project(
        "a-agent", author="Jo Doe", author_email="jo@example.com", client_version="0.1.0"
    )
    assert tomllib.loads(f"a = [{with_email.project_authors_toml}]")["a"] == [
        {"name": "Jo Doe", "email": "jo@example.com"}
    ]
    without = agent_project("a-agent", author="Jo Doe", client_version="0.1.0")
    assert tomllib.loads(f"a = [{without.project_authors_toml}]")["a"] == [{"name": "Jo Doe"}]


def test_render_text_substitutes_and_refuses_other_syntax() -> None:
    answers = {"name": "x"}
    assert render_text("a {{ name }} {{name}} { not } {*x}", answers) == "a x x { not } {*x}"
    with pytest.raises(CreateAgentError, match="unknown template variable 'other'"):
        render_text("{{ other }}", answers, "f")
    with pytest.raises(CreateAgentError, match="not supported"):
        render_text("{% if name %}x{% endif %}", answers, "f")
    with pytest.raises(CreateAgentError, match="not supported"):
        render_text("{# comment #}", answers, "f")
    with pytest.raises(CreateAgentError, match="malformed"):
        render_text("{{ name | upper }}", answers, "f")


def test_rendered_project_layout_and_metadata(tmp_path: Path) -> None:
    project = agent_project(
        "volttron-chiller-watch", description="Watches the chillers.", author="Jo Doe", client_version="0.1.0"
    )
    files = render_project(project, tmp_path / "p")
    names = sorted(str(f.relative_to(tmp_path / "p")) for f in files)
    assert names == [
        ".gitignore",
        "CHANGELOG.md",
        "README.md",
        "config",
        "pyproject.toml",
        "src/volttron_chiller_watch/__init__.py",
        "src/volttron_chiller_watch/agent.py",
        "tests/test_agent.py",
        "tests/test_agent_integration.py",
    ]
    meta = tomllib.loads((tmp_path / "p" / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "volttron-chiller-watch"
    assert meta["project"]["version"] == "0.1.0"
    assert meta["project"]["dependencies"] == ["volttron-client>=0.1,<0.2"]
    assert set(meta["project"]["classifiers"]) <= set(trove_classifiers)  # PyPI refuses any other
    assert meta["project"]["keywords"] == ["volttron", "agent"]
    assert meta["project"]["scripts"] == {"volttron-chiller-watch": "volttron_chiller_watch.agent:main"}
    assert meta["build-system"]["build-backend"] == "poetry.core.masonry.api"
    assert meta["tool"]["poetry"]["packages"] == [{"include": "volttron_chiller_watch", "from": "src"}]
    agent = (tmp_path / "p" / "src/volttron_chiller_watch/agent.py").read_text()
    for needle in (
        "set_default(",
        "vip.config.subscribe(",
        "@RPC.export",
        "pubsub.subscribe(",
        '@Core.receiver("onstart")',
        '@Core.receiver("onstop")',
        "class VolttronChillerWatchAgent(Agent)",
    ):
        assert needle in agent
    assert "{{" not in agent and "agent_harness" in (tmp_path / "p/tests/test_agent.py").read_text()
    compile(agent, "agent.py", "exec")
    from volttron.utils.config import load_config

    assert load_config(tmp_path / "p" / "config") == {"setting1": 2, "setting2": "devices"}


def test_destination_must_be_absent_or_empty(tmp_path: Path) -> None:
    project = agent_project("a-agent", client_version="0.1.0")
    (tmp_path / "empty").mkdir()
    assert render_project(project, tmp_path / "empty")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(CreateAgentError, match="not an empty folder"):
        render_project(project, tmp_path / "used")
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(CreateAgentError, match="not an empty folder"):
        render_project(project, tmp_path / "file")


def test_a_failing_render_leaves_nothing_behind(tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "a").mkdir(parents=True)
    (template / "a" / "good.txt.jinja").write_text("{{ project_name }}")
    (template / "z.txt.jinja").write_text("{{ nope }}")
    project = agent_project("a-agent", client_version="0.1.0")
    with pytest.raises(CreateAgentError, match="nope"):
        render_project(project, tmp_path / "out", template)
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(CreateAgentError):
        render_project(project, tmp_path / "kept", template)
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())
    with pytest.raises(CreateAgentError, match="holds no files"):
        render_project(project, tmp_path / "o2", tmp_path / "nothing-here")


def test_the_copier_template_holds_the_same_files() -> None:
    client = template_root()
    copier = COPIER_TEMPLATE / "template"
    assert copier.is_dir(), copier

    def files(root: Path) -> set[str]:
        return {
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        }

    extra = {"{{_copier_conf.answers_file}}.jinja"}
    assert files(copier) == files(client) | extra, "templates/copier-agent/template is out of step"
    _, mismatch, errors = filecmp.cmpfiles(client, copier, sorted(files(client)), shallow=False)
    assert not mismatch and not errors, f"copy these to templates/copier-agent/template: {mismatch + errors}"


def test_the_copier_questions_are_the_template_variables() -> None:
    import yaml

    questions = {
        k for k in yaml.safe_load((COPIER_TEMPLATE / "copier.yml").read_text()) if not k.startswith("_")
    }
    project = agent_project("a-agent", client_version="0.1.0")
    assert questions == set(project.answers())
    config = yaml.safe_load((COPIER_TEMPLATE / "copier.yml").read_text())
    from volttron.client import __version__

    assert config["volttron_client_requirement"]["default"] == client_requirement(__version__)


def test_every_template_variable_is_an_answer() -> None:
    import re

    used = set()
    for path in template_root().rglob("*"):
        if path.is_file():
            used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", str(path.relative_to(template_root()))))
            if path.name.endswith(".jinja"):
                used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", path.read_text()))
    answers = set(agent_project("a-agent", client_version="0.1.0").answers())
    # the author's name and email reach pyproject.toml through project_authors_toml
    assert answers - used == {"project_name", "author_fullname", "author_email"} and used <= answers


def test_vctl_create_agent_needs_no_platform(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "no-platform-home"
    result = runner.invoke(
        vctl,
        [
            "create-agent",
            "demo-agent",
            "--dir",
            str(tmp_path / "demo"),
            "--author",
            "Jo",
            "--author-email",
            "",
        ],
        env={"VOLTTRON_HOME": str(home)},
    )
    assert result.exit_code == 0, result.output
    assert "created demo-agent" in result.output and (tmp_path / "demo" / "pyproject.toml").is_file()
    assert not home.exists()
    json_run = runner.invoke(
        vctl, ["--json", "create-agent", "other-agent", "--dir", str(tmp_path / "o"), "--author", "Jo"]
    )
    assert json_run.exit_code == 0, json_run.output
    assert json.loads(json_run.output)["agent_class_name"] == "OtherAgent"


def test_vctl_create_agent_reports_one_line_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        from volttron.client.commands.vctl import main

        main(["create-agent", "bad name", "--dir", str(tmp_path / "x")])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "vctl: error: invalid agent name 'bad name': use letters, digits, '-', '_' or '.', "
        "starting with a letter (e.g. volttron-my-agent)"
    ]


def test_author_defaults_come_from_git(monkeypatch, tmp_path: Path) -> None:
    seen = []

    def fake_git(key: str) -> str | None:
        seen.append(key)
        return {"user.name": "Git User", "user.email": "git@example.com"}.get(key)

    monkeypatch.setattr(ca, "_git_config", fake_git)
    result = CliRunner().invoke(vctl, ["--json", "create-agent", "g-agent", "--dir", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    answers = json.loads(result.output)
    assert (answers["author_fullname"], answers["author_email"]) == ("Git User", "git@example.com")
    assert seen == ["user.name", "user.email"]
