"""A ``volttron`` process in a temporary home for the benchmark: start, authorize peers, RSS, stop.

On RabbitMQ (``broker`` given) the home is prepared as ``vcfg rabbitmq single`` does, for the run's
own instance name and vhost, and the platform runs with ``--message-bus rmq``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from volttron.client.messagebus.rmq_testing import BrokerInstance
from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.utils.keys import KeyPair, generate_keypair

START_TIMEOUT = 30.0
RMQ_START_TIMEOUT = 60.0
"""On RabbitMQ the platform also declares its queues and makes the agents' broker users first."""
STOP_TIMEOUT = 20.0


class BenchPlatformError(RuntimeError):
    """The platform did not start or stop as it should."""


class BenchPlatform:
    """``python -m volttron.server`` on its local ipc address only, CURVE on unless ``auth=False``.

    With ``broker`` the platform runs on RabbitMQ in that instance's vhost (CURVE keys stay on: an
    agent's broker password is derived from them).
    """

    def __init__(self, root: Path, auth: bool = True, broker: BrokerInstance | None = None) -> None:
        self.root = root
        self.auth = auth or broker is not None
        self.broker = broker
        self.home = root / "home"
        self.log_path = root / "volttron.log"
        self.address = f"ipc://@{self.home}/run/vip.socket"
        self.process: subprocess.Popen[bytes] | None = None
        self._keys: dict[str, KeyPair] = {}

    @property
    def agent_address(self) -> str:
        """Where agents connect: the ipc address, or on RabbitMQ the broker's ``amqp://`` URL."""
        return self.address if self.broker is None else self.broker.url()

    @property
    def serverkey(self) -> str | None:
        """The platform's public key (None without authentication)."""
        if not self.auth:
            return None
        return json.loads((self.home / "keystore").read_text())["public"]

    def authorize(self, user_id: str) -> KeyPair | None:
        """A key pair allowed in by ``auth.json`` (None without authentication), one per identity."""
        if not self.auth:
            return None
        if user_id in self._keys:
            return self._keys[user_id]
        keys = generate_keypair()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        # on RabbitMQ the platform makes a broker user for each entry that names an identity
        entry = AuthEntry(credentials=keys.public, user_id=user_id, comments="benchmark",
                          identity=user_id if self.broker is not None else None)
        ensure_entries(self.home / "auth.json", [entry])
        self._keys[user_id] = keys
        return keys

    def start(self) -> BenchPlatform:
        """Launch and wait until the PID file names the process (services up, router bound)."""
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "VOLTTRON_HOME": str(self.home), "HOME": str(self.root)}
        env.pop("VOLTTRON_VIP_ADDR", None)
        cmd = [sys.executable, "-m", "volttron.server", "-l", str(self.log_path)]
        if not self.auth:
            cmd.append("--auth-disabled")
        if self.broker is not None:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.broker.prepare_home(self.home)
            cmd += ["--message-bus", "rmq"]
        with open(self.root / "volttron.stderr", "wb") as stderr:
            # a session of its own: Ctrl-C reaches the benchmark, which stops the platform in order
            self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                            cwd=self.root, start_new_session=True)
        limit = START_TIMEOUT if self.broker is None else RMQ_START_TIMEOUT
        deadline = time.monotonic() + limit
        pid_file = self.home / "VOLTTRON_PID"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchPlatformError(
                    f"volttron exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if int(pid_file.read_text()) == self.process.pid:
                    return self
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        raise BenchPlatformError(f"volttron did not start within {limit:.0f} s:\n{self.log_text()}")

    def broker_user_ready(self, identity: str) -> bool:
        """Whether the platform has made the broker user of ``identity`` (RabbitMQ only; it records them)."""
        assert self.broker is not None
        try:
            made = json.loads((self.home / "rabbitmq" / "users.json").read_text())
        except (FileNotFoundError, ValueError):
            return False
        return f"{self.broker.instance}.{identity}" in made.get(self.broker.vhost, {})

    def wait_broker_users(self, identities: list[str], timeout: float) -> None:
        """Wait until the platform has made the broker user of every one of ``identities``."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [i for i in identities if not self.broker_user_ready(i)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BenchPlatformError(f"the platform made no broker user for {', '.join(missing)} within "
                                         f"{timeout:.0f} s:\n{self.log_text()[-2000:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        """The platform's process id."""
        assert self.process is not None
        return self.process.pid

    def rss(self) -> int:
        """The platform process's resident set size in bytes."""
        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss

    def cpu_seconds(self) -> float:
        """User + system CPU time the platform process has used."""
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def log_text(self) -> str:
        """The platform's log and stderr."""
        parts = [p.read_text(errors="replace") for p in (self.log_path, self.root / "volttron.stderr")
                 if p.exists()]
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after :data:`STOP_TIMEOUT`)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise BenchPlatformError("volttron did not stop within its deadline; killed") from None
