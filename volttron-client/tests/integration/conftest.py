"""A real ``volttron`` process and agent processes, for the client's integration tests.

``platform`` starts ``python -m volttron.server`` in a temporary ``VOLTTRON_HOME`` with
authentication on, listening on its local ipc address and a free tcp port. Identities get CURVE
keys and ``auth.json`` allow entries (the documented file format, reference §8.4) before they
connect. ``platform.agent_process(identity, transport)`` runs ``agents/pair_agent.py`` through
``vip_main`` with the platform's environment; ``platform.observer()`` is an agent in the test
process used to drive and watch the others over RPC.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.platform import VolttronPlatform
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent
from volttron.client.vip.agent.errors import ConnectError
from volttron.utils.keys import generate_keypair

AGENT_SCRIPT = Path(__file__).parent / "agents" / "pair_agent.py"
START_TIMEOUT = 30.0


class Platform(VolttronPlatform):
    """The testing kit's platform, with agent processes and observers for these tests.

    A restart keeps the observers (they reconnect, which some tests are about); :meth:`close` ends
    them, the agent processes and the platform.
    """

    def __init__(self, root: Path) -> None:
        home = root / "home"
        home.mkdir(mode=0o700)
        super().__init__(root, home=home, env={"HOME": str(root)})
        self.ipc_address = self.local_address
        self.agents: list[subprocess.Popen[bytes]] = []
        self.observers: list[Agent] = []

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the platform process only (observers stay, to reconnect after a restart)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"volttron did not stop:\n{self.log_text()}") from None

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
