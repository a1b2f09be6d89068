"""A ``volttron`` process in a temporary home for the benchmark: start, authorize peers, RSS, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.utils.keys import KeyPair, generate_keypair

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class BenchPlatformError(RuntimeError):
    """The platform did not start or stop as it should."""


class BenchPlatform:
    """``python -m volttron.server`` on its local ipc address only, CURVE on unless ``auth=False``."""

    def __init__(self, root: Path, auth: bool = True) -> None:
        self.root = root
        self.auth = auth
        self.home = root / "home"
        self.log_path = root / "volttron.log"
        self.address = f"ipc://@{self.home}/run/vip.socket"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def serverkey(self) -> str | None:
        """The platform's public key (None without authentication)."""
        if not self.auth:
            return None
        return json.loads((self.home / "keystore").read_text())["public"]

    def authorize(self, user_id: str) -> KeyPair | None:
        """A key pair allowed in by ``auth.json`` (None without authentication)."""
        if not self.auth:
            return None
        keys = generate_keypair()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        ensure_entries(self.home / "auth.json", [AuthEntry(credentials=keys.public, user_id=user_id,
                                                           comments="benchmark")])
        return keys

    def start(self) -> BenchPlatform:
        """Launch and wait until the PID file names the process (services up, router bound)."""
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "VOLTTRON_HOME": str(self.home), "HOME": str(self.root)}
        env.pop("VOLTTRON_VIP_ADDR", None)
        cmd = [sys.executable, "-m", "volttron.server", "-l", str(self.log_path)]
        if not self.auth:
            cmd.append("--auth-disabled")
        with open(self.root / "volttron.stderr", "wb") as stderr:
            self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                            cwd=self.root)
        deadline = time.monotonic() + START_TIMEOUT
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
        raise BenchPlatformError(f"volttron did not start within {START_TIMEOUT:.0f} s:\n{self.log_text()}")

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
