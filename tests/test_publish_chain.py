"""Publishing, end to end, against a real package index on 127.0.0.1.

The integration test builds the four packages, uploads them to a pypiserver with
``scripts/publish`` (twine), publishes an agent made by ``vctl create-agent`` with
``poetry publish``, installs ``volttron-server`` from that index into a fresh venv, starts the
platform from that venv and installs ``volttron-listener-agent`` and the new agent BY NAME with
``vctl install``: the platform's pip reads ``PIP_INDEX_URL`` from the platform's environment. The
index serves our packages itself and redirects the other names (gevent, pyzmq, ...) to PyPI, so
no other ``volttron-*`` distribution can be picked up.

The quick tests check the script's arguments and the GitHub workflows.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from volttron.client.testing.waiting import wait_until as wait_for

ROOT = Path(__file__).resolve().parents[1]
PUBLISH = ROOT / "scripts" / "publish"
BIN = Path(sys.executable).parent
WORKFLOWS = ROOT / ".github" / "workflows"
ORDER = ["volttron_utils", "volttron_client", "volttron_server", "volttron_listener_agent"]


def run(
    args: list, cwd: Path = ROOT, timeout: float = 600, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    full_env.update(env or {})
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(str(a) for a in args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


# ---------------------------------------------------------------------------------------- quick checks


def test_publish_refuses_an_unknown_repository() -> None:
    result = run(["bash", PUBLISH, "--repository", "ftp://example", "--skip-build"], check=False)
    assert result.returncode == 1
    assert "--repository must be testpypi, pypi or an http(s) URL" in result.stderr


def test_publish_refuses_unknown_arguments_and_a_missing_dist(tmp_path: Path) -> None:
    result = run(["bash", PUBLISH, "--bogus"], check=False)
    assert result.returncode == 1 and "unknown argument '--bogus'" in result.stderr
    result = run(["bash", PUBLISH, "--skip-build", "--dist", tmp_path / "none"], check=False)
    assert result.returncode == 1 and "does not exist" in result.stderr
    (tmp_path / "d").mkdir()
    result = run(["bash", PUBLISH, "--skip-build", "--dry-run", "--dist", tmp_path / "d"], check=False)
    assert result.returncode == 1 and "expected one volttron_utils wheel" in result.stderr


def test_publish_help() -> None:
    out = run(["bash", PUBLISH, "--help"]).stdout
    assert "release order" in out and "--dry-run" in out


def _workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_ci_workflow_builds_and_tests_on_push() -> None:
    ci = _workflow("ci.yml")
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    steps = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    assert any("scripts/test" in s for s in steps)
    assert any("scripts/publish --dry-run" in s for s in steps)
    # root and RabbitMQ requirements fail rather than skip in CI; the slow variants have a job of their own
    assert ci["jobs"]["test"]["env"]["VOLTTRON_TEST_REQUIRE_ROOT"] == "1"
    slow = ci["jobs"]["slow"]
    assert "schedule" in ci["on"] and "schedule" in slow["if"] and slow["env"]["VOLTTRON_TEST_SLOW"] == "1"
    assert any("scripts/test -m slow" in s.get("run", "") for s in slow["steps"])


def test_publish_workflow_uses_trusted_publishing_in_release_order() -> None:
    wf = _workflow("publish.yml")
    assert wf["on"]["push"]["tags"] == ["v*"] and wf["on"]["release"]["types"] == ["published"]
    assert wf["permissions"] == {"contents": "read"}
    for job, repository, condition in (("testpypi", "testpypi", "push"), ("pypi", "pypi", "release")):
        spec = wf["jobs"][job]
        assert spec["permissions"] == {"id-token": "write"} and spec["environment"] == repository
        assert condition in spec["if"] and spec["needs"] == "build"
        commands = " ".join(s.get("run", "") for s in spec["steps"])
        assert f"scripts/publish --repository {repository} --skip-build" in commands
        assert "TWINE_PASSWORD" not in commands and "secrets." not in (WORKFLOWS / "publish.yml").read_text()
    script = PUBLISH.read_text()
    assert "order=(volttron_utils volttron_client volttron_server volttron_listener_agent)" in script


# ---------------------------------------------------------------------------------------- the chain


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_index(folder: Path) -> tuple[str, subprocess.Popen]:
    """A pypiserver on 127.0.0.1 serving (and accepting uploads into) ``folder``, without passwords."""
    server = BIN / "pypi-server"
    if not server.exists():
        pytest.skip(reason="pypiserver is not installed (scripts/requirements-dev.txt)")
    packages = folder / "packages"
    packages.mkdir(parents=True)
    port = free_port()
    with open(folder / "pypiserver.log", "wb") as log:
        process = subprocess.Popen(
            [server, "run", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".", str(packages)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError((folder / "pypiserver.log").read_text())
        try:
            with urllib.request.urlopen(url + "simple/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_for(answers, 30, "pypiserver to answer")
    except BaseException:
        stop_index(process)
        raise
    return url, process


def stop_index(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.fixture
def index_factory(tmp_path: Path) -> Iterator:
    """Makes package indexes (see :func:`start_index`); all stopped after the test."""
    started: list[subprocess.Popen] = []

    def make(name: str) -> str:
        url, process = start_index(tmp_path / f"index-{name}")
        started.append(process)
        return url

    yield make
    for process in started:
        stop_index(process)


@pytest.fixture
def package_index(index_factory) -> str:
    """One local package index; its URL."""
    return index_factory("main")


def simple_page(url: str, name: str) -> str:
    with urllib.request.urlopen(f"{url}simple/{name}/", timeout=10) as response:
        return response.read().decode()


@pytest.mark.integration
@pytest.mark.slow
def test_publish_install_by_name_and_run(package_index: str, tmp_path: Path) -> None:
    from volttron.client.testing.platform import VolttronPlatform, wait_until

    dist = tmp_path / "dist"
    twine_env = {"TWINE_USERNAME": "test", "TWINE_PASSWORD": "test"}
    out = run(["bash", PUBLISH, "--repository", package_index, "--dist", dist], env=twine_env).stdout
    uploads = [line.split()[2] for line in out.splitlines() if line.startswith("publish: uploading")]
    assert uploads == ORDER, out
    for name in ("volttron-utils", "volttron-client", "volttron-server", "volttron-listener-agent"):
        page = simple_page(package_index, name)
        assert ".whl" in page and ".tar.gz" in page, page

    # an agent made by vctl create-agent, published the poetry way
    run(
        [BIN / "vctl", "create-agent", "chain-agent", "--author", "Jo Doe", "--author-email", ""],
        cwd=tmp_path,
    )
    poetry_env = {
        "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
        "POETRY_CACHE_DIR": str(tmp_path / "pc"),
    }
    run(
        [BIN / "poetry", "config", "repositories.chain", package_index],
        cwd=tmp_path / "chain-agent",
        env=poetry_env,
    )
    run(
        [
            BIN / "poetry",
            "publish",
            "--build",
            "--repository",
            "chain",
            "--username",
            "test",
            "--password",
            "test",
            "--no-interaction",
        ],
        cwd=tmp_path / "chain-agent",
        env=poetry_env,
    )
    assert "chain_agent-0.1.0-py3-none-any.whl" in simple_page(package_index, "chain-agent")

    # a user's machine: volttron-server from the index into a fresh venv
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    pip_env = {"PIP_INDEX_URL": package_index + "simple/", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "volttron-server"],
        env=pip_env,
        timeout=900,
    )
    listed = run([venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"]).stdout
    for name in ("volttron-server==0.1.0", "volttron-client==0.1.0", "volttron-utils==0.1.0"):
        assert name in listed.replace("_", "-").lower(), listed
    assert "editable" not in run([venv / "bin" / "python", "-m", "pip", "list", "-e"]).stdout.lower()

    platform = VolttronPlatform(tmp_path / "platform", python=str(venv / "bin" / "python"), env=pip_env)
    try:
        platform.start()
        platform.vctl("install", "volttron-listener-agent", "--vip-identity", "listener", "--start")
        platform.vctl("install", "chain-agent", "--vip-identity", "chain.agent", "--start")
        observer = platform.build_agent("test.observer")

        def answers(identity: str, method: str, *args):
            try:
                return observer.vip.rpc.call(identity, method, *args).get(timeout=2)
            except Exception:
                return None

        wait_until(
            lambda: (answers("listener", "health.get_status") or {}).get("status") == "GOOD",
            60,
            "the listener installed by name to report GOOD",
        )
        wait_until(
            lambda: answers("chain.agent", "rpc_method", 5, 3) == 3,
            60,
            "the agent published with poetry to answer",
        )
        status = platform.vctl("status").stdout
        assert "listener" in status and "chain.agent" in status
        installed = run([venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"]).stdout.lower()
        assert "volttron-listener-agent==0.1.0" in installed.replace("_", "-")
        assert "chain-agent==0.1.0" in installed.replace("_", "-")
    finally:
        platform.close()


# ---------------------------------------------------------------------------------------- the guide

GUIDE = ROOT / "docs" / "publishing-guide.md"
PLATFORM_SECTION = "## Publishing the platform's packages"
TESTPYPI_UPLOAD = "https://test.pypi.org/legacy/"


def guide_commands(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, re.S | re.M)


def copy_repository(target: Path) -> Path:
    ignore = shutil.ignore_patterns("dist", "build", "__pycache__", ".pytest_cache", "*.egg-info", ".venv")
    for name in (
        "volttron-utils",
        "volttron-client",
        "volttron-server",
        "volttron-listener-agent",
        "scripts",
    ):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    shutil.copy(ROOT / "LICENSE", target / "LICENSE")
    return target


@pytest.mark.integration
@pytest.mark.slow
def test_every_command_of_the_publishing_guide(index_factory, tmp_path: Path) -> None:
    text = GUIDE.read_text()
    agent_part, platform_part = text.split(PLATFORM_SECTION)
    assert len(guide_commands(agent_part)) >= 2 and len(guide_commands(platform_part)) >= 2
    assert not re.findall(r"^```(sh|shell|console)\b", text, re.M)
    testpypi, pypi, poetry_testpypi = (
        index_factory("testpypi"),
        index_factory("pypi"),
        index_factory("poetry"),
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pypirc").write_text(
        "[distutils]\nindex-servers =\n    pypi\n    testpypi\n\n"
        f"[pypi]\nrepository = {pypi}\nusername = test\npassword = test\n\n"
        f"[testpypi]\nrepository = {testpypi}\nusername = test\npassword = test\n"
    )
    env = {
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHON": sys.executable,
        "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
        "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
        "POETRY_HTTP_BASIC_TESTPYPI_USERNAME": "test",
        "POETRY_HTTP_BASIC_TESTPYPI_PASSWORD": "test",
        "TWINE_NON_INTERACTIVE": "1",
    }
    run([BIN / "vctl", "create-agent", "volttron-demo-agent", "--author", "Jo Doe"], cwd=tmp_path, env=env)
    repository = copy_repository(tmp_path / "repo")
    for part, cwd in ((agent_part, tmp_path / "volttron-demo-agent"), (platform_part, repository)):
        script = "set -euo pipefail\n" + "\n".join(guide_commands(part)).replace(
            TESTPYPI_UPLOAD, poetry_testpypi
        )
        run(["bash", "-c", script], cwd=cwd, env=env, timeout=900)
    for index in (testpypi, pypi, poetry_testpypi):
        for name in (
            "volttron-demo-agent",
            "volttron-utils",
            "volttron-client",
            "volttron-server",
            "volttron-listener-agent",
        ):
            page = simple_page(index, name)
            assert ".whl" in page and ".tar.gz" in page, (index, name, page)
