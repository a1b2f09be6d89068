"""A real ``volttron`` process and agent processes, for the client's integration tests.

``platform`` starts ``python -m volttron.server`` in a temporary ``VOLTTRON_HOME`` with
authentication on, listening on its local ipc address and a free tcp port. Identities get CURVE
keys and ``auth.json`` allow entries (the documented file format, reference §8.4) before they
connect. ``platform.agent_process(identity, transport)`` runs ``agents/pair_agent.py`` through
``vip_main`` with the platform's environment; ``platform.observer()`` is an agent in the test
process used to drive and watch the others over RPC.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent
from volttron.client.vip.agent.errors import ConnectError
from volttron.utils.keys import KeyPair, generate_keypair

AGENT_SCRIPT = Path(__file__).parent / "agents" / "pair_agent.py"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Platform:
    """One platform home; the process can be started, stopped and started again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(mode=0o700)
        self.port = free_port()
        self.tcp_address = f"tcp://127.0.0.1:{self.port}"
        self.ipc_address = f"ipc://@{self.home}/run/vip.socket"
        self.keys: dict[str, KeyPair] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.agents: list[subprocess.Popen[bytes]] = []
        self.observers: list[Agent] = []
        self.starts = 0

    @property
    def serverkey(self) -> str:
        return json.loads((self.home / "keystore").read_text())["public"]

    def authorize(self, identity: str) -> KeyPair:
        """Keys for ``identity`` and an allow entry in ``auth.json``."""
        if identity not in self.keys:
            self.keys[identity] = generate_keypair()
            path = self.home / "auth.json"
            doc = (
                json.loads(path.read_text())
                if path.exists()
                else {"allow": [], "deny": [], "groups": {}, "roles": {}, "version": {"major": 1, "minor": 4}}
            )
            doc["allow"].append(
                {
                    "domain": None,
                    "address": None,
                    "mechanism": "CURVE",
                    "credentials": self.keys[identity].public,
                    "groups": [],
                    "roles": [],
                    "capabilities": {},
                    "rpc_method_authorizations": {},
                    "comments": "client integration test",
                    "user_id": identity,
                    "identity": identity,
                    "enabled": True,
                }
            )
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=2))
            tmp.chmod(0o600)
            tmp.rename(path)
        return self.keys[identity]

    def start(self) -> Platform:
        self.starts += 1
        log = self.root / f"platform-{self.starts}.log"
        env = {**os.environ, "VOLTTRON_HOME": str(self.home), "HOME": str(self.root)}
        env.pop("VOLTTRON_VIP_ADDR", None)
        with open(self.root / f"platform-{self.starts}.stderr", "wb") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "volttron.server",
                    "-v",
                    "-l",
                    str(log),
                    "--vip-address",
                    self.tcp_address,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.root,
            )
        poll(lambda: self._started(), START_TIMEOUT, "the platform to start")
        return self

    def _started(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"volttron exited during start-up:\n{self.log_text()}")
        try:
            return int((self.home / "VOLTTRON_PID").read_text()) == self.process.pid and self._welcomes()
        except (FileNotFoundError, ValueError):
            return False

    def _welcomes(self) -> bool:
        try:
            probe = self.observer("test.readiness", timeout=2)
        except Exception:
            return False
        probe.core.stop(timeout=5)
        self.observers.remove(probe)
        return True

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"volttron did not stop:\n{self.log_text()}") from None

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("platform-*")))

    def address(self, transport: str) -> str:
        return self.tcp_address if transport == "tcp" else self.ipc_address

    def observer(self, identity: str = "observer", transport: str = "ipc", timeout: float = 10) -> Agent:
        keys = self.authorize(identity)
        try:
            agent = build_agent(
                address=self.address(transport),
                identity=identity,
                publickey=keys.public,
                secretkey=keys.secret,
                serverkey=self.serverkey,
                timeout=timeout,
                volttron_home=str(self.home),
            )
        except ConnectError as exc:
            if identity == "test.readiness":
                raise
            # the platform's side of a refusal is in its log: show it with the failure
            log = self.log_text()[-4000:]
            raise ConnectError(f"{exc}\n--- platform log (last 4000 characters) ---\n{log}") from exc
        self.observers.append(agent)
        return agent

    def agent_process(
        self, identity: str, transport: str = "ipc", authorize: bool = True, **extra_env: str
    ) -> subprocess.Popen[bytes]:
        """``pair_agent.py`` as identity, launched as a user would run it (keys in the environment).

        ``authorize=False`` gives it a key pair the platform has never heard of.
        """
        keys = self.authorize(identity) if authorize else generate_keypair()
        env = {
            **os.environ,
            "VOLTTRON_HOME": str(self.home),
            "HOME": str(self.root),
            "AGENT_VIP_IDENTITY": identity,
            "AGENT_PUBLICKEY": keys.public,
            "AGENT_SECRETKEY": keys.secret,
            "VOLTTRON_SERVERKEY": self.serverkey,
            "VOLTTRON_VIP_ADDR": self.address(transport),
            **extra_env,
        }
        for name in ("_LAUNCHED_BY_PLATFORM", "AGENT_CONFIG", "AGENT_UUID", "AUTH_ENABLED", "MESSAGEBUS"):
            env.pop(name, None)
        log = open(self.root / f"agent-{identity}-{len(self.agents)}.stderr", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, str(AGENT_SCRIPT)], env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=self.root
        )
        log.close()
        self.agents.append(process)
        return process

    def stderr_of(self, process: subprocess.Popen[bytes]) -> str:
        index = self.agents.index(process)
        matches = list(self.root.glob(f"agent-*-{index}.stderr"))
        return matches[0].read_text(errors="replace") if matches else ""

    def close(self) -> None:
        for agent in self.observers:
            agent.core.stop(timeout=5)
        for process in self.agents:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.agents:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.stop()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    instance = Platform(tmp_path).start()
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(name="poll")
def poll_fixture() -> Callable[..., Any]:
    """:func:`poll` for the test modules (conftest modules cannot be imported by name)."""
    return poll
