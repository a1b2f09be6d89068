"""Porting monolithic agents: the mapping table, import rewriting, setup.py, the vctl command."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (scripts/requirements-dev.txt)
    import tomli as tomllib

import pytest
from click.testing import CliRunner
from trove_classifiers import classifiers as trove_classifiers

from volttron.client.commands.vctl import vctl
from volttron.client.porting import (
    MODULE_MAP,
    NAME_MAP,
    PortingError,
    map_module,
    map_name,
    port_project,
    port_source,
    read_setup,
    suggest_pyproject,
)


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.mark.parametrize("old,new", MODULE_MAP)
def test_every_moved_module_exists_here(old: str, new: str) -> None:
    importlib.import_module(new)


@pytest.mark.parametrize("key,target", sorted(NAME_MAP.items()))
def test_every_moved_name_exists_here(key: tuple[str, str], target: tuple[str, str]) -> None:
    module, name = target
    assert hasattr(importlib.import_module(module), name), f"{key} -> {target}"


def test_the_table_places_names_where_they_really_live() -> None:
    assert map_name("volttron.platform.agent.utils", "vip_main") == ("volttron.client.runner", "vip_main")
    assert map_name("volttron.platform.agent.utils", "load_config") == (
        "volttron.utils.config",
        "load_config",
    )
    assert map_name("volttron.platform.vip.agent", "Agent") == ("volttron.client.vip.agent", "Agent")
    assert map_name("volttron.platform.agent.utils", "get_platform_instance_name") is None
    assert (
        map_module("volttron.platform.vip.agent.subsystems.query")
        == "volttron.client.vip.agent.subsystems.query"
    )
    assert map_module("volttron.platformx") is None and map_module("volttron.platform.main") is None


def test_module_imports_keep_their_layout_and_comments() -> None:
    before = src(
        """
        from volttron.platform.vip.agent import (Agent,   # base class
                                                  Core, PubSub)
        from volttron.platform.messaging import headers as headers_mod
        import volttron.platform.jsonapi as jsonapi
        X = "volttron.platform.vip.agent stays in strings"  # and volttron.platform in comments
        """
    )
    result = port_source(before)
    assert result.text == src(
        """
        from volttron.client.vip.agent import (Agent,   # base class
                                                  Core, PubSub)
        from volttron.client.messaging import headers as headers_mod
        import volttron.utils.jsonapi as jsonapi
        X = "volttron.platform.vip.agent stays in strings"  # and volttron.platform in comments
        """
    )
    assert [c.line for c in result.changes] == [1, 3, 4] and result.problems == []


def test_utils_module_uses_become_direct_imports() -> None:
    result = port_source(
        src(
            """
            import logging
            from volttron.platform.agent import utils

            utils.setup_logging()

            def main():
                config = utils.load_config("cfg")
                utils.vip_main(object, version="1")
            """
        )
    )
    assert result.text == src(
        """
        import logging
        from volttron.client.runner import vip_main
        from volttron.utils.config import load_config
        from volttron.utils.logging import setup_logging

        setup_logging()

        def main():
            config = load_config("cfg")
            vip_main(object, version="1")
        """
    )
    assert {c.old for c in result.changes} >= {"utils.load_config", "utils.vip_main", "utils.setup_logging"}


def test_utils_in_a_fallback_block_and_as_an_alias() -> None:
    result = port_source(
        src(
            """
            try:
                import volttron.platform.agent.utils as vutils
            except ImportError:
                vutils = None
            vutils.format_timestamp(1)
            """
        )
    )
    assert result.text.splitlines()[:2] == ["try:", "    from volttron.utils.time import format_timestamp"]
    assert "format_timestamp(1)" in result.text and not result.problems
    unused = port_source("if True:\n    from volttron.platform.agent import utils\n")
    assert unused.text == "if True:\n    pass\n"


def test_renamed_names_keep_the_old_name_for_the_code() -> None:
    result = port_source("from volttron.platform.keystore import KeyStore, KnownHostsStore\n")
    assert result.text == "from volttron.utils.keystore import KeyStore, KnownHosts as KnownHostsStore\n"
    split = port_source("from volttron.platform.agent.utils import load_config, vip_main as run\n")
    assert split.text == (
        "from volttron.client.runner import vip_main as run\nfrom volttron.utils.config import load_config\n"
    )


def test_plain_import_rewrites_the_dotted_uses() -> None:
    result = port_source(
        "import volttron.platform.vip.agent\n\nclass A(volttron.platform.vip.agent.Agent):\n    pass\n"
    )
    assert (
        result.text
        == "import volttron.client.vip.agent\n\nclass A(volttron.client.vip.agent.Agent):\n    pass\n"
    )


def test_what_cannot_be_mapped_is_reported_with_its_line() -> None:
    text = src(
        """
        from volttron.platform.agent import utils
        from volttron.platform.vip.agent import Agent, compat
        from volttron.platform.storeutils import list_unique_links
        load_config = None
        utils.get_platform_instance_name()
        utils.load_config("x")
        register(utils)
        """
    )
    result = port_source(text)
    problems = {(p.line, p.name) for p in result.problems}
    assert (2, "volttron.platform.vip.agent.compat") in problems
    assert (2, "volttron.platform.vip.agent") in problems  # the rest of that import was dropped
    assert (3, "volttron.platform.storeutils.list_unique_links") in problems
    assert (5, "volttron.platform.agent.utils.get_platform_instance_name") in problems
    assert (6, "utils.load_config") in problems  # 'load_config' is defined on line 4
    assert (7, "utils") in problems
    reasons = {p.name: p.reason for p in result.problems}
    assert "config:// references" in reasons["volttron.platform.storeutils.list_unique_links"]
    assert "already defined on line 4" in reasons["utils.load_config"]
    assert "from volttron.platform.storeutils import list_unique_links" in result.text  # left as written


def test_a_module_that_does_not_parse_is_left_alone() -> None:
    result = port_source("from volttron.platform.vip.agent import (\n")
    assert result.text == "from volttron.platform.vip.agent import (\n" and not result.changes
    assert result.problems[0].name == "<syntax>"


def test_non_ascii_text_keeps_its_offsets() -> None:
    text = 'x = "é"; from volttron.platform.vip.agent import Agent  # ünïcode\n'
    assert port_source(text).text == 'x = "é"; from volttron.client.vip.agent import Agent  # ünïcode\n'


def test_nothing_to_port_changes_nothing() -> None:
    text = "import os\nfrom volttron.client.vip.agent import Agent\n"
    result = port_source(text)
    assert result.text == text and not result.changed and not result.problems


MONOLITHIC_SETUP = src(
    """
    from os import path
    from setuptools import setup, find_packages

    MAIN_MODULE = 'agent'
    packages = find_packages('.')
    agent_package = ''
    for package in find_packages():
        if path.isfile(package + '/' + MAIN_MODULE + '.py') is True:
            agent_package = package
    agent_module = agent_package + '.' + MAIN_MODULE
    _temp = __import__(agent_module, globals(), locals(), ['__version__'], 0)
    __version__ = _temp.__version__

    setup(
        name=agent_package + 'agent',
        version=__version__,
        author_email="volttron@pnnl.gov",
        description="Agent development tutorial.",
        author="VOLTTRON Team",
        install_requires=['volttron', 'requests>=2'],
        packages=packages,
        entry_points={'setuptools.installation': ['eggsecutable = ' + agent_module + ':main']},
    )
    """
)


def make_monolithic(root: Path, setup_text: str = MONOLITHIC_SETUP) -> Path:
    (root / "weather").mkdir(parents=True)
    (root / "weather" / "__init__.py").write_text("")
    (root / "weather" / "agent.py").write_text(
        '__version__ = "2.1"\nfrom volttron.platform.agent import utils\n\n'
        "def main():\n    utils.vip_main(None)\n"
    )
    (root / "setup.py").write_text(setup_text)
    (root / "README.md").write_text("# weather\n")
    (root / "requirements.txt").write_text("# pinned\npytz\n-e ./local\n")
    (root / "config").write_text("{}\n")
    return root


def test_setup_py_with_computed_values_is_read_statically(tmp_path: Path) -> None:
    info = read_setup(make_monolithic(tmp_path))
    assert (info.name, info.version, info.package, info.entry_point) == (
        "weatheragent",
        "2.1",
        "weather",
        "weather.agent:main",
    )
    assert info.requires == ["requests>=2", "pytz"]
    assert (info.author, info.author_email, info.description) == (
        "VOLTTRON Team",
        "volttron@pnnl.gov",
        "Agent development tutorial.",
    )
    assert any("computed at run time" in note for note in info.notes)


def test_setup_py_with_literal_values_and_its_pyproject(tmp_path: Path) -> None:
    literal = src(
        """
        from setuptools import setup
        setup(name="volttron-weather", version="1.0.0", license="MIT",
              install_requires=["volttron>=8"],
              entry_points={"setuptools.installation": ["eggsecutable = weather.agent:main"]})
        """
    )
    info = read_setup(make_monolithic(tmp_path, literal))
    assert (info.name, info.version, info.entry_point, info.requires) == (
        "volttron-weather",
        "1.0.0",
        "weather.agent:main",
        ["pytz"],
    )
    assert any("eggsecutable = weather.agent:main becomes a console script" in note for note in info.notes)
    meta = tomllib.loads(suggest_pyproject(info, "README.md", "volttron-client>=0.1,<0.2"))
    assert meta["project"]["scripts"] == {"volttron-weather": "weather.agent:main"}
    assert meta["project"]["dependencies"] == ["volttron-client>=0.1,<0.2", "pytz"]
    assert meta["project"]["license"] == "MIT" and meta["project"]["readme"] == "README.md"
    assert meta["build-system"]["build-backend"] == "poetry.core.masonry.api"
    assert meta["tool"]["poetry"]["packages"] == [{"include": "weather"}]
    assert set(meta["project"]["classifiers"]) <= set(trove_classifiers)  # PyPI refuses any other
    assert meta["project"]["keywords"] == ["volttron", "agent"]


def test_unreadable_setup_py_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("setup(\n")
    with pytest.raises(PortingError, match="cannot read"):
        read_setup(tmp_path)
    (tmp_path / "setup.py").write_text("print('no setup call')\n")
    with pytest.raises(PortingError, match="no setup"):
        read_setup(tmp_path)


def test_port_project_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = make_monolithic(tmp_path / "p")
    before = (root / "weather" / "agent.py").read_text()
    report = port_project(root, dry_run=True)
    assert (root / "weather" / "agent.py").read_text() == before
    assert not (root / "pyproject.toml").exists() and report.pyproject and not report.pyproject_written
    report = port_project(root)
    assert "from volttron.client.runner import vip_main" in (root / "weather" / "agent.py").read_text()
    assert report.pyproject_written and tomllib.loads((root / "pyproject.toml").read_text())
    assert (root / "setup.py").read_text() == MONOLITHIC_SETUP
    again = port_project(root)
    assert not again.pyproject_written and any("compare it" in n for n in again.notes) and not again.files


def test_port_project_skips_virtual_environments(tmp_path: Path) -> None:
    root = make_monolithic(tmp_path / "p")
    (root / ".venv" / "lib").mkdir(parents=True)
    venv_module = root / ".venv" / "lib" / "x.py"
    venv_module.write_text("from volttron.platform.vip.agent import Agent\n")
    port_project(root)
    assert venv_module.read_text() == "from volttron.platform.vip.agent import Agent\n"
    with pytest.raises(PortingError, match="not a folder"):
        port_project(tmp_path / "missing")


def test_a_missing_readme_is_pointed_out(tmp_path: Path) -> None:
    root = make_monolithic(tmp_path / "p")
    assert not any("no README" in n for n in port_project(root, dry_run=True).notes)
    (root / "README.md").unlink()
    report = port_project(root, dry_run=True)
    assert any("no README" in n for n in report.notes) and "readme" not in (report.pyproject or "")


def test_vctl_port_agent(tmp_path: Path) -> None:
    root = make_monolithic(tmp_path / "p")
    runner = CliRunner()
    dry = runner.invoke(vctl, ["port-agent", str(root), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "weather/agent.py:5: utils.vip_main -> volttron.client.runner.vip_main" in dry.output
    assert "suggested pyproject.toml:" in dry.output and "would change 1 file(s)" in dry.output
    assert not (root / "pyproject.toml").exists()
    done = runner.invoke(vctl, ["--json", "port-agent", str(root)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["pyproject_written"] is True
    (root / "weather" / "extra.py").write_text("from volttron.platform.agent.utils import watch_file\n")
    failed = runner.invoke(vctl, ["port-agent", str(root)])
    assert failed.exit_code == 1
    assert "weather/extra.py:1: volttron.platform.agent.utils.watch_file:" in failed.output
    assert "1 name(s) could not be mapped" in failed.output
    missing = runner.invoke(vctl, ["port-agent", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "not a folder" in missing.output
