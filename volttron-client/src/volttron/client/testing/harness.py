"""Run one agent in a unit test, with no platform: :class:`AgentHarness`.

The idea is nameko's ``worker_factory``: build the agent exactly as ``vip_main`` would (its class
or factory function, a configuration file, an identity) and run it, real ``Core`` and real
subsystems, on an in-memory router (:mod:`volttron.client.testing.memory_bus`) and a clock the test
advances (:class:`~volttron.client.testing.clock.ManualClock`). The platform's side is played by
peers in the test process: the configuration store, ``platform.auth``, and whatever peers the test
answers for (:mod:`volttron.client.testing.services`). Then drive it::

    harness = AgentHarness(MyAgent, config={"setting1": 2}, identity="my.agent")
    harness.start()                  # onsetup, onstart, the initial configuration callbacks
    harness.pubsub.deliver("devices/a", {"t": 1})
    harness.rpc.invoke("rpc_method", 1, 2)
    harness.config_store.set("config", {"setting1": 3})
    harness.advance(60)              # one minute of timers (heartbeat, @Core.schedule, ...)
    harness.stop()                   # onstop, onfinish

Each of these returns once the agent has done what it was given and waits again (the router has
nothing left for it, its pub/sub queue is empty); an exception raised by agent code (a receiver, a
callback, a timer, a configuration callback), which the platform would only log, is raised in the
test as :class:`AgentCallbackError`. The ``agent_harness`` pytest fixture makes harnesses and stops
them after the test.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

from volttron.client.known_identities import CONFIGURATION_STORE
from volttron.client.testing.clock import ManualClock
from volttron.client.testing.controls import PubSubControl, RpcControl
from volttron.client.testing.memory_bus import MemoryConnection, MemoryRouter
from volttron.client.testing.services import MemoryAuthService, MemoryConfigStore
from volttron.client.vip.agent.core import Core
from volttron.client.vip.agent.errors import ResultTimeout
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.configstore import SYNC_CAPABILITY
from volttron.utils.errors import VolttronError

_CALLBACK_LOGGERS = tuple(
    f"volttron.client.vip.agent.{name}"
    for name in ("subsystems.configstore", "subsystems.pubsub", "dispatch", "scheduler", "tasks", "core")
)
QUIET_TURNS = 5
"""Turns of the gevent loop with nothing happening after which the agent is taken to be waiting."""
START_TIMEOUT = 30.0


class HarnessError(VolttronError):
    """The harness was used wrongly, or could not build the agent."""


class AgentCallbackError(VolttronError):
    """Agent code called by the platform machinery failed (the platform would only log it)."""


class AgentHarness:
    """One agent under test; see the module docstring.

    ``agent_factory`` is the agent class or a factory function, called as ``vip_main`` calls it:
    ``agent_factory(config_path=..., identity=..., volttron_home=..., **agent_kwargs)``, plus the
    ``connection_factory`` and ``clock`` keywords that ``Agent`` takes. ``config`` is the agent's
    configuration file: a mapping (written as JSON), a path, or None. ``config_store`` holds the
    configurations stored in the platform for this agent.
    """

    def __init__(
        self,
        agent_factory: Callable[..., Any],
        *,
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        identity: str = "test.agent",
        config_store: Mapping[str, Any] | None = None,
        instance_name: str = "test_instance",
        workdir: str | os.PathLike[str] | None = None,
        **agent_kwargs: Any,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="volttron-harness-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.volttron_home = self.workdir / "volttron_home"
        self.volttron_home.mkdir(parents=True, exist_ok=True)
        self.config_path = self._config_file(config)
        self.clock = ManualClock(settle=self.settle)
        """The agent's clock: :meth:`advance` moves it."""
        self.router = MemoryRouter()
        """The in-memory router the agent is connected to (``router.log`` has every message)."""
        self.router.query_values["instance-name"] = agent_kwargs.get("instance_name", instance_name)
        self.config_store = MemoryConfigStore(self.router, config_store)
        """``platform.config_store``: the test plays the operator with ``set``/``delete``."""
        self.config_store.waiter = self._wait_push
        self.auth = MemoryAuthService(self.router, {CONFIGURATION_STORE: {SYNC_CAPABILITY: None}})
        """``platform.auth``: its ``table`` gives users their capabilities."""
        self.pubsub = PubSubControl(self)
        """Deliver publications to the agent and read what it published."""
        self.rpc = RpcControl(self)
        """Call the agent's exported methods and answer its calls."""
        self.started = False
        self._stop_done = False
        self._stopping = False
        self._greenlet: gevent.Greenlet[..., Any] | None = None
        self._driving = 0
        self._failures: list[logging.LogRecord] = []
        self.agent = self._build(agent_factory, identity, instance_name, agent_kwargs)
        self.config_store.agent = self.core.identity

    # ----- building

    def _config_file(self, config: Mapping[str, Any] | str | os.PathLike[str] | None) -> str | None:
        if config is None:
            return None
        if isinstance(config, Mapping):
            path = self.workdir / "config"
            path.write_text(json.dumps(dict(config), indent=2))
            return str(path)
        path = Path(config)
        if not path.is_file():
            raise HarnessError(f"configuration file {path} does not exist")
        return str(path)

    def _build(
        self, factory: Callable[..., Any], identity: str, instance_name: str, kwargs: dict[str, Any]
    ) -> Any:
        connect: Any = functools.partial(MemoryConnection, router=self.router)
        connect.uses_curve_keys = False  # the memory bus authenticates nobody
        kwargs.setdefault("instance_name", instance_name)
        agent = factory(
            config_path=self.config_path,
            identity=identity,
            volttron_home=str(self.volttron_home),
            connection_factory=connect,
            clock=self.clock,
            **kwargs,
        )
        core = getattr(agent, "core", None)
        if not isinstance(core, Core) or core.clock is not self.clock:
            raise HarnessError(
                f"{getattr(factory, '__name__', factory)!r} did not build an agent through "
                "volttron.client.vip.agent.Agent with the connection_factory and clock it was given"
            )
        return agent

    # ----- the agent's parts

    @property
    def core(self) -> Core:
        """The agent's (real) core."""
        core: Core = self.agent.core
        return core

    @property
    def config(self) -> Any:
        """``agent.vip.config``: the agent's configuration subsystem (None with enable_store=False)."""
        return self.agent.vip.config

    @property
    def health(self) -> Any:
        """``agent.vip.health``."""
        return self.agent.vip.health

    @property
    def heartbeat(self) -> Any:
        """``agent.vip.heartbeat``."""
        return self.agent.vip.heartbeat

    @property
    def stopped(self) -> bool:
        """True once the agent has finished (stopped by the test or by itself)."""
        return self._stop_done or (self.started and self.core.wait_finished(0))

    def heartbeats(self) -> list[Any]:
        """The heartbeats published so far (publications on ``heartbeat/<identity>``)."""
        topic = self.heartbeat.topic()
        return [p for p in self.pubsub.published if p.topic == topic]

    # ----- life cycle

    def start(self) -> AgentHarness:
        """Run the agent up to its first welcome, then until its start-up work is done."""
        if self.started:
            raise HarnessError("the agent has already been started")
        self.started = True
        running = Event()
        with self.driving():
            self._greenlet = gevent.spawn(self.core.run, running)
            waitables: list[Any] = [running, self._greenlet]
            gevent.wait(waitables, count=1, timeout=START_TIMEOUT)
            if not running.is_set():
                raise HarnessError(f"the agent did not start: {self.core.failure or 'no welcome'}")
            self.settle()
        return self

    def stop(self) -> None:
        """Stop the agent: timers cancelled, ``onstop`` receivers, subsystems stopped, ``onfinish``."""
        if self._stop_done or self._stopping:
            return
        self._stopping = True
        try:
            if self.started and not self.core.wait_finished(0):
                with self.driving():
                    self.core.stop(timeout=START_TIMEOUT)
        finally:
            self._stop_done = True

    def advance(self, seconds: float = 0.0) -> int:
        """Let ``seconds`` pass on the agent's clock, running the timers due; returns how many ran."""
        if not self.started:
            raise HarnessError("start the agent before advancing its clock")
        with self.driving():
            ran = self.clock.advance(seconds)
            if self.core.stopping:  # a timer stopped the agent: let it finish
                self.core.wait_finished(START_TIMEOUT)
        return ran

    def wait_spawned(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` seconds for the greenlets agent code spawned to finish.

        Greenlets waiting on the agent's clock (``spawn_later``, timers) wait for :meth:`advance`
        and are not waited for.
        """
        on_clock = self.clock.sleeping()
        greenlets = [g for g in self.core.greenlets if g not in on_clock]
        done = gevent.joinall(greenlets, timeout=timeout)
        if len(done) != len(greenlets):
            raise HarnessError(
                f"{len(greenlets) - len(done)} spawned greenlet(s) still running after {timeout} s"
            )
        for greenlet in greenlets:
            if greenlet.exception is not None:
                raise greenlet.exception

    def close(self) -> None:
        """Stop the agent (if running) and remove the temporary folder the harness made."""
        try:
            self.stop()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> AgentHarness:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ----- running the agent from the test

    def settle(self, timeout: float = 10.0) -> None:
        """Let the agent run until it waits: nothing for it on the router, nothing changing.

        Bounded by ``timeout`` seconds of real time (a greenlet that never waits keeps it busy).
        """
        deadline = time.monotonic() + timeout
        quiet, last = 0, None
        while quiet < QUIET_TURNS and time.monotonic() < deadline:
            gevent.sleep(0)
            state = self._activity()
            quiet = quiet + 1 if state == last and not self.router.busy() and not state[1] else 0
            last = state
        if self._driving == 0:
            self._raise_failures()

    def _activity(self) -> tuple[Any, ...]:
        deliveries = self.agent.vip.pubsub.statistics()["deliveries"]
        return (
            len(self.router.log),
            deliveries["queued"],
            deliveries["done"],
            len(self.core.greenlets),
            len(self.clock.pending()),
        )

    def wait(self, result: AsyncResult, timeout: float, what: str) -> Any:
        """The value of ``result``, waited for up to ``timeout`` seconds of real time."""
        try:
            return result.get(timeout=timeout)
        except ResultTimeout:
            raise HarnessError(
                f"no {what} within {timeout} s: the agent may be waiting on its clock (advance it) "
                "or on a peer nobody answers for (harness.rpc.respond)"
            ) from None

    def _wait_push(self, result: AsyncResult) -> None:
        with self.driving():
            self.wait(result, START_TIMEOUT, "answer to the configuration push")
            self.settle()

    @contextlib.contextmanager
    def driving(self) -> Iterator[None]:
        """While the test drives the agent: failures agent code only logs are raised at the end."""
        handler = _FailureCollector(self._failures)
        loggers = [logging.getLogger(name) for name in _CALLBACK_LOGGERS] if self._driving == 0 else []
        for logger in loggers:
            logger.addHandler(handler)
        self._driving += 1
        try:
            yield
        finally:
            self._driving -= 1
            for logger in loggers:
                logger.removeHandler(handler)
        if self._driving == 0:
            self._raise_failures()

    def _raise_failures(self) -> None:
        if self._failures:
            record = self._failures[0]
            self._failures.clear()
            error = record.exc_info[1] if record.exc_info else None
            raise AgentCallbackError(f"{record.getMessage()}: {error!r}") from error


class _FailureCollector(logging.Handler):
    def __init__(self, failures: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.failures = failures

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.failures.append(record)
