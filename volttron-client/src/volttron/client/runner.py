"""Running agents: :func:`vip_main` for an agent's ``main()``, :func:`build_agent` for tools.

Neither monkey-patches the interpreter. An agent whose methods call blocking libraries (sockets,
``time.sleep``, ``requests``) should make ``from gevent import monkey; monkey.patch_all()`` the
first statement of its own entry point, or use gevent's cooperative equivalents.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

import gevent
from gevent.event import Event

from volttron.client.credentials import default_address, keystore_candidates, resolve_credentials
from volttron.client.vip.agent.agent import Agent, auth_enabled_from_env
from volttron.client.vip.agent.errors import ConnectError
from volttron.utils.errors import VolttronError
from volttron.utils.home import get_home, known_hosts_path

_log = logging.getLogger(__name__)

EXIT_FAILURE = 1


def vip_main(
    agent_class: type[Agent], identity: str | None = None, version: str = "0.1", **kwargs: Any
) -> None:
    """Run ``agent_class`` until it stops or the process gets SIGINT/SIGTERM (docs/protocol.md §4.2).

    The environment is read now: ``AGENT_CONFIG``, ``AGENT_VIP_IDENTITY`` (wins over
    ``identity``), ``AGENT_PUBLICKEY``, ``AGENT_SECRETKEY``, ``VOLTTRON_SERVERKEY`` (keyword
    arguments win), ``AGENT_UUID``, ``VOLTTRON_HOME``, ``VOLTTRON_VIP_ADDR``, ``MESSAGEBUS``. When
    the platform did not launch the agent and keys are missing, they are read from
    ``$VOLTTRON_HOME/keystores/<identity>/keystore.json`` and ``known_hosts``. Failing that, or
    when the platform cannot be reached, the process exits with status 1 and one line on stderr.
    """
    env = os.environ
    try:
        agent = _make_agent(agent_class, identity, version, env, kwargs)
    except VolttronError as exc:
        _exit_with(str(exc))
    agent.core.log_failures = False
    greenlet = gevent.spawn(agent.core.run)
    interrupts = []

    def on_signal(signum: int) -> None:
        interrupts.append(signum)
        if len(interrupts) == 1:
            _log.info("signal %d: stopping %s", signum, agent.core.identity)
            gevent.spawn(agent.core.stop)
        else:
            _exit_with(f"signal {signum} again: exiting without a clean stop", code=128 + signum, hard=True)

    handlers = [gevent.signal_handler(sig, on_signal, sig) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        greenlet.join()
    finally:
        for handler in handlers:
            handler.cancel()
    if agent.core.failure is not None:
        _exit_with(str(agent.core.failure))
    if not greenlet.successful() and greenlet.exception is not None:
        raise greenlet.exception


def _make_agent(
    agent_class: type[Agent],
    identity: str | None,
    version: str,
    env: Mapping[str, str],
    kwargs: dict[str, Any],
) -> Agent:
    identity = env.get("AGENT_VIP_IDENTITY") or identity
    home = str(get_home(env))
    volttron_home = kwargs.pop("volttron_home", None) or home
    address = kwargs.pop("address", None) or default_address(volttron_home, env)
    publickey = kwargs.pop("publickey", None) or env.get("AGENT_PUBLICKEY")
    secretkey = kwargs.pop("secretkey", None) or env.get("AGENT_SECRETKEY")
    serverkey = kwargs.pop("serverkey", None) or env.get("VOLTTRON_SERVERKEY")
    launched = bool(env.get("_LAUNCHED_BY_PLATFORM"))
    if not launched and auth_enabled_from_env(env) and not address.startswith("inproc://"):
        if not identity:
            raise ConnectError(
                "an identity is needed to find this agent's keys: set AGENT_VIP_IDENTITY "
                "or pass identity=, or set AGENT_PUBLICKEY/AGENT_SECRETKEY/VOLTTRON_SERVERKEY"
            )
        credentials = resolve_credentials(
            identity, address, publickey, secretkey, serverkey, volttron_home, env
        )
        missing = credentials.missing()
        if missing:
            raise ConnectError(_missing_keys_message(identity, missing, volttron_home, credentials.address))
        publickey, secretkey, serverkey = credentials.publickey, credentials.secretkey, credentials.serverkey
    return agent_class(
        config_path=env.get("AGENT_CONFIG"),
        identity=identity,
        address=address,
        agent_uuid=env.get("AGENT_UUID"),
        volttron_home=volttron_home,
        version=version,
        message_bus=env.get("MESSAGEBUS") or "zmq",
        publickey=publickey,
        secretkey=secretkey,
        serverkey=serverkey,
        **kwargs,
    )


def _missing_keys_message(identity: str, missing: list[str], home: str, address: str) -> str:
    parts = []
    if "publickey" in missing or "secretkey" in missing:
        stores = " or ".join(str(p) for p in keystore_candidates(identity, home))
        parts.append(f"no key pair (AGENT_PUBLICKEY/AGENT_SECRETKEY, or {stores})")
    if "serverkey" in missing:
        parts.append(f"no server key for {address} (VOLTTRON_SERVERKEY, or {known_hosts_path(home)})")
    return f"cannot run agent {identity!r} outside the platform: " + "; ".join(parts)


def _exit_with(message: str, code: int = EXIT_FAILURE, hard: bool = False) -> None:
    sys.stderr.write(f"{os.path.basename(sys.argv[0]) or 'agent'}: error: {message}\n")
    sys.stderr.flush()
    if hard:
        os._exit(code)
    sys.exit(code)


A = TypeVar("A", bound=Agent)


@overload
def build_agent(
    address: str | None = None,
    identity: str | None = None,
    publickey: str | None = None,
    secretkey: str | None = None,
    timeout: float = 10,
    serverkey: str | None = None,
    *,
    agent_class: Callable[..., A],
    **kwargs: Any,
) -> A: ...


@overload
def build_agent(
    address: str | None = None,
    identity: str | None = None,
    publickey: str | None = None,
    secretkey: str | None = None,
    timeout: float = 10,
    serverkey: str | None = None,
    agent_class: Callable[..., Agent] = Agent,
    **kwargs: Any,
) -> Agent: ...


def build_agent(
    address: str | None = None,
    identity: str | None = None,
    publickey: str | None = None,
    secretkey: str | None = None,
    timeout: float = 10,
    serverkey: str | None = None,
    agent_class: Callable[..., Agent] = Agent,
    **kwargs: Any,
) -> Agent:
    """A connected agent running in a greenlet, for scripts and tools (docs/protocol.md §4.1).

    The agent does not fetch configurations or publish heartbeats unless asked
    (``enable_store=True``, ``heartbeat_autostart=True``). Stop it with ``agent.core.stop()``.
    Raises :class:`~volttron.client.vip.agent.errors.ConnectError` saying why when it is not
    welcomed within ``timeout`` seconds.
    """
    kwargs.setdefault("enable_store", False)
    kwargs.setdefault("heartbeat_autostart", False)
    agent = agent_class(
        address=address,
        identity=identity,
        publickey=publickey,
        secretkey=secretkey,
        serverkey=serverkey,
        **kwargs,
    )
    core = agent.core
    core.welcome_timeout = float(timeout)
    core.log_failures = False
    running = Event()
    greenlet = gevent.spawn(core.run, running)
    waitables: list[Any] = [running, greenlet]
    gevent.wait(waitables, timeout=timeout + 1.0, count=1)
    if running.is_set():
        return agent
    core.stop(timeout=5)
    greenlet.kill(block=True, timeout=5)
    if core.failure is not None:
        raise core.failure
    if greenlet.exception is not None:
        raise ConnectError(
            f"agent {core.identity!r} failed to start: {greenlet.exception}"
        ) from greenlet.exception
    raise ConnectError(f"agent {core.identity!r} was not connected to {core.address} within {timeout:g} s")
