"""platform.config_store on a real platform (auth on), with agents connected from this process.

Covers: an agent's configurations arriving at its start (``config`` first) and live changes (NEW,
UPDATE, DELETE, DELETE_ALL, references firing UPDATE once for their referrers); an agent's own
set/delete (10.x form) and the 9.x forms; who may edit which store; refusals of bad JSON and
reference loops; bulk stores and the assembled view; a stuck agent holding up no one else;
acknowledged writes surviving ``kill -9``; a corrupt store file on start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import Agent, RemoteError, Unauthorized

pytestmark = pytest.mark.integration

STORE = "platform.config_store"
ADMIN = {"edit_config_store": None}


class Recorder(Agent):
    """Records every configuration callback as ``(name, action, contents)``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["enable_store"] = True
        super().__init__(**kwargs)
        self.seen: list[tuple[str, str, Any]] = []
        self.block = gevent.event.Event()
        self.block.set()
        self.vip.config.subscribe(self.changed, actions=["NEW", "UPDATE", "DELETE"], pattern="*")

    def changed(self, name: str, action: str, contents: Any) -> None:
        self.block.wait(60)  # a test may clear it to make this agent stuck
        self.seen.append((name, action, contents))

    def wait_seen(self, count: int, timeout: float = 10) -> list[tuple[str, str, Any]]:
        poll(lambda: len(self.seen) >= count, timeout, f"{count} configuration callbacks, got {self.seen}")
        return self.seen


@pytest.fixture
def connect(running_platform: Any) -> Iterator[Callable[..., Any]]:
    """``connect(identity, capabilities=None, agent_class=Agent, platform=None)`` -> a connected agent."""
    made: list[Agent] = []

    def make(identity: str, capabilities: dict | None = None, agent_class: type[Agent] = Agent,
             platform: Any = None, **kwargs: Any) -> Any:
        platform = platform or running_platform
        keys = platform.add_allow_entry(identity, capabilities=capabilities)
        agent = build_agent(address=platform.local_address, identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=platform.serverkey, timeout=10,
                            volttron_home=str(platform.home), agent_class=agent_class, **kwargs)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        if isinstance(agent, Recorder):
            agent.block.set()
        agent.core.stop(timeout=5)


def call(agent: Agent, method: str, *args: Any, **kwargs: Any) -> Any:
    return agent.vip.rpc.call(STORE, method, *args, **kwargs).get(timeout=10)


def test_an_agent_gets_its_configs_at_start_then_every_change(connect) -> None:
    admin = connect("admin", ADMIN)
    call(admin, "manage_store", "alice", "Points", "name,unit\nT,F\n", "csv")
    call(admin, "manage_store", "alice", "config", '{"interval": 5, # comment\n "points": "config://points"}',
         "json")
    alice = connect("alice", agent_class=Recorder)
    points = [{"name": "T", "unit": "F"}]
    seen = alice.wait_seen(2)
    assert seen[0] == ("config", "NEW", {"interval": 5, "points": points})  # references resolved
    assert seen[1] == ("Points", "NEW", points)
    assert alice.vip.config.list() == ["Points", "config"]

    call(admin, "manage_store", "alice", "POINTS", "name,unit\nT,C\n", "csv")
    new_points = [{"name": "T", "unit": "C"}]
    seen = alice.wait_seen(4)
    # the referrer fires once, with the new value, because the agent resolves references itself
    assert sorted(seen[2:]) == [("POINTS", "UPDATE", new_points),
                                ("config", "UPDATE", {"interval": 5, "points": new_points})]

    call(admin, "manage_store", "alice", "extra", "plain text")
    assert alice.wait_seen(5)[4] == ("extra", "NEW", "plain text")
    call(admin, "manage_delete_config", "alice", "EXTRA")
    assert alice.wait_seen(6)[5] == ("extra", "DELETE", None)
    call(admin, "manage_delete_store", "alice")
    assert sorted(alice.wait_seen(8)[6:]) == [("POINTS", "DELETE", None), ("config", "DELETE", None)]
    assert call(admin, "manage_list_configs", "alice") == [] and call(admin, "manage_list_stores") == []
    # Nothing fired twice: a marker stored now reaches alice after anything sent for the changes above.
    call(admin, "manage_store", "alice", "marker", "last")
    assert alice.wait_seen(9)[8:] == [("marker", "NEW", "last")]


def test_an_agent_changes_its_own_store_and_sees_it_at_once(connect) -> None:
    admin = connect("admin", ADMIN)
    call(admin, "manage_store", "bob", "config", "[0]", "json")
    bob = connect("bob", agent_class=Recorder)
    assert bob.wait_seen(1) == [("config", "NEW", [0])]  # its start-up is over
    bob.vip.config.set("config", {"a": 1})
    assert bob.vip.config.get("config") == {"a": 1}  # the update arrived before set returned
    bob.vip.config.set("notes", "text", trigger_callback=True)
    assert bob.wait_seen(2)[1:] == [("notes", "NEW", "text")]
    assert call(admin, "manage_get_metadata", "bob", "config")["type"] == "json"
    assert call(admin, "manage_get", "bob", "config", raw=False) == {"a": 1}
    assert call(admin, "manage_get", "bob", "notes") == "text"
    bob.vip.config.delete("notes")
    assert bob.vip.config.list() == ["config"]
    assert call(admin, "manage_list_configs", "bob") == ["config"]
    with pytest.raises(RemoteError, match="not bool"):
        bob.vip.config.set("bad", True)


def test_only_administrators_edit_other_stores_and_restrictions_hold(connect) -> None:
    admin = connect("admin", ADMIN)
    call(admin, "manage_store", "alice", "config", "[1]", "json")
    call(admin, "manage_store", "bob", "config", "[2]", "json")
    mallory = connect("mallory")
    for method, args in (("manage_store", ("alice", "config", "[666]", "json")),
                         ("manage_get", ("alice", "config")),
                         ("manage_delete_store", ("alice",)),
                         ("manage_store", ("mallory", "config", "[3]", "json")),
                         ("set_config", ("alice", "config", "[666]", "json")),  # 9.x form
                         ("delete_config", ("alice", "config")),
                         ("get_config", ("alice", "config")),
                         ("initialize_configs", ("alice",))):
        with pytest.raises(Unauthorized):
            call(mallory, method, *args)
    call(mallory, "set_config", "mallory", "config", '["own"]', "json")  # 9.x form, own store
    call(mallory, "set_config", "second", ["also own"])  # 10.x form: always the caller's store
    assert call(mallory, "manage_list_stores") == ["mallory"]
    assert call(admin, "manage_get", "alice", "config") == "[1]"
    assert call(admin, "manage_list_configs", "mallory") == ["config", "second"]

    limited = connect("limited", {"edit_config_store": {"identity": "/ali.*/"}})
    call(limited, "manage_store", "alice", "config", "[4]", "json")
    with pytest.raises(Unauthorized):
        call(limited, "manage_store", "bob", "config", "[4]", "json")
    assert call(limited, "manage_list_stores") == ["alice"]
    assert call(limited, "list_stores") == ["alice"]
    assert call(admin, "list_stores") == ["alice", "bob", "mallory"]


def test_bad_json_and_reference_loops_are_refused_and_nothing_is_stored(connect) -> None:
    admin = connect("admin", ADMIN)
    with pytest.raises(RemoteError, match=r"'config': line 2, column 7: invalid JSON"):
        call(admin, "manage_store", "alice", "config", '{"a": 1,\n "b": }', "json")
    with pytest.raises(RemoteError, match="object or a list"):
        call(admin, "manage_store", "alice", "config", "42", "json")
    with pytest.raises(RemoteError, match="unknown configuration type"):
        call(admin, "manage_store", "alice", "config", "x", "yaml")
    call(admin, "manage_store", "alice", "a", '{"next": "config://b"}', "json")
    with pytest.raises(RemoteError, match="'b' -> 'a' -> 'b'"):
        call(admin, "manage_store", "alice", "b", '{"back": "config://A"}', "json")
    with pytest.raises(RemoteError, match="no configuration 'b' for 'alice'"):
        call(admin, "manage_get", "alice", "b")
    with pytest.raises(RemoteError, match="cannot have a configuration store"):
        call(admin, "manage_store", "../escape", "config", "x")
    assert call(admin, "manage_list_configs", "alice") == ["a"]


def test_a_directory_at_once_and_the_assembled_view(connect) -> None:
    admin = connect("admin", ADMIN)
    carol = connect("carol", agent_class=Recorder)
    configs = [
        {"name": "config", "raw_contents": '{"device": "config://devices/d1"}', "config_type": "json"},
        {"name": "devices/d1", "raw_contents": '{"registry": "config://d1.csv"}', "config_type": "json"},
        {"name": "d1.csv", "raw_contents": "point\nT\n", "config_type": "csv"},
    ]
    assert call(admin, "manage_store_configs", "carol", configs) == ["config", "devices/d1", "d1.csv"]
    registry = [{"point": "T"}]
    assembled = {"config": {"device": {"registry": registry}}, "devices/d1": {"registry": registry},
                 "d1.csv": registry}
    assert call(admin, "manage_get_all", "carol") == assembled
    # delivered in dependency order, so no callback sees a dangling reference
    assert carol.wait_seen(3) == [("d1.csv", "NEW", registry), ("devices/d1", "NEW", {"registry": registry}),
                                  ("config", "NEW", {"device": {"registry": registry}})]
    with pytest.raises(RemoteError, match="'broken'"):
        call(admin, "manage_store_configs", "carol",
             [{"name": "fine", "raw_contents": "[]", "config_type": "json"},
              {"name": "broken", "raw_contents": "{", "config_type": "json"}])
    assert call(admin, "manage_list_configs", "carol") == ["config", "d1.csv", "devices/d1"]


def test_a_9x_agent_is_served_by_initialize_configs(connect) -> None:
    admin = connect("admin", ADMIN)
    call(admin, "manage_store", "old", "config", '{"v": 9}', "json")
    old = connect("old", enable_auth=False)
    pushed: list[Any] = []
    old.vip.rpc.export(pushed.append, "config.initial_update")
    call(old, "initialize_configs", "old")
    assert pushed == [{"config": {"v": 9}}]
    call(old, "set_config", "old", "config", '{"v": 10}', config_type="json")
    call(old, "delete_config", "old", "config")
    assert call(admin, "manage_list_stores") == []


def test_a_stuck_agent_holds_up_no_one_else(connect) -> None:
    admin = connect("admin", ADMIN)
    stuck = connect("stuck", agent_class=Recorder)
    other = connect("other", agent_class=Recorder)
    stuck.block.clear()  # its callbacks, and so its answers to config.update, now hang
    started = time.monotonic()
    for n in range(3):
        call(admin, "manage_store", "stuck", "config", f"[{n}]", "json")
    call(admin, "manage_store", "other", "config", "[1]", "json")
    assert other.wait_seen(1, timeout=5) == [("config", "NEW", [1])]
    assert time.monotonic() - started < 3
    stuck.block.set()
    poll(lambda: ("config", "UPDATE", [2]) in stuck.seen, 10, "the stuck agent to catch up, in order")
    assert [c for _, _, c in stuck.seen] == [[0], [1], [2]]


def test_acknowledged_writes_survive_kill_9(platform_factory, connect) -> None:
    first = platform_factory(name="durable").start()
    admin = connect("admin", ADMIN, platform=first)
    for n in range(20):
        call(admin, "manage_store", "agent", f"config{n}", json.dumps({"n": n}), "json")
    call(admin, "manage_delete_config", "agent", "config0")
    admin.core.stop(timeout=5)
    first.process.kill()
    first.process.wait(10)
    first.expect_clean_exit = False
    second = platform_factory(name="durable").start()
    reader = connect("reader", ADMIN, platform=second)
    names = call(reader, "manage_list_configs", "agent")
    assert sorted(names) == sorted(f"config{n}" for n in range(1, 20))
    assert call(reader, "manage_get", "agent", "config19", raw=False) == {"n": 19}


def test_a_corrupt_store_is_reported_moved_aside_and_the_platform_starts(platform_factory, connect) -> None:
    platform = platform_factory(name="corrupt")
    folder = platform.home / "configuration_store"
    folder.mkdir(parents=True)
    (folder / "broken.store").write_text('{"config": {"type": "json", "data": "{\\"a\\": ')
    fine = {"config": {"type": "raw", "modified": None, "data": "ok"}}
    (folder / "fine.store").write_text(json.dumps(fine))
    platform.start()
    log = poll(lambda: "broken.store" in platform.log_text() and platform.log_text(), 10, "the report")
    assert "broken.store is not valid JSON" in log and "kept as" in log
    (kept,) = folder.glob("broken.store.corrupt-*")
    assert kept.read_text().startswith('{"config"')
    admin = connect("admin", ADMIN, platform=platform)
    assert call(admin, "manage_list_stores") == ["fine"]
    call(admin, "manage_store", "broken", "config", "[1]", "json")
    assert call(admin, "manage_get", "broken", "config", raw=False) == [1]
