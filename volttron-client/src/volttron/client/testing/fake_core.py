"""``agent.core`` in a unit test: the agent's identity, signals and timers with no connection.

:class:`FakeCore` takes the place of :class:`~volttron.client.vip.agent.core.Core` when an
:class:`~volttron.client.testing.harness.AgentHarness` builds an agent. It has the attributes and
methods agent code uses (``identity``, ``version()``, ``schedule``, ``periodic``, ``spawn``,
``spawn_later``, ``stop``, the signals ...). Timers follow the harness's
:class:`~volttron.client.testing.clock.FakeClock`; ``spawn`` starts real greenlets, killed when the
agent stops. ``stop()`` asks the harness to stop the agent, as the real core would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.pool import Group

from volttron.client.testing.clock import FakeClock, FakeTimer
from volttron.client.vip.agent.dispatch import Signal
from volttron.client.vip.agent.tasks import SIGNALS
from volttron.utils.errors import VolttronError

if TYPE_CHECKING:
    from volttron.client.vip.agent.subsystems.base import SubsystemBase


class NoMessageBusError(VolttronError):
    """Agent code tried to send a raw VIP message; unit tests have no message bus."""


class FakeCore:
    """See the module docstring. Built with the keyword arguments the real ``Core`` takes."""

    def __init__(
        self,
        owner: Any,
        address: str | None = None,
        identity: str | None = None,
        context: Any = None,
        publickey: str | None = None,
        secretkey: str | None = None,
        serverkey: str | None = None,
        volttron_home: str | None = None,
        agent_uuid: str | None = None,
        reconnect_interval: float | None = None,
        version: str = "0.1",
        instance_name: str | None = None,
        messagebus: str | None = None,
        connection_factory: Any = None,
        *,
        clock: FakeClock | None = None,
    ) -> None:
        self.owner = owner
        self._identity = identity or str(uuid.uuid4())
        self.address = address
        self.publickey = publickey
        self.serverkey = serverkey
        self._volttron_home = volttron_home
        self.agent_uuid = agent_uuid
        self._version = version
        self.instance_name = instance_name
        self.messagebus = messagebus or "zmq"
        self.clock = clock or FakeClock()
        for name in SIGNALS:
            setattr(self, name, Signal(name))
        self.extensions: list[SubsystemBase] = []
        self.connected = False
        self.stopping = False
        self.failure: BaseException | None = None
        self.stop_requests = 0
        """How many times agent code called ``core.stop()``."""
        self.stop_callback: Callable[[], None] | None = None
        self._group = Group()

    @property
    def identity(self) -> str:
        """The agent's VIP identity."""
        return self._identity

    @property
    def volttron_home(self) -> str:
        """The home given to the agent (the harness's temporary one)."""
        return str(self._volttron_home or "")

    def version(self) -> str:
        """The agent's version string."""
        return self._version

    # ----- what subsystems call

    def register(self, name: str, handler: Any, error_handler: Any = None) -> None:
        """Accepted and ignored: no message ever arrives in a unit test."""

    def add_extension(self, extension: SubsystemBase) -> None:
        """A subsystem whose life-cycle hooks the harness calls as the real core would."""
        self.extensions.append(extension)

    def send_vip(self, peer: str, subsystem: str, *args: Any, **kwargs: Any) -> None:
        """Refused: use the fake subsystems, or an integration test with a real platform."""
        raise NoMessageBusError(
            f"a unit-test agent has no message bus (tried to send on {subsystem!r} to {peer!r}); "
            "use the volttron_platform fixture for that"
        )

    def send_reply(self, message: Any) -> None:
        """Refused like :meth:`send_vip`."""
        self.send_vip(message.peer, message.subsystem)

    # ----- timers and greenlets

    def schedule(self, deadline: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> FakeTimer:
        """Call ``func`` at ``deadline`` (datetime, epoch seconds, or an iterator) on the test clock."""
        return self.clock.add(FakeTimer(func, args, kwargs, schedule=deadline))

    def periodic(
        self,
        period: float,
        func: Callable[..., Any],
        args: Any = None,
        kwargs: Any = None,
        wait: float | None = 0,
    ) -> FakeTimer:
        """Call ``func`` every ``period`` seconds of the test clock (first call per ``wait``)."""
        if period <= 0:
            raise ValueError(f"period must be positive, not {period!r}")
        timer = FakeTimer(func, tuple(args or ()), dict(kwargs or {}), period=float(period), wait=wait)
        return self.clock.add(timer)

    def spawn_later(self, seconds: float, func: Callable[..., Any], *args: Any, **kwargs: Any) -> FakeTimer:
        """Call ``func`` once, ``seconds`` later on the test clock."""
        return self.clock.add(FakeTimer(func, args, kwargs, delay=float(seconds)))

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet:
        """Run ``func`` in a real greenlet, killed when the agent stops."""
        return self._group.spawn(func, *args, **kwargs)

    def spawn_in_thread(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking ``func`` in gevent's thread pool."""
        return gevent.get_hub().threadpool.spawn(func, *args, **kwargs)

    def send_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``func`` in a greenlet of the agent."""
        self.spawn(func, *args, **kwargs)

    @property
    def greenlets(self) -> list[gevent.Greenlet]:
        """Greenlets started with :meth:`spawn` that are still alive."""
        return [g for g in self._group if not g.dead]

    def kill_greenlets(self) -> None:
        """Kill what :meth:`spawn` started (the harness does this when the agent stops)."""
        current = gevent.getcurrent()
        for greenlet in list(self._group):
            if greenlet is not current:
                greenlet.kill(block=True, timeout=5)

    # ----- stopping

    def stop(self, timeout: float | None = None) -> None:
        """Stop the agent: the harness runs ``onstop`` and ``onfinish`` (once)."""
        self.stop_requests += 1
        if self.stop_callback is not None:
            self.stop_callback()

    def statistics(self) -> dict[str, Any]:
        """A small status summary."""
        return {
            "identity": self._identity,
            "connected": self.connected,
            "greenlets": len(self.greenlets),
            "timers": len(self.clock.pending()),
        }
