"""A real platform for integration tests: ``volttron`` as a subprocess in a temporary home.

::

    platform = VolttronPlatform(tmp_path).start()        # needs volttron-server installed
    agent = platform.start_agent(MyAgent, "my.agent", config={"setting1": 2})
    observer = platform.build_agent("observer")
    assert observer.vip.rpc.call("my.agent", "rpc_method", 1, 2).get(timeout=10) == 3
    platform.vctl("status")                               # the CLI, against this platform
    platform.close()

The platform listens on its local ipc address and a free ``tcp://127.0.0.1`` port, with
authentication on unless ``auth=False``. Identities used by the test get CURVE keys and an
``auth.json`` allow entry (written under the ``auth.json.lock`` flock every writer holds).
``message_bus="rmq"`` runs it on RabbitMQ in a fresh virtual host of the local broker, deleted
afterwards (see :mod:`volttron.client.testing.rmq_vhost`). The home is a short temporary folder
(the ipc socket path must fit in 107 bytes), linked as ``<root>/volttron_home`` and removed by
:meth:`VolttronPlatform.close`.

Nothing here imports ``volttron.server``: the platform is a separate process, found by module
name. :class:`PlatformUnavailable` says why one cannot run (no server package, no broker).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from volttron.client.testing.errors import PlatformUnavailable, VolttronPlatformError
from volttron.client.testing.waiting import wait_until
from volttron.utils.config import strip_comments
from volttron.utils.errors import VolttronError
from volttron.utils.files import FileLock, atomic_write
from volttron.utils.home import auth_file_path, local_vip_address, pid_file_path, platform_keystore_path
from volttron.utils.keys import KeyPair, generate_keypair

START_TIMEOUT = 45.0
STOP_TIMEOUT = 30.0
_CLEAN_ENV_PREFIXES = ("AGENT_", "VOLTTRON_")
_CLEAN_ENV_NAMES = ("_LAUNCHED_BY_PLATFORM", "MESSAGEBUS", "AUTH_ENABLED")


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_available(python: str | None = None) -> bool:
    """True when ``volttron-server`` is importable by ``python`` (this interpreter by default)."""
    if python is None or Path(python) == Path(sys.executable):
        return importlib.util.find_spec("volttron.server") is not None
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('volttron.server') is None)"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


class VolttronPlatform:
    """One platform home; see the module docstring. The process can be stopped and started again."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        message_bus: str = "zmq",
        auth: bool = True,
        instance_name: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        home: str | os.PathLike[str] | None = None,
    ) -> None:
        if message_bus not in ("zmq", "rmq"):
            raise VolttronPlatformError(f"message_bus must be 'zmq' or 'rmq', not {message_bus!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if home is not None:  # the caller's: its ipc socket path must stay under 107 bytes
            self.home = Path(home)
        else:
            # The home holds the ipc socket, whose path must stay under 107 bytes: a short temporary
            # folder, linked from the root for whoever looks at a failed test's files.
            self.home = Path(tempfile.mkdtemp(prefix="vhome-"))
            self.home.chmod(0o700)
            with contextlib.suppress(OSError):
                (self.root / "volttron_home").symlink_to(self.home, target_is_directory=True)
        self.message_bus = message_bus
        self.auth = auth
        self.instance_name = instance_name or f"test-{uuid.uuid4().hex[:10]}"
        self.python = python or sys.executable
        self.extra_args = list(extra_args)
        self.port = free_tcp_port()
        self.tcp_address = f"tcp://127.0.0.1:{self.port}"
        self.local_address = local_vip_address(self.home)
        self.log_path = self.root / "volttron.log"
        self.env = _clean_environment(os.environ)
        self.env["VOLTTRON_HOME"] = str(self.home)
        self.env.update(env or {})
        self.keys: dict[str, KeyPair] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._agents: list[Any] = []
        self._vhost: Any = None

    # ----- files and keys

    @property
    def serverkey(self) -> str | None:
        """The platform's public key (None with ``auth=False``)."""
        if not self.auth:
            return None
        key: str = json.loads(platform_keystore_path(self.home).read_text())["public"]
        return key

    def log_text(self) -> str:
        """What the platform logged so far, with anything it wrote to stderr."""
        parts = [p.read_text(errors="replace") for p in (self.log_path, self._stderr_path()) if p.exists()]
        return "\n".join(parts)

    def authorize(
        self, identity: str, capabilities: Mapping[str, Any] | Sequence[str] | None = None
    ) -> KeyPair:
        """Keys for ``identity`` and an ``auth.json`` allow entry for them (once per identity)."""
        if identity in self.keys:
            return self.keys[identity]
        keys = generate_keypair()
        caps = (
            dict(capabilities) if isinstance(capabilities, Mapping) else {c: None for c in capabilities or ()}
        )
        entry: dict[str, Any] = {
            "domain": None,
            "address": None,
            "mechanism": "CURVE",
            "credentials": keys.public,
            "groups": [],
            "roles": [],
            "capabilities": caps,
            "rpc_method_authorizations": {},
            "comments": "added by volttron.client.testing",
            "user_id": identity,
            "identity": identity,
            "enabled": True,
        }
        path = auth_file_path(self.home)
        with _flock(path.with_name(path.name + ".lock")):
            doc = json.loads(strip_comments(path.read_text()) or "{}") if path.exists() else {}
            for key, empty in (("allow", []), ("deny", []), ("groups", {}), ("roles", {})):
                doc.setdefault(key, empty)
            doc.setdefault("version", {"major": 1, "minor": 4})
            doc["allow"].append(entry)
            atomic_write(path, json.dumps(doc, indent=4), mode=0o600)
        self.keys[identity] = keys
        if self._vhost is not None and self.process is not None and self.process.poll() is None:
            # the platform makes the agent's broker user when it sees auth.json change
            user = f"{self.instance_name}.{identity}"
            wait_until(lambda: user in self._vhost.admin.users(), 30, f"broker user {user}", interval=0.2)
        return keys

    # ----- life cycle

    def command(self) -> list[str]:
        """The ``volttron`` command line."""
        cmd = [self.python, "-m", "volttron.server", "-vv", "-l", str(self.log_path)]
        cmd += ["--vip-address", self.tcp_address, "--instance-name", self.instance_name]
        if self.message_bus != "zmq":
            cmd += ["--message-bus", self.message_bus]
        if not self.auth:
            cmd.append("--auth-disabled")
        return cmd + self.extra_args

    def start(self, timeout: float = START_TIMEOUT) -> VolttronPlatform:
        """Start ``volttron`` and wait until an agent is welcomed; PlatformUnavailable if it cannot run."""
        if self.process is not None and self.process.poll() is None:
            raise VolttronPlatformError("the platform is already running")
        if not server_available(self.python):
            raise PlatformUnavailable(
                f"volttron-server is not installed for {self.python}; integration tests need it "
                "(pip install volttron-server)"
            )
        if self.message_bus == "rmq" and self._vhost is None:
            from volttron.client.testing.rmq_vhost import BrokerVirtualHost

            self._vhost = BrokerVirtualHost.create(self.instance_name, self.home)
        self.starts += 1
        with open(self._stderr_path(), "ab") as stderr:
            self.process = subprocess.Popen(
                self.command(),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=self.root,
            )
        try:
            wait_until(self._ready, timeout, "the platform to start", interval=0.05)
        except VolttronPlatformError:
            self.stop()
            raise
        return self

    def _stderr_path(self) -> Path:
        return self.root / "volttron.stderr"

    def _ready(self) -> bool:
        process = self.process
        if process is None or process.poll() is not None:
            code = None if process is None else process.returncode
            raise VolttronPlatformError(f"volttron exited with {code} during start-up:\n"
                                        f"{self.log_text()[-4000:]}")
        try:
            if int(pid_file_path(self.home).read_text()) != process.pid:
                return False
        except (FileNotFoundError, ValueError):
            return False
        try:
            probe = self.build_agent("test.readiness", timeout=2)
        except VolttronError:
            return False
        probe.core.stop(timeout=5)
        self._agents.remove(probe)
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop in-process agents, then the platform (SIGTERM, SIGKILL after ``timeout``); its exit code."""
        for agent in reversed(self._agents):
            with contextlib.suppress(Exception):  # an agent that fails to stop must not keep the platform up
                agent.core.stop(timeout=5)
        self._agents.clear()
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
                raise VolttronPlatformError(
                    f"volttron did not stop within {timeout:g} s:\n{self.log_text()[-4000:]}"
                ) from None
        return process.returncode

    def restart(self) -> VolttronPlatform:
        """Stop and start again in the same home."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop everything, delete the RabbitMQ virtual host (if one was made) and the home."""
        try:
            self.stop()
        finally:
            try:
                if self._vhost is not None:
                    self._vhost.delete()
                    self._vhost = None
            finally:
                shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> VolttronPlatform:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ----- agents and commands

    def connection_kwargs(self, identity: str, transport: str = "ipc") -> dict[str, Any]:
        """Address, keys and home for an agent of this platform (authorized on first use).

        ``transport`` (``ipc`` or ``tcp``) matters on ZeroMQ only.
        """
        # On RabbitMQ the local address only names the home whose rabbitmq_config.yml the agent reads.
        address = self.tcp_address if transport == "tcp" and self.message_bus == "zmq" else self.local_address
        kwargs: dict[str, Any] = {"address": address, "identity": identity, "volttron_home": str(self.home)}
        if self.auth:
            keys = self.authorize(identity)
            kwargs.update(publickey=keys.public, secretkey=keys.secret, serverkey=self.serverkey)
        if self.message_bus != "zmq":
            kwargs["message_bus"] = self.message_bus
        return kwargs

    def build_agent(
        self,
        identity: str,
        agent_class: Any = None,
        timeout: float = 10.0,
        transport: str = "ipc",
        **kwargs: Any,
    ) -> Any:
        """A connected agent in this process (``runner.build_agent``); stopped with the platform."""
        from volttron.client.runner import build_agent
        from volttron.client.vip.agent import Agent

        params = self.connection_kwargs(identity, transport)
        params.update(kwargs)
        agent = build_agent(agent_class=agent_class or Agent, timeout=timeout, **params)
        self._agents.append(agent)
        return agent

    def start_agent(
        self,
        agent_factory: Callable[..., Any],
        identity: str,
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> Any:
        """Run an agent class (or factory) in this process as ``vip_main`` would, until the platform stops.

        Its configuration store and heartbeat are on, and ``config`` (a mapping or a file) is its
        configuration file. Returns the agent once it is welcomed.
        """
        if isinstance(config, Mapping):
            path = self.root / f"{identity}.config"
            path.write_text(json.dumps(dict(config), indent=2))
            config = path
        kwargs.setdefault("enable_store", True)
        kwargs.setdefault("heartbeat_autostart", True)
        return self.build_agent(
            identity,
            agent_class=agent_factory,
            timeout=timeout,
            config_path=None if config is None else str(config),
            **kwargs,
        )

    def vctl(
        self, *args: str, timeout: float = 300.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``vctl ARGS`` against this platform; :class:`VolttronPlatformError` on failure (``check``)."""
        argv = [self.python, "-c", "from volttron.client.commands.vctl import main; main()", *args]
        result = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if check and result.returncode != 0:
            raise VolttronPlatformError(
                f"vctl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stderr[-4000:]}{result.stdout[-2000:]}"
            )
        return result


def _clean_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without any variable that would point an agent or the platform elsewhere."""
    return {
        k: v
        for k, v in environ.items()
        if not k.startswith(_CLEAN_ENV_PREFIXES) and k not in _CLEAN_ENV_NAMES
    }


@contextlib.contextmanager
def _flock(path: Path, timeout: float = 30.0) -> Iterator[None]:
    lock = FileLock(path)
    if not lock.acquire(timeout):
        raise VolttronPlatformError(f"{path} stayed locked for {timeout:g} s")
    with lock:
        yield
