"""Shared fixtures of the server's tests: a real ``volttron`` process, and raw VIP clients.

``platform_factory`` (function scope) makes :class:`PlatformProcess` objects: ``volttron`` run as a
subprocess (``python -m volttron.server``) in its own temporary ``VOLTTRON_HOME`` (``HOME`` points
into the temporary folder too), listening on ``ipc://@<home>/run/vip.socket`` and on a free
``tcp://127.0.0.1:<port>``. ``start()`` waits, with a deadline, until the PID file names the
process and a CURVE handshake on the local address succeeds (no VIP message is sent, so no peer is
added). At teardown every platform gets SIGTERM; the fixture fails the test if one does not exit
within its deadline (it is then killed) or leaves its PID file behind.

``running_platform`` is one started platform. Connect raw VIP clients with ``.client("alice")``,
which adds an ``auth.json`` allow entry for a fresh key pair (``platform.add_allow_entry``) and
returns a connected :class:`VipClient` (a pyzmq DEALER speaking VIP frames); ``vip_client_factory``
makes clients for any address and keys. Example::

    def test_ping(running_platform):
        alice = running_platform.client("alice")
        reply = alice.request("", "ping", "ping", "x")
        assert reply.args == [b"pong", b"x"]

Everything here uses blocking pyzmq (no gevent), so tests need no monkey-patching.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

from volttron.client.testing.platform import VolttronPlatform
from volttron.client.testing.waiting import wait_until as wait_for
from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.utils.keys import KeyPair, generate_keypair, to_z85

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


# -- raw VIP clients ---------------------------------------------------------------------------------

def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("iso-8859-1")


@dataclass
class VipMessage:
    """A VIP message as a DEALER receives it: ``[peer, VIP1, user, msg_id, subsystem, *args]``."""

    peer: bytes
    user: bytes
    msg_id: bytes
    subsystem: bytes
    args: list[bytes] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> VipMessage:
        """Decode received frames; the signature frame must be ``VIP1``."""
        assert len(frames) >= 5, f"short VIP message {frames!r}"
        assert frames[1] == b"VIP1", f"bad signature in {frames!r}"
        return cls(frames[0], frames[2], frames[3], frames[4], list(frames[5:]), list(frames))


class VipClient:
    """A raw pyzmq DEALER that speaks VIP frames to a platform (no gevent, no client library)."""

    _ids = itertools.count(1)

    def __init__(self, address: str, identity: bytes | str, *, serverkey: str | None = None,
                 keys: KeyPair | None = None, context: zmq.Context | None = None, monitor: bool = False,
                 hwm: int = 6000) -> None:
        self.identity = _b(identity)
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if self.identity:
            self.socket.setsockopt(zmq.IDENTITY, self.identity)
        self.socket.set_hwm(hwm)
        if serverkey is not None:
            assert keys is not None, "a CURVE client needs its own key pair"
            self.socket.curve_serverkey = to_z85(serverkey)
            self.socket.curve_publickey = to_z85(keys.public)
            self.socket.curve_secretkey = to_z85(keys.secret)
        self.monitor = self.socket.get_monitor_socket() if monitor else None
        self.socket.connect(address)
        self.pending: list[VipMessage] = []

    # sending
    def send(self, peer: bytes | str, subsystem: bytes | str, *args: bytes | str, msg_id: bytes | str = b"",
             user: bytes | str = b"") -> None:
        """Send ``[peer, VIP1, user, msg_id, subsystem, *args]``."""
        self.send_frames([_b(peer), b"VIP1", _b(user), _b(msg_id), _b(subsystem), *map(_b, args)])

    def send_frames(self, frames: Sequence[bytes]) -> None:
        """Send arbitrary frames (for malformed-input tests)."""
        self.socket.send_multipart(list(frames))

    # receiving
    def recv(self, timeout: float = 5.0) -> VipMessage:
        """The next message (queued ones first); AssertionError after ``timeout`` seconds."""
        if self.pending:
            return self.pending.pop(0)
        if not self.socket.poll(int(timeout * 1000)):
            raise AssertionError(f"{self.identity!r} received nothing within {timeout} s")
        return VipMessage.from_frames(self.socket.recv_multipart())

    def recv_until(self, predicate: Callable[[VipMessage], bool], timeout: float = 5.0) -> VipMessage:
        """The first message satisfying ``predicate``; others are kept in :attr:`pending` for later."""
        deadline = time.monotonic() + timeout
        for i, message in enumerate(self.pending):
            if predicate(message):
                return self.pending.pop(i)
        skipped = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self.socket.poll(int(left * 1000) + 1):
                    last = [m.frames for m in skipped[-3:]]
                    raise AssertionError(f"{self.identity!r}: no matching message within {timeout} s; got "
                                         f"{len(skipped)} others, the last: {last}")
                message = VipMessage.from_frames(self.socket.recv_multipart())
                if predicate(message):
                    return message
                skipped.append(message)
        finally:
            self.pending.extend(skipped)

    def drain(self, quiet: float = 0.05) -> list[VipMessage]:
        """Every message that arrives until none has arrived for ``quiet`` seconds (and the queued ones)."""
        messages, self.pending = self.pending, []
        while self.socket.poll(int(quiet * 1000)):
            messages.append(VipMessage.from_frames(self.socket.recv_multipart()))
        return messages

    def request(self, peer: bytes | str, subsystem: bytes | str, *args: bytes | str,
                timeout: float = 5.0) -> VipMessage:
        """Send with a fresh message id and return the reply carrying that id."""
        msg_id = f"{self.identity.decode('iso-8859-1')}.{next(self._ids)}".encode()
        self.send(peer, subsystem, *args, msg_id=msg_id)
        return self.recv_until(lambda m: m.msg_id == msg_id, timeout)

    def hello(self, timeout: float = 5.0) -> VipMessage:
        """Say hello to the router; returns the welcome."""
        reply = self.request(b"", b"hello", b"hello", timeout=timeout)
        assert reply.args[0] == b"welcome", reply.frames
        return reply

    def wait_event(self, events: int, timeout: float = 5.0) -> int:
        """The first socket-monitor event among ``events`` (a bit mask); needs ``monitor=True``."""
        assert self.monitor is not None, "create the client with monitor=True"
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.monitor.poll(int(left * 1000) + 1):
                raise AssertionError(f"no monitor event {events:#x} within {timeout} s")
            event = parse_monitor_message(self.monitor.recv_multipart())["event"]
            if event & events:
                return event

    def close(self) -> None:
        """Close the socket (and its monitor) at once."""
        if self.monitor is not None:
            self.socket.disable_monitor()
            self.monitor.close(0)
            self.monitor = None
        self.socket.close(0)


# -- platform processes ------------------------------------------------------------------------------

class PlatformProcess(VolttronPlatform):
    """The testing kit's :class:`VolttronPlatform` with what the server's tests need on top.

    ``root/<name>`` is the home (several platforms may share ``root``), the process can be launched
    without waiting (tests of failing start-ups), readiness is a bare CURVE handshake (no VIP
    message, so no peer is added), raw VIP clients come from :meth:`client`, and :meth:`stop` checks
    the PID file is gone. Agents, ``vctl`` and ``authorize`` are the kit's.
    """

    def __init__(self, root: Path, args: Sequence[str] = (), *, env: dict[str, str] | None = None,
                 tcp: bool = True, name: str = "home") -> None:
        super().__init__(root, auth="--auth-disabled" not in args, extra_args=args, home=root / name,
                         env={"HOME": str(root), **(env or {})})
        self.port = self.port if tcp else None  # type: ignore[assignment]
        self.vip_address = self.tcp_address if tcp else None
        self.log_path = root / f"{name}.log"
        self.stderr_path = root / f"{name}.stderr"
        self.args = self.extra_args
        self.clients: list[VipClient] = []
        self.expect_clean_exit = True
        """Teardown fails the test unless the exit code is 0; tests of failing start-ups clear it."""

    def _stderr_path(self) -> Path:
        return self.stderr_path

    # files
    @property
    def pid_file(self) -> Path:
        """``$VOLTTRON_HOME/VOLTTRON_PID``."""
        return self.home / "VOLTTRON_PID"

    @property
    def auth_file(self) -> Path:
        """``$VOLTTRON_HOME/auth.json``."""
        return self.home / "auth.json"

    @property
    def serverkey(self) -> str:  # type: ignore[override]  # the key store's, with authentication off too
        """The platform's public key, from its key store."""
        return json.loads((self.home / "keystore").read_text())["public"]

    @property
    def platform_keys(self) -> KeyPair:
        """The platform's own key pair (what in-process services would use)."""
        data = json.loads((self.home / "keystore").read_text())
        return KeyPair(public=data["public"], secret=data["secret"])

    def add_allow_entry(self, identity: str, keys: KeyPair | None = None,
                        capabilities: dict[str, Any] | list[str] | None = None) -> KeyPair:
        """Allow ``identity`` to connect with ``keys`` (a new pair if None); works before and after start."""
        keys = keys or generate_keypair()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = AuthEntry(credentials=keys.public, user_id=identity, identity=identity,
                          capabilities=capabilities or {}, comments="added by a test")
        ensure_entries(self.auth_file, [entry])
        return keys

    # life cycle
    def command(self) -> list[str]:
        """The command line the platform runs with."""
        cmd = [sys.executable, "-m", "volttron.server", "-vv", "-l", str(self.log_path)]
        if self.vip_address:
            cmd += ["--vip-address", self.vip_address]
        return cmd + self.args

    def launch(self) -> PlatformProcess:
        """Start the process without waiting (for tests of start-up failures)."""
        assert self.process is None, "already launched"
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(self.command(), env=self.env, stdout=subprocess.DEVNULL,
                                            stderr=stderr, cwd=self.root)
        return self

    def start(self, timeout: float = START_TIMEOUT) -> PlatformProcess:
        """Launch and wait until ready: PID file with our pid, and a handshake on the local address."""
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + timeout

        def pid_written() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"volttron exited with {self.process.returncode} during start-up:\n"
                                     f"{self.log_text()}")
            try:
                return int(self.pid_file.read_text()) == self.process.pid
            except (FileNotFoundError, ValueError):
                return False

        wait_for(pid_written, timeout, "the platform's PID file")
        auth = "--auth-disabled" not in self.args
        keys = self.add_allow_entry("test.readiness") if auth else None
        probe = VipClient(self.local_address, b"", serverkey=self.serverkey if auth else None, keys=keys,
                          monitor=True)
        try:
            left = max(0.5, deadline - time.monotonic())
            event = probe.wait_event(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                     | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, left)
            assert event == zmq.EVENT_HANDSHAKE_SUCCEEDED, f"readiness handshake failed (event {event})"
        finally:
            probe.close()
        return self

    def client(self, identity: bytes | str, *, keys: KeyPair | None = None, address: str | None = None,
               capabilities: dict[str, Any] | list[str] | None = None, authorize: bool = True,
               **kwargs: Any) -> VipClient:
        """A connected :class:`VipClient`; by default with an allow entry added for a new key pair.

        ``address`` defaults to the local ipc address; pass ``platform.vip_address`` for tcp.
        ``authorize=False`` connects with ``keys`` (or a fresh pair) without adding an entry.
        """
        name = identity.decode("iso-8859-1") if isinstance(identity, bytes) else identity
        auth = "--auth-disabled" not in self.args
        if auth and authorize:
            keys = self.add_allow_entry(name or "anonymous", keys, capabilities)
        elif auth:
            keys = keys or generate_keypair()
        client = VipClient(address or self.local_address, identity,
                           serverkey=self.serverkey if auth else None, keys=keys if auth else None, **kwargs)
        self.clients.append(client)
        return client

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process."""
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit code, waiting up to ``timeout`` (then the process is killed and the test fails)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(
                f"volttron did not exit within {timeout} s; killed it\n{self.log_text()}") from None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait, and check the PID file is gone; returns the exit code."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        for agent in reversed(self._agents):  # the kit's in-process agents (build_agent, start_agent)
            with contextlib.suppress(Exception):
                agent.core.stop(timeout=5)
        self._agents.clear()
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        try:
            left = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            left = None
        assert left != self.process.pid, f"{self.pid_file} left behind after exit"
        return code


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator[Callable[..., PlatformProcess]]:
    """Make :class:`PlatformProcess` objects (not started); all are stopped and checked at teardown.

    ``platform_factory(args=(...), env={...}, tcp=True, name="home")``; several may share
    ``tmp_path`` with different ``name``s, or the same name to test a second platform on one home.
    """
    made: list[PlatformProcess] = []

    def make(args: Sequence[str] = (), **kwargs: Any) -> PlatformProcess:
        process = PlatformProcess(tmp_path, args, **kwargs)
        made.append(process)
        return process

    yield make
    problems = []
    for process in reversed(made):
        try:
            code = process.stop()
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        if code not in (0, None) and process.process is not None and process.expect_clean_exit:
            problems.append(f"volttron exited with {code}:\n{process.log_text()}")
    assert not problems, "\n".join(problems)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    """The polling helper :func:`wait_for` (``wait_for(condition, timeout, what)``), for test modules.

    Test modules cannot import this conftest (pytest runs with ``--import-mode=importlib``).
    """
    return wait_for


@pytest.fixture
def running_platform(platform_factory: Callable[..., PlatformProcess]) -> PlatformProcess:
    """A started platform with ipc and tcp addresses and authentication on."""
    return platform_factory().start()


@pytest.fixture
def vip_client_factory() -> Iterator[Callable[..., VipClient]]:
    """Make raw :class:`VipClient` DEALERs for any address and keys; all are closed at teardown.

    ``vip_client_factory(address, identity, serverkey=..., keys=..., monitor=False)``. For a client of
    a :class:`PlatformProcess` with an auth entry made for it, ``platform.client(identity)`` is shorter.
    """
    made: list[VipClient] = []

    def make(address: str, identity: bytes | str, **kwargs: Any) -> VipClient:
        client = VipClient(address, identity, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# -- figures and long variants of the hardening battery ------------------------------------------

@pytest.fixture
def slow_enabled(request: pytest.FixtureRequest) -> bool:
    """Whether long variants were asked for (``-m slow`` or ``VOLTTRON_TEST_SLOW=1``)."""
    expr = request.config.getoption("markexpr", "") or ""
    return os.environ.get("VOLTTRON_TEST_SLOW") == "1" or ("slow" in expr and "not slow" not in expr)


@pytest.fixture
def report(request: pytest.FixtureRequest, record_property: Callable[[str, Any], None],
           tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Any], None]:
    """``report(name, value)``: print, record and store one figure of this test."""
    path = tmp_path_factory.getbasetemp() / "hardening-figures.json"
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def put(name: str, value: Any) -> None:
        record_property(name, value)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[f"{request.node.name}.{name}"] = value
        path.write_text(json.dumps(data, indent=1, sort_keys=True))
        with capman.global_and_fixture_disabled():
            print(f"\n[figure] {request.node.name}: {name}: {value}", flush=True)

    return put
