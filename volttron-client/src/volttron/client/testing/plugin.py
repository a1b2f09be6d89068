"""The ``volttron`` pytest plugin: fixtures for agent developers, installed with ``volttron-client``.

Registered through the ``pytest11`` entry point, so any project that has ``volttron-client``
installed gets these fixtures with no ``conftest.py``:

``agent_harness``
    A factory of :class:`~volttron.client.testing.harness.AgentHarness` (unit tests, no platform):
    ``agent_harness(MyAgent, config={...}, identity="my.agent", config_store={...})``. Every
    harness it made is stopped after the test.
``volttron_platform``
    A started :class:`~volttron.client.testing.platform.VolttronPlatform` in a temporary home,
    stopped after the test. It runs on each bus named by ``--volttron-message-bus`` (``zmq`` by
    default; ``rmq`` or ``all``), as separate test cases. Skipped, with the reason, when
    ``volttron-server`` is not installed or RabbitMQ is not reachable.
``volttron_platform_factory``
    ``volttron_platform_factory(message_bus="zmq", auth=True, start=True, **options)`` for tests
    that need several platforms or other options.

Importing this module loads only pytest and the standard library: gevent and ZeroMQ are imported
by a fixture when a test uses it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BUSES = ("zmq", "rmq")
_REQUIRE_RABBITMQ = "VOLTTRON_TEST_REQUIRE_RABBITMQ"


_REQUIRE_ROOT = "VOLTTRON_TEST_REQUIRE_ROOT"


def _env_flag(name: str) -> bool:
    import os

    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _rabbitmq_required() -> bool:
    return _env_flag(_REQUIRE_RABBITMQ)


def root_required() -> bool:
    """True when ``VOLTTRON_TEST_REQUIRE_ROOT=1``: tests that need root then fail without it, never skip."""
    return _env_flag(_REQUIRE_ROOT)


def skip_or_fail(reason: str, required: bool) -> None:
    """Skip the running test with ``reason``, or fail it when the requirement is ``required``."""
    if required:
        pytest.fail(f"{reason} (and the run requires it)", pytrace=False)
    pytest.skip(reason)


_OPTION = "--volttron-message-bus"


def pytest_configure(config: pytest.Config) -> None:
    """Register ``@pytest.mark.requires_root(reason)``."""
    config.addinivalue_line(
        "markers",
        "requires_root(reason): needs root; skipped without it, failed when VOLTTRON_TEST_REQUIRE_ROOT=1",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or fail, see :func:`root_required`) a ``requires_root`` test that runs without root."""
    import os

    marker = item.get_closest_marker("requires_root")
    if marker is None or os.geteuid() == 0:
        return
    reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "needs root")
    skip_or_fail(f"not root: {reason}", root_required())


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--volttron-message-bus``: the buses ``volttron_platform`` runs on."""
    group = parser.getgroup("volttron", "VOLTTRON agent testing")
    group.addoption(
        _OPTION,
        default="zmq",
        choices=(*BUSES, "all"),
        help="message bus of the volttron_platform fixture: zmq (default), rmq, or all (each in turn)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests that use ``volttron_platform`` once per chosen bus."""
    if "volttron_message_bus" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else ""
        names = names.split(",") if isinstance(names, str) else list(names)
        if "volttron_message_bus" in (n.strip() for n in names):
            return  # the test chose its buses itself
    chosen = metafunc.config.getoption(_OPTION, default="zmq")
    buses = list(BUSES) if chosen == "all" else [chosen]
    metafunc.parametrize("volttron_message_bus", buses, indirect=True, scope="function")


@pytest.fixture
def volttron_message_bus(request: pytest.FixtureRequest) -> str:
    """The bus the ``volttron_platform`` of this test runs on."""
    bus: str = getattr(request, "param", None) or request.config.getoption(_OPTION, default="zmq")
    return bus


@pytest.fixture
def agent_harness(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """A factory of unit-test harnesses; see the module docstring."""
    from volttron.client.testing.harness import AgentHarness

    made: list[AgentHarness] = []
    counter = itertools.count(1)

    def make(agent_factory: Callable[..., Any], **options: Any) -> AgentHarness:
        options.setdefault("workdir", tmp_path / f"harness-{next(counter)}")
        harness = AgentHarness(agent_factory, **options)
        made.append(harness)
        return harness

    yield make
    for harness in reversed(made):
        harness.close()


@pytest.fixture
def volttron_platform_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """A factory of real platforms in temporary homes; see the module docstring."""
    from volttron.client.testing.errors import PlatformUnavailable
    from volttron.client.testing.platform import VolttronPlatform

    made: list[VolttronPlatform] = []
    counter = itertools.count(1)

    def make(message_bus: str = "zmq", start: bool = True, **options: Any) -> VolttronPlatform:
        platform = VolttronPlatform(
            tmp_path / f"platform-{next(counter)}", message_bus=message_bus, **options
        )
        made.append(platform)
        if start:
            try:
                platform.start()
            except PlatformUnavailable as exc:
                if message_bus == "rmq" and _rabbitmq_required():
                    pytest.fail(f"{exc} and {_REQUIRE_RABBITMQ}=1", pytrace=False)
                pytest.skip(str(exc))
        return platform

    yield make
    for platform in reversed(made):
        platform.close()


@pytest.fixture
def volttron_platform(volttron_platform_factory: Callable[..., Any], volttron_message_bus: str) -> Any:
    """A running platform on ``volttron_message_bus``; see the module docstring."""
    return volttron_platform_factory(message_bus=volttron_message_bus)
