"""Client unit tests run agents on the in-memory bus of the testing kit.

:mod:`volttron.client.testing.memory_bus` has the router and the connection (``router.log`` keeps
every message for assertions); the fixtures here start agents on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.event
import pytest

from volttron.client.testing.memory_bus import MemoryConnection, MemoryRouter
from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import Agent


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """:func:`wait_until` for tests (conftest modules cannot be imported by name)."""
    return wait_until


@pytest.fixture
def memory() -> SimpleNamespace:
    """The classes of this module: ``memory.MemoryRouter``, ``memory.MemoryConnection``."""
    return SimpleNamespace(MemoryRouter=MemoryRouter, MemoryConnection=MemoryConnection)


@pytest.fixture
def router() -> MemoryRouter:
    return MemoryRouter()


@pytest.fixture
def start_agent(router: MemoryRouter) -> Iterator[Callable[..., Agent]]:
    """``start_agent(identity, agent_class=Agent, wait=True, **kwargs)`` -> a running agent."""
    started: list[Agent] = []

    def start(identity: str, agent_class: type[Agent] = Agent, wait: bool = True, **kwargs: Any) -> Agent:
        kwargs.setdefault("heartbeat_autostart", False)
        kwargs.setdefault("enable_store", False)
        kwargs.setdefault("enable_auth", False)
        kwargs.setdefault("address", "inproc://memory")
        agent = agent_class(identity=identity, connection_factory=router.factory, **kwargs)
        event = gevent.event.Event()
        gevent.spawn(agent.core.run, event)
        started.append(agent)
        if wait:
            assert event.wait(5), f"agent {identity} not started"
        return agent

    yield start
    for agent in started:
        agent.core.stop(timeout=5)
