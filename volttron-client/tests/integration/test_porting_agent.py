"""A small agent written the monolithic way, ported with ``vctl port-agent``: it then imports, passes a
unit test on the testing kit, builds from the suggested pyproject.toml, and runs after ``vctl install``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from volttron.client.testing.platform import wait_until

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent

MONOLITHIC_AGENT = '''\
"""A counter agent, written for the monolithic VOLTTRON (9.x)."""

import logging
import sys

from volttron.platform.agent import utils
from volttron.platform.messaging.health import STATUS_GOOD
from volttron.platform.vip.agent import Agent, Core, PubSub, RPC

utils.setup_logging()
_log = logging.getLogger(__name__)
__version__ = "1.2"


def counter_agent(config_path, **kwargs):
    """Parses the configuration and builds the agent (the classic factory function)."""
    config = utils.load_config(config_path)
    return CounterAgent(config.get("prefix", "counts"), **kwargs)


class CounterAgent(Agent):
    def __init__(self, prefix, **kwargs):
        super(CounterAgent, self).__init__(**kwargs)
        self.prefix = prefix
        self.count = 0

    @Core.receiver("onstart")
    def onstart(self, sender, **kwargs):
        self.vip.health.set_status(STATUS_GOOD, "counting")

    @PubSub.subscribe("pubsub", "")
    def on_match(self, peer, sender, bus, topic, headers, message):
        if topic.startswith(self.prefix):
            self.count += 1

    @RPC.export
    def get_count(self):
        return self.count


def main(argv=sys.argv):
    """Main method called by the eggsecutable."""
    try:
        utils.vip_main(counter_agent, version=__version__)
    except Exception as e:
        _log.exception("unhandled exception")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        pass
'''

MONOLITHIC_SETUP = """\
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
    author="VOLTTRON Team",
    author_email="volttron@pnnl.gov",
    description="Counts publications under a prefix.",
    install_requires=['volttron'],
    packages=packages,
    entry_points={
        'setuptools.installation': [
            'eggsecutable = ' + agent_module + ':main',
        ]
    }
)
"""

UNIT_TEST = """\
from pathlib import Path

from counter.agent import counter_agent


def test_counts_under_its_prefix(agent_harness):
    config = Path(__file__).resolve().parents[1] / "config"
    harness = agent_harness(counter_agent, config=config, identity="counter").start()
    harness.pubsub.deliver("tally/a", 1)
    harness.pubsub.deliver("other/b", 1)
    assert harness.rpc.invoke("get_count") == 1
    assert harness.health.get_status()["status"] == "GOOD"
"""


def run(args: list, cwd: Path, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if check:
        assert result.returncode == 0, (
            f"{args}: {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def ported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monolithic") / "CounterAgent"
    (root / "counter").mkdir(parents=True)
    (root / "counter" / "__init__.py").write_text("")
    (root / "counter" / "agent.py").write_text(MONOLITHIC_AGENT)
    (root / "setup.py").write_text(MONOLITHIC_SETUP)
    (root / "README.md").write_text("# Counter agent\n\nCounts publications under a prefix.\n")
    (root / "config").write_text('{\n    # what to count\n    "prefix": "tally"\n}\n')
    (root / "tests").mkdir()
    (root / "tests" / "test_counter.py").write_text(UNIT_TEST)
    before = run([sys.executable, "-c", "import counter.agent"], root, check=False)
    assert before.returncode == 1 and "No module named 'volttron.platform'" in before.stderr
    out = run([BIN / "vctl", "port-agent", root], root.parent).stdout
    assert "counter/agent.py:17: utils.load_config -> volttron.utils.config.load_config" in out
    assert "wrote pyproject.toml" in out
    return root


def test_ported_agent_imports_cleanly(ported: Path) -> None:
    text = (ported / "counter" / "agent.py").read_text()
    assert "volttron.platform" not in text
    assert "        super(CounterAgent, self).__init__(**kwargs)\n" in text  # the rest is untouched
    run([sys.executable, "-W", "error::SyntaxWarning", "-c", "import counter.agent"], ported)


def test_ported_agent_passes_a_unit_test_on_the_testing_kit(ported: Path) -> None:
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests"], ported
    )
    assert "1 passed" in result.stdout


def test_ported_agent_builds_from_the_suggested_pyproject(ported: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    run(["cp", "-r", ported, source], tmp_path)
    (source / "setup.py").unlink()  # as the porting guide says, once pyproject.toml is right
    run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", source], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == "counteragent-1.2-py3-none-any.whl"
    run([BIN / "twine", "check", "--strict", wheel], tmp_path)


def test_ported_agent_runs_on_a_platform(ported: Path, tmp_path: Path, volttron_platform) -> None:
    source = tmp_path / "source"
    run(["cp", "-r", ported, source], tmp_path)
    (source / "setup.py").unlink()
    volttron_platform.vctl(
        "install",
        str(source),
        "--agent-config",
        str(source / "config"),
        "--vip-identity",
        "counter",
        "--start",
    )
    try:
        observer = volttron_platform.build_agent("test.observer")

        def counted() -> bool:
            observer.vip.pubsub.publish("pubsub", "tally/x", message=1).get(timeout=10)
            try:
                return observer.vip.rpc.call("counter", "get_count").get(timeout=2) >= 1
            except Exception:
                return False

        wait_until(counted, 30, "the ported agent to count a publication", interval=0.3)
    finally:
        volttron_platform.vctl("remove", "counter", check=False)
