"""Hardening battery: ``kill -9`` of the platform at random points during configuration writes.

Each round starts the platform on the same home, keeps four writers with a call in flight each, and
kills the process (SIGKILL) once a random number of writes was acknowledged, so the kill lands while
other writes are being handled. After every round: each store file is whole JSON, nothing was moved
aside as corrupt, the platform starts and serves every acknowledged write of every round.
Figures are reported as in test_hardening_network.py (terminal, ``record_property``, JSON file).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent

pytestmark = pytest.mark.integration

STORE = "platform.config_store"
ADMIN = {"edit_config_store": None}
WRITERS = 4


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for agent in made:
        agent.core.stop(timeout=5)


def connect(platform: Any, identity: str, made: list[Agent]) -> Agent:
    keys = platform.add_allow_entry(identity, capabilities=ADMIN)
    agent = build_agent(address=platform.local_address, identity=identity, publickey=keys.public,
                        secretkey=keys.secret, serverkey=platform.serverkey, timeout=30,
                        volttron_home=str(platform.home))
    made.append(agent)
    return agent


def check_files(folder: Any) -> int:
    """Every store file parses; nothing was set aside as corrupt. Returns the number of files."""
    files = sorted(folder.glob("*.store"))
    for path in files:
        json.loads(path.read_text())  # a torn file fails here
    assert not list(folder.glob("*.corrupt-*")), "a store file was found corrupt and moved aside"
    return len(files)


def crash_rounds(platform_factory: Any, made: list[Agent], report: Callable[[str, Any], None],
                 rounds: int, writes: int) -> None:
    rng = random.Random(20261125)
    acked: set[str] = set()
    in_flight_at_kill: list[int] = []
    restart_times: list[float] = []
    for round_no in range(rounds):
        platform = platform_factory(name="crashy")
        started = time.monotonic()
        platform.start()
        restart_times.append(time.monotonic() - started)
        log = platform.log_text()
        assert "not valid JSON" not in log and "Traceback" not in log, log
        writer = connect(platform, f"writer{round_no}", made)
        # everything acknowledged in earlier rounds is there, with its value
        if acked:
            stored = set(writer.vip.rpc.call(STORE, "manage_list_configs", "agent").get(timeout=10))
            missing = sorted(set(acked) - stored)
            assert not missing, f"round {round_no}: acknowledged writes lost: {missing[:10]}"
            for name in rng.sample(sorted(acked), min(20, len(acked))):
                got = writer.vip.rpc.call(STORE, "manage_get", "agent", name, raw=False).get(timeout=10)
                assert got["name"] == name
        kill_after = rng.randint(1, writes - WRITERS)
        names = [f"r{round_no}-{i}" for i in range(writes)]
        sent: list[str] = []

        def write(slice_: list[str], agent: Agent = writer, sent: list[str] = sent) -> None:
            for name in slice_:
                sent.append(name)
                value = {"name": name, "pad": "x" * rng.randint(0, 4000)}
                agent.vip.rpc.call(STORE, "manage_store", "agent", name, json.dumps(value),
                                   "json").get(timeout=10)
                acked.add(name)

        workers = [gevent.spawn(write, names[k::WRITERS]) for k in range(WRITERS)]
        before = len(acked)
        poll(lambda b=before, n=kill_after: len(acked) - b >= n, 30, f"{kill_after} acknowledged writes")
        platform.process.kill()
        in_flight_at_kill.append(len(sent) - (len(acked) - before))
        platform.process.wait(10)
        platform.expect_clean_exit = False
        gevent.killall(workers, block=True, timeout=5)
        writer.core.stop(timeout=2)
        made.remove(writer)
        check_files(platform.home / "configuration_store")
    # the last check: the platform starts once more and serves everything
    platform = platform_factory(name="crashy").start()
    reader = connect(platform, "reader", made)
    stored = set(reader.vip.rpc.call(STORE, "manage_list_configs", "agent").get(timeout=10))
    assert set(acked) <= stored, sorted(set(acked) - stored)[:10]
    report("rounds", rounds)
    report("writes_per_round", writes)
    report("acknowledged_writes", len(acked))
    report("acknowledged_lost", len(set(acked) - stored))
    report("writes_in_flight_at_kill", in_flight_at_kill)
    report("torn_or_corrupt_files", 0)
    report("max_restart_s", round(max(restart_times), 2))


def test_kill_9_during_config_writes_loses_no_acknowledged_write(platform_factory, agents, report) -> None:
    """3 rounds x 50 writes, each ended by SIGKILL at a random acknowledged count."""
    crash_rounds(platform_factory, agents, report, rounds=3, writes=50)


@pytest.mark.slow
def test_kill_9_during_config_writes_loses_no_acknowledged_write_long(slow_enabled, platform_factory, agents,
                                                                      report) -> None:
    """20 rounds x 200 writes."""
    if not slow_enabled:
        pytest.skip(reason="long variant: run with -m slow or VOLTTRON_TEST_SLOW=1")
    crash_rounds(platform_factory, agents, report, rounds=20, writes=200)
