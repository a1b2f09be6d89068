"""vctl's link to a platform: an agent with identity ``control.connection`` (docs/protocol.md §5.1).

:func:`open_connection` checks, before anything waits, that a local platform runs (its
``VOLTTRON_PID`` names a live process) and that the keys are there, then connects within the
timeout. The key pair is ``$VOLTTRON_HOME/keystores/control.connection/keystore.json`` (the
platform writes it at its first start); the server key comes from ``--serverkey``, the address's
``serverkey=`` parameter, or ``known_hosts``. Every failure becomes a :class:`CommandError`
with the exit code vctl documents:

==  ===============================================================
10  the platform is not running, or does not answer at the address
20  the platform answered with an error (remote error, refused, no such method)
75  no answer within the timeout
==  ===============================================================
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volttron.client.commands.cli import (
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_REMOTE,
    EXIT_TIMEOUT,
    CommandError,
)
from volttron.client.known_identities import CONTROL, CONTROL_CONNECTION
from volttron.utils.errors import VolttronError
from volttron.utils.home import identity_keystore_path, known_hosts_path, local_vip_address, pid_file_path

_log = logging.getLogger(__name__)

ATTEMPT_SECONDS = 2.0
"""How long one connection attempt waits for the router's welcome."""
BUSY_PAUSE = 0.05
BUSY_PAUSE_MAX = 1.0
"""First and longest pause before a call refused as busy (EAGAIN) is sent again."""
_REFUSED = "refused the security handshake"
"""The client core's wording for a CURVE/ZAP refusal: retrying cannot help."""


class PlatformNotRunning(CommandError):
    """The platform is not running (or not answering at the address); exit code 10."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_RUNNING)


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how vctl connects."""

    home: Path
    timeout: float = 60.0
    address: str | None = None
    """None: the local platform of ``home``."""
    serverkey: str | None = None
    identity: str = CONTROL_CONNECTION

    @property
    def is_local(self) -> bool:
        """True when the address is this home's own local (ipc) address."""
        if self.address is None:
            return True
        return self.address.split("?", 1)[0] == local_vip_address(self.home)

    @property
    def target(self) -> str:
        """The address to connect to, for messages."""
        return (self.address or local_vip_address(self.home)).split("?", 1)[0]


def running_pid(home: Path) -> int | None:
    """The pid in ``VOLTTRON_PID`` when that process is alive, else None."""
    try:
        pid = int(pid_file_path(home).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, owned by someone else
    return pid


def check_local_platform(home: Path) -> int:
    """The running local platform's pid, or :class:`PlatformNotRunning` at once."""
    pid = running_pid(home)
    if pid is None:
        raise PlatformNotRunning(
            f"VOLTTRON is not running in {home}. This command requires a running platform "
            "(start it with 'volttron', or set VOLTTRON_HOME)"
        )
    return pid


class ControlConnection:
    """A connected ``control.connection`` agent; ``call`` the control service (or another peer)."""

    def __init__(self, agent: Any, settings: ConnectionSettings) -> None:
        self.agent = agent
        self.settings = settings

    @property
    def peer_identity(self) -> str:
        """The identity we are connected as."""
        return str(self.agent.core.identity)

    def call_async(self, method: str, *args: Any, peer: str = CONTROL, **kwargs: Any) -> Any:
        """Start an RPC call; returns the ``AsyncResult``."""
        return self.agent.vip.rpc.call(peer, method, *args, **kwargs)

    def call(
        self, method: str, *args: Any, peer: str = CONTROL, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` on ``peer`` and wait up to ``timeout`` (default: the connection's).

        A call refused as busy (EAGAIN: the peer's queue is full, or it serves too many requests of
        ours) was not run, so it is sent again after a short pause until the timeout is spent.
        """
        import gevent

        from volttron.client.vip.agent.errors import Again

        wait = self.settings.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        pause = BUSY_PAUSE
        while True:
            result = self.call_async(method, *args, peer=peer, **kwargs)
            try:
                return result.get(timeout=max(0.01, deadline - time.monotonic()))
            except Again as exc:
                if time.monotonic() + pause >= deadline:
                    raise translate_error(exc, method, peer, wait) from exc
                _log.debug("%s on %s refused as busy; trying again in %g s", method, peer, pause)
                gevent.sleep(pause)
                pause = min(2 * pause, BUSY_PAUSE_MAX)
            except VolttronError as exc:
                raise translate_error(exc, method, peer, wait) from exc

    def wait(self, result: Any, method: str, peer: str = CONTROL, timeout: float | None = None) -> Any:
        """The value of an ``AsyncResult``, with errors translated (see :func:`translate_error`)."""
        wait = self.settings.timeout if timeout is None else timeout
        try:
            return result.get(timeout=wait)
        except VolttronError as exc:
            raise translate_error(exc, method, peer, wait) from exc

    def channel(self, peer: str = CONTROL, name: str | None = None) -> Any:
        """A new VIP channel to ``peer`` (named randomly unless ``name``)."""
        return self.agent.vip.channel(peer, name)

    def close(self) -> None:
        """Disconnect (says goodbye to the router)."""
        self.agent.core.stop(timeout=5)


def translate_error(exc: BaseException, method: str, peer: str, timeout: float) -> CommandError:
    """The one-line :class:`CommandError` for an error of an RPC call."""
    from volttron.client.vip.agent.errors import (
        MethodNotFound,
        RemoteError,
        ResultTimeout,
        Unauthorized,
        Unreachable,
        VIPError,
    )

    if isinstance(exc, ResultTimeout):
        return CommandError(f"no answer from {peer} to {method} within {timeout:g} s", EXIT_TIMEOUT)
    if isinstance(exc, Unauthorized):
        detail = exc.data.get("detail") if isinstance(exc.data, dict) else None
        return CommandError(f"{method} refused by {peer}: {detail or exc.message}", EXIT_REMOTE)
    if isinstance(exc, MethodNotFound):
        return CommandError(f"{peer} does not offer {method} (is it a compatible platform?)", EXIT_REMOTE)
    if isinstance(exc, RemoteError):
        return CommandError(" ".join(str(exc.detail).split()) or str(exc), EXIT_REMOTE)
    if isinstance(exc, Unreachable):
        return CommandError(f"{peer} is not connected to the platform", EXIT_REMOTE)
    if isinstance(exc, VIPError):
        return CommandError(f"{method} on {peer} failed: {exc}", EXIT_REMOTE)
    return CommandError(" ".join(str(exc).split()), EXIT_ERROR)


def open_connection(settings: ConnectionSettings) -> ControlConnection:
    """Connect as ``settings.identity``; see the module docstring for the checks and exit codes."""
    from volttron.client.runner import build_agent
    from volttron.client.vip.agent.errors import ConnectError

    if settings.is_local:
        check_local_platform(settings.home)
    _quiet_interrupts()
    serverkey = settings.serverkey or _known_serverkey(settings)
    keystore = identity_keystore_path(settings.identity, settings.home)
    if serverkey and not keystore.is_file():
        raise CommandError(
            f"no key store for {settings.identity} at {keystore}: the platform writes it at its first start; "
            "is VOLTTRON_HOME the platform's home?",
            EXIT_ERROR,
        )
    # Only one connection per identity is routed: while another vctl is connected as
    # control.connection the router ignores us, silently. So each attempt waits a short while for
    # the welcome and a new one starts, until the other vctl has left or the timeout is spent.
    deadline = time.monotonic() + settings.timeout
    attempts = 0
    while True:
        attempts += 1
        wait = max(0.1, min(ATTEMPT_SECONDS, deadline - time.monotonic()))
        try:
            agent = build_agent(
                address=settings.address or local_vip_address(settings.home),
                identity=settings.identity,
                serverkey=serverkey,
                timeout=wait,
                volttron_home=str(settings.home),
                enable_channel=True,
                enable_auth=False,  # vctl serves no protected methods
            )
        except ConnectError as exc:
            refused = _REFUSED in str(exc)
            if settings.is_local:
                check_local_platform(settings.home)  # it may have stopped meanwhile
            if not refused and time.monotonic() + 0.1 < deadline:
                continue
            raise PlatformNotRunning(_connect_failure(exc, settings, serverkey, attempts, refused)) from exc
        return ControlConnection(agent, settings)


def _quiet_interrupts() -> None:
    """Ctrl-C is not an error to print: gevent's hub would print a bare ``KeyboardInterrupt`` and a
    timestamp before the exception reaches vctl's one line. It still goes to the main greenlet."""
    import gevent

    hub = gevent.get_hub()
    if not issubclass(KeyboardInterrupt, hub.NOT_ERROR):
        hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)


def _connect_failure(
    exc: BaseException, settings: ConnectionSettings, serverkey: str | None, attempts: int, refused: bool
) -> str:
    text = " ".join(str(exc).split())
    if not settings.is_local and not serverkey:
        hint = f"no server key known for {settings.target}: pass --serverkey or add it to known_hosts"
        return f"{text} ({hint})"
    if refused:
        return text
    if settings.is_local and running_pid(settings.home) is not None and attempts > 1:
        return (
            f"the platform in {settings.home} did not let {settings.identity} in within "
            f"{settings.timeout:g} s: another vctl may be connected (the platform routes one at a time); "
            f"last error: {text}"
        )
    return text


@contextmanager
def connected(settings: ConnectionSettings) -> Iterator[ControlConnection]:
    """``with connected(settings) as connection:`` - closed at the end whatever happens."""
    connection = open_connection(settings)
    try:
        yield connection
    finally:
        connection.close()


def _known_serverkey(settings: ConnectionSettings) -> str | None:
    if settings.address and "serverkey=" in settings.address:
        return None  # the address carries it; the agent reads it from there
    path = known_hosts_path(settings.home)
    if not path.is_file():
        return None
    from volttron.utils.keystore import KnownHosts

    try:
        return KnownHosts(path).serverkey(settings.target)
    except VolttronError as exc:
        raise CommandError(f"cannot read {path}: {exc}", EXIT_ERROR) from exc
