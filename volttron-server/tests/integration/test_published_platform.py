"""Our listener, standalone, on a platform of the PUBLISHED VOLTTRON: it gets its configuration and publishes.

That platform (volttron-core 2.0.0rc38 with volttron-lib-zmq/-auth, the cached environment of
``test_published_client.py``) refuses to run as root (exit 77), so it runs as a system user the
test creates and removes, from a folder with a ``pyproject.toml`` and ``--dev`` (without it, its
first start runs ``poetry add`` of its whole environment against the index). Its administrator
steps are the ones its users take: the agent's credentials in ``credentials_store/``, ``vctl authz
add agent <id> --role-names default_rpc_capabilities``, ``vctl config store``.

That platform serves no ``get_user_to_capabilities``: our client asks its
``check_rpc_authorization`` about every push instead, so the store's pushes arrive (first load and
a live change) and a push from an agent the platform does not authorize is refused, and logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.modules import load_beside
from volttron.client.testing.waiting import wait_until
from volttron.utils.jsonrpc import Error
from volttron.utils.keys import KeyPair, generate_keypair

pytestmark = [
    pytest.mark.integration,
    pytest.mark.requires_root(reason="the published platform runs as a user the test creates"),
]

START_TIMEOUT = 60.0
WAIT = 60.0
PYPROJECT = '[tool.poetry]\nname = "published-platform-under-test"\nversion = "0.1.0"\ndescription = ""\n' \
            'authors = ["test"]\n'


def _client_tests() -> Any:
    return load_beside(__file__, "test_published_client", "published_client_for_published_platform")


reachable = load_beside(__file__, "test_secure_mode", "secure_mode_for_published_platform").reachable_paths
"""The folders on the way to some paths passable by other users for a while (test_secure_mode.py's)."""


class PublishedPlatform:
    """A platform of the published VOLTTRON, run as ``user`` in ``root``."""

    def __init__(self, python: Path, root: Path, user: str) -> None:
        self.bin = python.parent
        self.root = root
        self.user = user
        self.home = root / "home"
        self.project = root / "project"
        self.log_path = root / "platform.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"ipc://@{self.home}/run/vip.socket"

    def as_user(self, *command: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", "env", f"VOLTTRON_HOME={self.home}", f"HOME={self.root}",
                *command]

    def start(self) -> None:
        self.project.mkdir(parents=True)
        (self.project / "pyproject.toml").write_text(PYPROJECT)
        self.home.mkdir()
        subprocess.run(["chown", "-R", self.user, str(self.root)], check=True)
        with open(self.root / "platform.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                self.as_user(str(self.bin / "volttron"), "--dev", "-vv", "-l", str(self.log_path)),
                cwd=self.project, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        wait_until(lambda: self.process.poll() is not None or (self.home / "VOLTTRON_PID").exists()
                   and "platform.health" in self.log(), START_TIMEOUT,
                   "the published platform to start")
        assert self.process.poll() is None, f"the published platform exited: {self.log()[-2000:]}"

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.log_path, self.root / "platform.stderr")
                 if p.exists()]
        return "\n".join(parts)

    @property
    def serverkey(self) -> str:
        return json.loads((self.home / "credentials_store" / "platform.json").read_text())["publickey"]

    def add_credentials(self, identity: str) -> KeyPair:
        """What its ``vctl install`` does for an agent: a credentials record the platform authenticates."""
        keys = generate_keypair()
        path = self.home / "credentials_store" / f"{identity}.json"
        path.write_text(json.dumps({"identity": identity, "publickey": keys.public, "secretkey": keys.secret,
                                    "domain": "", "address": ""}))
        subprocess.run(["chown", self.user, str(path)], check=True)
        return keys

    def vctl(self, *args: str) -> str:
        done = subprocess.run(self.as_user(str(self.bin / "vctl"), *args), capture_output=True, text=True,
                              timeout=120, cwd=self.project)
        assert done.returncode == 0, f"vctl {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def store_config(self, identity: str, contents: dict[str, Any], name: str) -> None:
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(contents))
        os.chmod(path, 0o644)
        self.vctl("config", "store", identity, "config", str(path))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture
def platform_user() -> Iterator[str]:
    """A system user of the test's own, removed afterwards."""
    user = f"vtc2{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                   check=True, capture_output=True)
    try:
        yield user
    finally:
        subprocess.run(["userdel", user], check=True, capture_output=True)  # fails if a process of it is left


@pytest.fixture
def published_platform(tmp_path: Path, platform_user: str) -> Iterator[PublishedPlatform]:
    """A running platform of the published VOLTTRON (skips when its environment cannot be built)."""
    python = _client_tests().published_python()
    # not under tmp_path: a pytest session starting meanwhile makes /tmp/pytest-of-<user> 0700 again
    root = Path(tempfile.mkdtemp(prefix="volttron-published-platform-"))
    os.chmod(root, 0o755)
    platform = PublishedPlatform(python, root / "published", platform_user)
    try:
        with reachable([python, Path(os.path.realpath(python)), python.parent.parent, root]):
            try:
                platform.start()
                yield platform
            finally:
                platform.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_our_listener_gets_its_configuration_and_publishes_on_a_published_platform(
        published_platform: PublishedPlatform, tmp_path: Path) -> None:
    platform = published_platform
    keys = platform.add_credentials("ourlistener")
    platform.vctl("authz", "add", "agent", "ourlistener", "--role-names", "default_rpc_capabilities")
    platform.store_config("ourlistener", {"message": "hello from the published platform",
                                          "heartbeat_period": 1}, "first")
    log_path = tmp_path / "listener.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "VOLTTRON_"))}
    env.update({"VOLTTRON_HOME": str(tmp_path / "listener-home"), "AGENT_VIP_IDENTITY": "ourlistener",
                "AGENT_PUBLICKEY": keys.public, "AGENT_SECRETKEY": keys.secret,
                "VOLTTRON_SERVERKEY": platform.serverkey, "VOLTTRON_VIP_ADDR": platform.address})
    with open(log_path, "wb") as log:
        listener = subprocess.Popen([sys.executable, "-m", "volttron_listener_agent.agent"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def text() -> str:
            return log_path.read_text(errors="replace")

        loaded = "configuration 'config' loaded: message 'hello from the published platform'"
        wait_until(lambda: loaded in text(), WAIT, "the listener to load its configuration from that store")
        wait_until(lambda: "Topic: heartbeat/ourlistener" in text() and "'heartbeat_period': 1.0" in text(),
                   WAIT, "the listener's heartbeats at the configured period")
        platform.store_config("ourlistener", {"message": "changed", "heartbeat_period": 1}, "second")
        wait_until(lambda: "configuration 'config' updated: message 'changed'" in text(), WAIT,
                   "the live change to arrive")

        # a push the published platform does not authorize is refused, and said so
        intruder_keys = platform.add_credentials("intruder")
        intruder = build_agent(address=platform.address, identity="intruder", publickey=intruder_keys.public,
                               secretkey=intruder_keys.secret, serverkey=platform.serverkey, timeout=30,
                               volttron_home=str(tmp_path / "intruder-home"))
        try:
            with pytest.raises(Error):
                intruder.vip.rpc.call("ourlistener", "config.update", "UPDATE", "config",
                                      {"message": "forged"}, trigger_callback=True).get(timeout=30)
        finally:
            intruder.core.stop(timeout=10)
        assert "refused ourlistener.config.update to 'intruder'" in text()
        assert "forged" not in text()
    finally:
        listener.terminate()
        try:
            listener.wait(timeout=10)
        except subprocess.TimeoutExpired:
            listener.kill()
            listener.wait(timeout=10)
