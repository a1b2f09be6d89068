"""In-process services plug into the platform as factories and talk over inproc://vip without auth.

The platform runs inside the test process here (gevent, zmq.green; no monkey-patching needed).
"""

from __future__ import annotations

import json
from pathlib import Path

import gevent
import gevent.event
import pytest
import zmq.green as zmq

from volttron.client.testing.waiting import wait_until
from volttron.server.context import PlatformContext
from volttron.server.options import PlatformOptions
from volttron.server.platform import Platform, PlatformError
from volttron.server.platform_home import PlatformRunningError
from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.utils.keys import generate_keypair, to_z85

pytestmark = pytest.mark.integration


class EchoService:
    """A trivial service: a raw green DEALER on inproc://vip that echoes RPC frames back."""

    identity = b"test.echo"

    def __init__(self, context: PlatformContext, log: list[str]) -> None:
        self.context = context
        self.log = log
        self.socket = None
        self.greenlet = None

    def _request(self, subsystem: bytes, *args: bytes) -> list[bytes]:
        self.socket.send_multipart([b"", b"VIP1", b"", b"svc", subsystem, *args])
        with gevent.Timeout(5):
            while True:
                frames = self.socket.recv_multipart()
                if frames[3] == b"svc":
                    return frames

    def start(self) -> None:
        self.socket = self.context.zmq_context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, self.identity)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.context.router_address)
        welcome = self._request(b"hello", b"hello")  # the router already serves when start() runs
        self.log.append(f"started:{welcome[5].decode()}")
        self.greenlet = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            frames = self.socket.recv_multipart()
            sender, subsystem = frames[0], frames[4]
            if subsystem == b"RPC":
                self.socket.send_multipart([sender, b"VIP1", b"", frames[3], b"RPC", *frames[5:]])

    def stop(self) -> None:
        self.greenlet.kill()
        pong = self._request(b"ping", b"ping")  # the router is still up while services stop
        self.log.append(f"stopped:{pong[5].decode()}")
        self.socket.close(0)


def options(home: Path) -> PlatformOptions:
    return PlatformOptions(home=home, instance_name="inproc-test", vip_local_address=f"ipc://@{home}/run/vip.socket")


def curve_client(platform: Platform, home: Path, identity: bytes):
    keys = generate_keypair()
    ensure_entries(home / "auth.json", [AuthEntry(credentials=keys.public, user_id=identity.decode())])
    sock = platform.context.zmq_context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.LINGER, 0)
    sock.curve_serverkey = to_z85(platform.context.serverkey)
    sock.curve_publickey = to_z85(keys.public)
    sock.curve_secretkey = to_z85(keys.secret)
    sock.connect(platform.context.local_address)
    return sock


def recv(sock, timeout: float = 5.0) -> list[bytes]:
    with gevent.Timeout(timeout):
        return sock.recv_multipart()


def test_service_factory_gets_context_and_serves_over_inproc(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log: list[str] = []
    contexts: list[PlatformContext] = []

    def factory(context: PlatformContext) -> EchoService:
        contexts.append(context)
        return EchoService(context, log)

    platform = Platform(options(home), [factory], shared_context=False)
    platform.start()
    try:
        context = contexts[0]
        assert context.router_address == "inproc://vip" and context.home == home
        assert context.instance_name == "inproc-test" and context.auth_enabled
        assert context.serverkey == json.loads((home / "keystore").read_text())["public"]
        assert (home / "VOLTTRON_PID").exists(), "the PID file is written once services have started"
        client = curve_client(platform, home, b"alice")
        client.send_multipart([b"test.echo", b"VIP1", b"", b"42", b"RPC", b'{"x": 1}'])
        assert recv(client) == [b"test.echo", b"VIP1", b"test.echo", b"42", b"RPC", b'{"x": 1}']
        client.send_multipart([b"", b"VIP1", b"", b"p", b"peerlist", b"list"])
        assert b"test.echo" in recv(client)[6:]
        client.close(0)
    finally:
        platform.shutdown()
    assert log == ["started:welcome", "stopped:pong"]
    assert not (home / "VOLTTRON_PID").exists()


def test_failing_service_start_undoes_everything(tmp_path: Path) -> None:
    home = tmp_path / "home"

    class Broken:
        def start(self) -> None:
            raise RuntimeError("cannot start")

        def stop(self) -> None:
            raise AssertionError("never started, never stopped")

    platform = Platform(options(home), [lambda context: Broken()], shared_context=False)
    with pytest.raises(RuntimeError, match="cannot start"):
        platform.start()
    assert not (home / "VOLTTRON_PID").exists()
    again = Platform(options(home), [], shared_context=False)  # lock released, endpoints free
    again.start()
    again.request_stop()
    assert again.wait_stop_requested(1)
    again.shutdown()


def test_two_platforms_in_one_home_refused_in_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Platform(options(home), [], shared_context=False)
    first.start()
    try:
        with pytest.raises(PlatformRunningError, match="already running"):
            Platform(options(home), [], shared_context=False).start()
    finally:
        first.shutdown()


def test_shared_context_is_the_default_pyzmq_instance(tmp_path: Path) -> None:
    """With the shared context (as `volttron` runs), inproc://vip is in zmq.Context.instance()."""
    import zmq as plain_zmq

    platform = Platform(options(tmp_path / "home"), [])  # shared_context=True, as main() does
    platform.start()
    sock = plain_zmq.Context.instance().socket(plain_zmq.DEALER)
    try:
        sock.setsockopt(plain_zmq.LINGER, 0)
        sock.setsockopt(plain_zmq.IDENTITY, b"default.context.agent")
        sock.connect("inproc://vip")
        sock.send_multipart([b"", b"VIP1", b"", b"h", b"hello", b"hello"])
        # a plain socket: wait_until lets the router's greenlet run between its polls
        wait_until(lambda: sock.poll(0), 5, "the router's welcome")
        assert sock.recv_multipart()[4:6] == [b"hello", b"welcome"]
    finally:
        sock.close(0)
        platform.shutdown()


def test_service_that_hangs_in_start_fails_the_start(tmp_path: Path, monkeypatch) -> None:
    released = gevent.event.Event()

    class Hanging:
        def start(self) -> None:
            released.wait(60)  # hangs until the test is over

        def stop(self) -> None:
            raise AssertionError("never started")

    monkeypatch.setattr(Platform, "SERVICE_START_TIMEOUT", 0.2)
    platform = Platform(options(tmp_path / "home"), [lambda context: Hanging()], shared_context=False)
    try:
        with pytest.raises(PlatformError, match="did not start within"):
            platform.start()
        assert not (tmp_path / "home" / "VOLTTRON_PID").exists()
    finally:
        released.set()


def test_router_failure_stops_the_platform_with_an_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = Platform(options(home), [], shared_context=False)
    runner = gevent.spawn(platform.run)
    wait_until(lambda: (home / "VOLTTRON_PID").exists(), 5, "the platform's PID file")
    platform._socket._greenlet.kill(RuntimeError("libzmq said no"), block=False)
    runner.join(5)
    assert isinstance(runner.exception, PlatformError) and "libzmq said no" in str(runner.exception)
    assert not (home / "VOLTTRON_PID").exists()
