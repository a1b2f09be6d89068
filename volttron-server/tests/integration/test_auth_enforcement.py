"""Enforcement that holds, against a running platform: capabilities, admin methods, protected topics, ZAP.

Each test drives a real ``volttron`` process (``python -m volttron.server``, authentication on)
with agents running in this process and connected over ipc with CURVE keys. Every check that must
refuse goes through :func:`assert_refused` / :func:`assert_not_connected`, whose failures start
with ``NOT ENFORCED:``. The repository's ``tests/test_enforcement_switches.py`` runs these tests
again with each check switched off in turn and requires such a failure, so none of them can pass
while the protection it tests is off.

The tests take one fixture, :class:`EnforcedPlatform`, made from a callable that builds a
not-yet-started platform process; the switches test builds it with a patched platform.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import RPC, Agent, ConnectError
from volttron.utils.jsonrpc import Error
from volttron.utils.keys import KeyPair, generate_keypair

pytestmark = pytest.mark.integration

NOT_ENFORCED = "NOT ENFORCED: "
CALL_TIMEOUT = 10.0


class Guarded(Agent):
    """An agent whose methods require capabilities."""

    @RPC.export
    @RPC.allow("can_add")
    def add(self, a: int, b: int) -> int:
        return a + b

    @RPC.export
    @RPC.allow([])
    def closed(self) -> str:
        return "opened"

    @RPC.export
    def open_to_all(self) -> str:
        return "hello"


def eventually(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """:func:`wait_until`, the condition retried when it raises (a call refused while a change travels)."""
    return wait_until(condition, timeout, what, interval=0.1, retry=(Exception,))


def assert_refused(result: Any, what: str) -> None:
    """``result`` (an AsyncResult) must fail with JSON-RPC -32001."""
    try:
        value = result.get(timeout=CALL_TIMEOUT)
    except Error as exc:
        assert exc.code == -32001, f"{what}: expected unauthorized (-32001), got {exc!r}"
        return
    raise AssertionError(f"{NOT_ENFORCED}{what} was allowed (returned {value!r})")


def is_refused(result: Any) -> bool:
    """Whether ``result`` failed with -32001 (other outcomes: False)."""
    try:
        result.get(timeout=CALL_TIMEOUT)
    except Error as exc:
        return exc.code == -32001
    return False


class EnforcedPlatform:
    """A platform process (restartable on the same home) and agents connected to it from this process."""

    def __init__(self, make_process: Callable[[], Any]) -> None:
        self._make_process = make_process
        self.process = make_process()
        self.agents: dict[str, Agent] = {}
        self.keys: dict[str, Any] = {}

    @property
    def home(self) -> Any:
        return self.process.home

    def start(self) -> EnforcedPlatform:
        self.process.start()
        return self

    def restart(self) -> None:
        """Stop the platform and start a new process on the same home; agents reconnect by themselves."""
        self.process.stop()
        self.process = self._make_process()
        self.process.start()

    def authorize(self, identity: str, capabilities: dict[str, Any] | None = None) -> Any:
        """Keys for ``identity`` and an allow entry with ``capabilities`` (replacing the old ones)."""
        keys = self.process.add_allow_entry(identity, self.keys.get(identity), capabilities or {})
        self.keys[identity] = keys
        return self.keys[identity]

    def agent(self, identity: str, agent_class: type[Agent] = Agent,
              capabilities: dict[str, Any] | None = None, keys: Any = None, timeout: float = 30.0) -> Agent:
        """An agent in this process, connected over ipc with CURVE (authorized unless ``keys`` given)."""
        if keys is None:
            keys = self.authorize(identity, capabilities)
        agent = build_agent(address=self.process.local_address, identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=self.process.serverkey, timeout=timeout,
                            agent_class=agent_class, enable_auth=True, volttron_home=str(self.home))
        self.agents[identity] = agent
        return agent

    def stop_agent(self, identity: str) -> None:
        agent = self.agents.pop(identity)
        agent.core.stop(timeout=10)

    def admin(self) -> Agent:
        """vctl's identity, ``control.connection``, with its own keys (every admin capability)."""
        if "control.connection" not in self.agents:
            store = json.loads((self.home / "keystores" / "control.connection" / "keystore.json").read_text())
            self.agent("control.connection", keys=KeyPair(public=store["public"], secret=store["secret"]))
        return self.agents["control.connection"]

    def close(self) -> None:
        for identity in list(self.agents):
            self.stop_agent(identity)
        self.process.stop()


@pytest.fixture
def enforced(platform_factory) -> Iterator[EnforcedPlatform]:
    """An :class:`EnforcedPlatform` (not started) on a fresh home."""
    platform = EnforcedPlatform(lambda: platform_factory())
    try:
        yield platform
    finally:
        for identity in list(platform.agents):
            platform.stop_agent(identity)


# -- @RPC.allow ------------------------------------------------------------------------------------

def _check_rpc_allow(adder: Agent, nobody: Agent) -> None:
    assert adder.vip.rpc.call("guarded", "add", 1, 2).get(timeout=CALL_TIMEOUT) == 3
    assert nobody.vip.rpc.call("guarded", "open_to_all").get(timeout=CALL_TIMEOUT) == "hello"
    assert_refused(nobody.vip.rpc.call("guarded", "add", 1, 2), "add by a caller without can_add")
    assert_refused(adder.vip.rpc.call("guarded", "closed"), "a method that requires an empty capability list")


def test_rpc_allow_holds_across_agent_and_platform_restarts(enforced: EnforcedPlatform) -> None:
    enforced.start()
    enforced.agent("guarded", Guarded)
    adder = enforced.agent("adder", capabilities={"can_add": None})
    nobody = enforced.agent("nobody")
    _check_rpc_allow(adder, nobody)

    enforced.stop_agent("guarded")
    # the router keeps an identity until it sees the old connection close; a new agent under the same
    # identity before that is ignored (as libzmq does with duplicates), so wait for the drop
    eventually(lambda: "guarded" not in adder.vip.peerlist().get(timeout=2), 10,
               "the stopped agent to be dropped")
    enforced.agent("guarded", Guarded)
    _check_rpc_allow(adder, nobody)

    enforced.restart()
    eventually(lambda: adder.vip.rpc.call("guarded", "add", 1, 2).get(timeout=2) == 3, 30,
               "the agents to be back after the platform restart")
    _check_rpc_allow(adder, nobody)


def test_capability_changes_reach_running_agents(enforced: EnforcedPlatform) -> None:
    enforced.start()
    guarded = enforced.agent("guarded", Guarded)
    nobody = enforced.agent("nobody")
    assert_refused(nobody.vip.rpc.call("guarded", "add", 1, 2), "add by a caller without can_add")
    enforced.authorize("nobody", {"can_add": None})  # the agent has its table cached: it gets a push
    eventually(lambda: nobody.vip.rpc.call("guarded", "add", 2, 2).get(timeout=2) == 4, 10,
               "the new capability to reach the guarded agent")
    enforced.authorize("nobody", {})
    eventually(lambda: is_refused(nobody.vip.rpc.call("guarded", "add", 2, 2)), 10,
               "the withdrawn capability to reach the guarded agent")
    assert guarded.vip.auth is not None


# -- administration --------------------------------------------------------------------------------

def _check_admin_methods(ordinary: Agent) -> None:
    call = ordinary.vip.rpc.call
    # control service
    assert_refused(call("platform.control", "install_agent", "volttron-listener-agent", None),
                   "control.install_agent")
    assert_refused(call("platform.control", "remove_agent", "some-agent"), "control.remove_agent")
    assert_refused(call("platform.control", "stop_platform"), "control.stop_platform")
    # auth service
    entry = {"credentials": generate_keypair().public, "user_id": "sneaky",
             "capabilities": {"allow_auth_modifications": None}}
    assert_refused(call("platform.auth", "auth_file.add", entry), "auth.auth_file.add")
    assert_refused(call("platform.auth", "auth_file.remove_by_index", 0), "auth.auth_file.remove_by_index")
    assert_refused(call("platform.auth", "add_rpc_authorizations", "ordinary", "m", ["x"]),
                   "auth.add_rpc_authorizations")
    assert_refused(call("platform.auth", "approve_authorization", "anyone"), "auth.approve_authorization")
    # config store: its own configurations only
    assert_refused(call("platform.config_store", "manage_store", "other.agent", "config", "{}", "json"),
                   "config_store.manage_store for another agent")
    assert_refused(call("platform.config_store", "set_config", "other.agent", "config", "{}", "json"),
                   "config_store.set_config (9.x form) for another agent")
    own = call("platform.config_store", "manage_store", "ordinary", "config", '{"a": 1}', "json")
    own.get(timeout=CALL_TIMEOUT)


def test_ordinary_agent_cannot_administer_the_platform(enforced: EnforcedPlatform) -> None:
    enforced.start()
    installed_like = {"edit_config_store": {"identity": "ordinary"}}  # what an installed agent gets
    ordinary = enforced.agent("ordinary", capabilities=installed_like)
    _check_admin_methods(ordinary)
    admin = enforced.admin()  # the same calls are allowed to vctl's identity
    entry = {"credentials": generate_keypair().public, "user_id": "added.by.admin"}
    assert admin.vip.rpc.call("platform.auth", "auth_file.add", entry).get(timeout=CALL_TIMEOUT) >= 0
    admin.vip.rpc.call("platform.config_store", "manage_store", "other.agent", "config", "{}", "json").get(
        timeout=CALL_TIMEOUT)
    enforced.restart()
    eventually(lambda: ordinary.vip.rpc.call("platform.control", "peerlist").get(timeout=2), 30,
               "the agent to be back after the platform restart")
    _check_admin_methods(ordinary)
    users = {e["user_id"] for e in json.loads((enforced.home / "auth.json").read_text())["allow"]}
    assert "sneaky" not in users, f"{NOT_ENFORCED}a refused auth entry is in auth.json"


def test_an_agent_cannot_read_the_auth_policy(enforced: EnforcedPlatform) -> None:
    """``auth_file.read`` needs ``read_auth_file``; other users' capabilities only as its methods need."""
    enforced.start()
    enforced.authorize("boss", {"allow_auth_modifications": None, "launch_codes": None})
    nosy = enforced.agent("nosy", capabilities={"own": None})
    assert_refused(nosy.vip.rpc.call("platform.auth", "auth_file.read"), "auth_file.read by an agent")
    boss_key = enforced.keys["boss"].public
    assert_refused(nosy.vip.rpc.call("platform.auth", "auth_file.find_by_credentials", boss_key),
                   "auth_file.find_by_credentials by an agent")
    table = nosy.vip.rpc.call("platform.auth", "get_user_to_capabilities").get(timeout=CALL_TIMEOUT)
    assert table.get("nosy") == {"own": None}, table
    assert "boss" not in table, f"{NOT_ENFORCED}get_user_to_capabilities showed an agent another user's row"
    boss_caps = nosy.vip.rpc.call("platform.auth", "get_capabilities", "boss").get(timeout=CALL_TIMEOUT)
    assert boss_caps == {}, f"{NOT_ENFORCED}get_capabilities showed an agent another user's capabilities"
    reader = enforced.agent("reader", capabilities={"read_auth_file": None})
    document = reader.vip.rpc.call("platform.auth", "auth_file.read").get(timeout=CALL_TIMEOUT)
    assert any(e["user_id"] == "boss" for e in document["allow_list"])


# -- protected topics ------------------------------------------------------------------------------

def test_protected_topic_refuses_publishers_without_the_capability(enforced: EnforcedPlatform) -> None:
    enforced.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (enforced.home / "protected_topics.json").write_text(json.dumps(
        {"write-protect": [{"topic": "secure/", "capabilities": ["can_publish_secure"]}]}))
    enforced.start()
    heard: list[str] = []
    listener = enforced.agent("listener")
    listener.vip.pubsub.subscribe("pubsub", "", lambda peer, sender, bus, topic, headers, message:
                                  heard.append(topic)).get(timeout=CALL_TIMEOUT)
    writer = enforced.agent("writer", capabilities={"can_publish_secure": None})
    other = enforced.agent("other")
    assert_refused(other.vip.pubsub.publish("pubsub", "secure/x", message=1), "publish to secure/x")
    assert writer.vip.pubsub.publish("pubsub", "secure/x", message=2).get(timeout=CALL_TIMEOUT) == 1
    assert other.vip.pubsub.publish("pubsub", "open/x", message=3).get(timeout=CALL_TIMEOUT) == 1
    eventually(lambda: heard.count("secure/x") == 1 and "open/x" in heard, 5, "the allowed publishes")
    # protecting another topic while running applies without a restart
    protected = {"write-protect": [{"topic": "secure/", "capabilities": ["can_publish_secure"]},
                                   {"topic": "/^open/.*/", "capabilities": ["can_publish_open"]}]}
    (enforced.home / "protected_topics.json").write_text(json.dumps(protected))
    eventually(lambda: is_refused(other.vip.pubsub.publish("pubsub", "open/y", message=4)), 10,
               "the new protected topic to apply")
    assert_refused(other.vip.pubsub.publish("pubsub", "open/z", message=5), "publish to open/z")
    assert heard.count("secure/x") == 1 and "open/z" not in heard
    # a bad edit is reported and lifts nothing: the last good list stays, the file stays for its author
    (enforced.home / "protected_topics.json").write_text("{not json")
    eventually(lambda: "protected topics not updated" in enforced.process.log_text(), 10,
               "the bad edit to be reported")
    assert_refused(other.vip.pubsub.publish("pubsub", "open/after", message=6), "publish to open/after")
    assert (enforced.home / "protected_topics.json").read_text() == "{not json"
    (enforced.home / "protected_topics.json").write_text(json.dumps(protected))  # as its author would


# -- authentication --------------------------------------------------------------------------------

def assert_not_connected(enforced: EnforcedPlatform, identity: str, keys: Any,
                         why: str = "a key auth.json does not allow") -> None:
    try:
        enforced.agent(identity, keys=keys, timeout=3)
    except ConnectError:
        return
    enforced.stop_agent(identity)
    raise AssertionError(f"{NOT_ENFORCED}{identity} connected with {why}")


def test_unknown_key_is_refused_recorded_and_can_be_approved(enforced: EnforcedPlatform) -> None:
    enforced.start()
    stranger = generate_keypair()
    assert_not_connected(enforced, "stranger", stranger)
    admin = enforced.admin()
    pending = eventually(
        lambda: [r for r in admin.vip.rpc.call("platform.auth", "get_pending_authorizations").get(timeout=5)
                 if r["credentials"] == stranger.public], 10, "the refused key to be recorded")
    user_id = pending[0]["user_id"]
    admin.vip.rpc.call("platform.auth", "deny_authorization", user_id).get(timeout=CALL_TIMEOUT)
    assert_not_connected(enforced, "stranger", stranger)
    admin.vip.rpc.call("platform.auth", "approve_authorization", user_id).get(timeout=CALL_TIMEOUT)
    approved = enforced.agent("stranger", keys=stranger)  # connects now
    enforced.restart()
    eventually(lambda: approved.vip.rpc.call("platform.control", "peerlist").get(timeout=2), 30,
               "the approved agent to reconnect after the platform restart")
    admin.vip.rpc.call("platform.auth", "delete_authorization", user_id).get(timeout=CALL_TIMEOUT)
    enforced.stop_agent("stranger")
    assert_not_connected(enforced, "stranger", stranger)


def test_a_key_cannot_speak_as_another_identity(enforced: EnforcedPlatform) -> None:
    enforced.start()
    keys = enforced.authorize("ordinary", {"edit_config_store": {"identity": "ordinary"}})
    enforced.authorize("victim", {"can_add": None})
    enforced.agent("ordinary", keys=keys)  # its own identity works
    enforced.stop_agent("ordinary")
    for identity in ("control.connection", "victim"):  # neither is connected: the names are free
        assert_not_connected(enforced, identity, keys, why="the key of 'ordinary'")
    # (a key caught claiming another's identity is then refused at the handshake for a while, so
    # that the rightful owner gets in first: test_hardening_router.py)
