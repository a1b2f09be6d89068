"""Run one agent in a unit test, with no platform: :class:`AgentHarness`.

The idea is nameko's ``worker_factory``: build the agent exactly as ``vip_main`` would (its class
or factory function, a configuration file, an identity), but with a
:class:`~volttron.client.testing.fake_core.FakeCore` and the fake subsystems of
:mod:`volttron.client.testing.fake_subsystems` in place of the connection. Then drive it::

    harness = AgentHarness(MyAgent, config={"setting1": 2}, identity="my.agent")
    harness.start()                  # onsetup, onstart, the initial configuration callbacks
    harness.pubsub.deliver("devices/a", {"t": 1})
    harness.rpc.invoke("rpc_method", 1, 2)
    harness.config_store.set("config", {"setting1": 3})
    harness.advance(60)              # one minute of timers (heartbeat, @Core.schedule, ...)
    harness.stop()                   # onstop, onfinish

Everything runs in the test's greenlet, in order, and an exception raised by agent code (a
receiver, a callback, a timer, a configuration callback) reaches the test. The ``agent_harness``
pytest fixture makes harnesses and stops them after the test.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

from volttron.client.known_identities import CONFIGURATION_STORE
from volttron.client.testing.clock import FakeClock
from volttron.client.testing.fake_config_store import FakeConfigStoreService
from volttron.client.testing.fake_core import FakeCore
from volttron.client.testing.fake_subsystems import FakeSubsystems
from volttron.client.vip.agent import agent as agent_module
from volttron.client.vip.agent.decorators import collect_annotations
from volttron.utils.errors import VolttronError

_CALLBACK_LOGGERS = ("volttron.client.vip.agent.subsystems.configstore",)


class HarnessError(VolttronError):
    """The harness was used wrongly, or could not build the agent."""


class AgentCallbackError(VolttronError):
    """Agent code called by the platform machinery failed (the platform would only log it)."""


class AgentHarness:
    """One agent under test; see the module docstring.

    ``agent_factory`` is the agent class or a factory function, called as ``vip_main`` calls it:
    ``agent_factory(config_path=..., identity=..., volttron_home=..., **agent_kwargs)``.
    ``config`` is the agent's configuration file: a mapping (written as JSON), a path, or None.
    ``config_store`` holds the configurations stored in the platform for this agent.
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
        self.clock = FakeClock()
        self.config_store = FakeConfigStoreService(config_store)
        self.started = False
        self.stopped = False
        self._stopping = False
        self.agent = self._build(agent_factory, identity, instance_name, agent_kwargs)
        self.core.stop_callback = self.stop
        self.rpc.add_peer(CONFIGURATION_STORE, self.config_store.rpc_methods())
        update = self.rpc.exports.get("config.update")
        self.config_store.connect(None if update is None else self._guarded(update))

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
        core_class = functools.partial(FakeCore, clock=self.clock)
        kwargs.setdefault("instance_name", instance_name)
        with (
            mock.patch.object(agent_module, "Core", core_class),
            mock.patch.object(agent_module, "Subsystems", FakeSubsystems),
        ):
            agent = factory(
                config_path=self.config_path,
                identity=identity,
                volttron_home=str(self.volttron_home),
                **kwargs,
            )
        if not isinstance(getattr(agent, "core", None), FakeCore):
            raise HarnessError(
                f"{getattr(factory, '__name__', factory)!r} did not build an agent through "
                "volttron.client.vip.agent.Agent (agent.core is not the harness's)"
            )
        return agent

    # ----- the agent's parts

    @property
    def core(self) -> FakeCore:
        """The agent's :class:`FakeCore`."""
        return self.agent.core

    @property
    def pubsub(self) -> Any:
        """``agent.vip.pubsub`` (a :class:`~volttron.client.testing.fake_pubsub.FakePubSub`)."""
        return self.agent.vip.pubsub

    @property
    def rpc(self) -> Any:
        """``agent.vip.rpc`` (a :class:`~volttron.client.testing.fake_rpc.FakeRPC`)."""
        return self.agent.vip.rpc

    @property
    def config(self) -> Any:
        """``agent.vip.config``: the agent's real configuration subsystem (None with enable_store=False)."""
        return self.agent.vip.config

    @property
    def health(self) -> Any:
        """``agent.vip.health``."""
        return self.agent.vip.health

    @property
    def heartbeat(self) -> Any:
        """``agent.vip.heartbeat``."""
        return self.agent.vip.heartbeat

    def heartbeats(self) -> list[Any]:
        """The heartbeats published so far (publications on ``heartbeat/<identity>``)."""
        topic = self.heartbeat.topic()
        return [p for p in self.pubsub.published if p.topic == topic]

    # ----- life cycle

    def start(self) -> AgentHarness:
        """Run the agent's start-up as the platform would, up to its initial configuration callbacks."""
        if self.started:
            raise HarnessError("the agent has already been started")
        self.started = True
        core = self.core
        notes = collect_annotations(self.agent)
        with self._reraise_callback_failures():
            for method, signal in notes.get("core.signals", ()):
                getattr(core, signal).connect(method, self.agent)
            for method, (deadline, args, kwargs) in notes.get("core.schedule", ()):
                core.schedule(deadline, method, *args, **kwargs)
            for method, (period, args, kwargs, wait) in notes.get("core.periodic", ()):
                core.periodic(period, method, args, kwargs, wait)
            for extension in core.extensions:
                extension.on_setup(notes)
            core.onsetup.send(core)
            core.connected = True
            for extension in core.extensions:
                extension.on_connected()
            core.onconnected.send(core)
            for extension in core.extensions:
                extension.on_start()
            self.clock.start()
            core.onstart.send(core)
            core.configuration.send(core)
        return self

    def stop(self) -> None:
        """Stop the agent: timers cancelled, ``onstop`` receivers, subsystems stopped, ``onfinish``."""
        if self.stopped or self._stopping:
            return
        self._stopping = True
        core = self.core
        core.stopping = True
        try:
            with self._reraise_callback_failures():
                self.clock.stop()
                if self.started:
                    core.onstop.send(core)
                    for extension in reversed(core.extensions):
                        extension.on_stop()
                core.connected = False
                core.kill_greenlets()
                core.onfinish.send(core)
        finally:
            self.stopped = True

    def advance(self, seconds: float = 0.0) -> int:
        """Let ``seconds`` pass on the agent's clock and run the timer calls due; returns how many ran."""
        if not self.started:
            raise HarnessError("start the agent before advancing its clock")
        with self._reraise_callback_failures():
            return self.clock.advance(seconds)

    def wait_spawned(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` seconds for the greenlets agent code spawned to finish."""
        import gevent

        greenlets = self.core.greenlets
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
            if not self.stopped:
                self.stop()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> AgentHarness:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _guarded(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._reraise_callback_failures():
                return function(*args, **kwargs)

        return call

    @contextlib.contextmanager
    def _reraise_callback_failures(self) -> Iterator[None]:
        """Configuration callbacks' failures are logged by the real subsystem; raise them instead."""
        handler = _FailureCollector()
        loggers = [logging.getLogger(name) for name in _CALLBACK_LOGGERS]
        for logger in loggers:
            logger.addHandler(handler)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
        if handler.failures:
            record = handler.failures[0]
            error = record.exc_info[1] if record.exc_info else None
            raise AgentCallbackError(f"{record.getMessage()}: {error!r}") from error


class _FailureCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.failures.append(record)
