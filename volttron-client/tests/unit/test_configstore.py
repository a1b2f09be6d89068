"""The config subsystem against a fake ``platform.config_store`` (10.x API) and without one."""

from __future__ import annotations

import pytest

from volttron.client.known_identities import CONFIGURATION_STORE
from volttron.client.vip.agent import RPC, Agent, Core


class StoreService(Agent):
    """Answers like the 10.x store: ``get_configs`` returns the caller's configurations."""

    def __init__(self, configs, push=False, **kwargs):
        super().__init__(**kwargs)
        self.configs = configs
        self.push = push
        self.calls = []

    @RPC.export
    def get_configs(self):
        caller = self.vip.rpc.context.vip_message.peer
        if self.push:  # the 9.x behaviour: push during the call, return nothing
            self.vip.rpc.call(caller, "config.initial_update", self.configs).get(timeout=2)
            return None
        return self.configs

    @RPC.export
    def set_config(self, config_name, contents, trigger_callback=False, send_update=True):
        caller = self.vip.rpc.context.vip_message.peer
        self.calls.append(("set", caller, config_name, contents, trigger_callback, send_update))
        self.configs[config_name] = contents
        if send_update:
            self.vip.rpc.call(caller, "config.update", "NEW", config_name, contents, trigger_callback).get(
                timeout=2
            )

    @RPC.export
    def delete_config(self, config_name, trigger_callback=False, send_update=True):
        caller = self.vip.rpc.context.vip_message.peer
        self.calls.append(("delete", caller, config_name))
        self.configs.pop(config_name, None)
        if send_update:
            self.vip.rpc.call(caller, "config.update", "DELETE", config_name, None, trigger_callback).get(
                timeout=2
            )


class Configured(Agent):
    def __init__(self, **kwargs):
        kwargs["enable_store"] = True
        super().__init__(**kwargs)
        self.seen = []
        self.vip.config.set_default("config", {"interval": 5})
        self.vip.config.set_default("extra", {"x": 1})
        self.vip.config.subscribe(self.configure, actions=["NEW", "UPDATE", "DELETE"], pattern="*")

    def configure(self, name, action, contents):
        self.seen.append((name, action, contents))

    @Core.receiver("onstart")
    def started(self, sender, **kwargs):
        self.seen.append("onstart")


STORED = {"Devices": {"dev": "config://Points"}, "Points": ["a", "b"], "config": {"interval": 1}}


@pytest.mark.parametrize("push", [False, True])
def test_initial_configs_fire_new_with_config_first(start_agent, wait_until, push) -> None:
    start_agent(CONFIGURATION_STORE, StoreService, configs=dict(STORED), push=push)
    agent = start_agent("configured", Configured)
    wait_until(lambda: len([s for s in agent.seen if s != "onstart"]) == 4)
    fired = [s for s in agent.seen if s != "onstart"]
    assert fired[0] == ("config", "NEW", {"interval": 1})
    assert ("Devices", "NEW", {"dev": ["a", "b"]}) in fired  # reference resolved, original case kept
    assert ("extra", "NEW", {"x": 1}) in fired
    assert agent.vip.config.list() == ["Devices", "Points", "config", "extra"]
    assert agent.vip.config.get("devices") == {"dev": ["a", "b"]}
    with pytest.raises(KeyError):
        agent.vip.config.get("missing")


def test_updates_fire_for_referrers_and_defaults_come_back(start_agent, wait_until) -> None:
    store = start_agent(CONFIGURATION_STORE, StoreService, configs=dict(STORED))
    agent = start_agent("configured", Configured)
    wait_until(lambda: len(agent.seen) >= 5)
    agent.seen.clear()
    store.vip.rpc.call("configured", "config.update", "UPDATE", "Points", ["c"], True).get(timeout=2)
    assert sorted(agent.seen) == [("Devices", "UPDATE", {"dev": ["c"]}), ("Points", "UPDATE", ["c"])]
    agent.seen.clear()
    store.vip.rpc.call("configured", "config.update", "DELETE", "config", None, True).get(timeout=2)
    assert agent.seen == [("config", "UPDATE", {"interval": 5})]  # the default applies again
    agent.seen.clear()
    store.vip.rpc.call("configured", "config.update", "UPDATE", "Points", ["d"], False).get(timeout=2)
    assert agent.seen == [] and agent.vip.config.get("Points") == ["d"]


def test_set_and_delete_use_the_10x_signatures(start_agent, wait_until) -> None:
    store = start_agent(CONFIGURATION_STORE, StoreService, configs={})
    agent = start_agent("configured", Configured)
    wait_until(lambda: "onstart" in agent.seen)
    agent.vip.config.set("new_one", {"k": "v"}, trigger_callback=True)
    assert store.calls[0] == ("set", "configured", "new_one", {"k": "v"}, True, True)
    wait_until(lambda: ("new_one", "NEW", {"k": "v"}) in agent.seen)
    agent.vip.config.delete("new_one")
    assert store.calls[1] == ("delete", "configured", "new_one")
    with pytest.raises(RuntimeError, match="before the agent starts"):
        agent.vip.config.set_default("late", {})


def test_changing_the_store_from_a_callback_is_refused(start_agent, wait_until) -> None:
    start_agent(CONFIGURATION_STORE, StoreService, configs={"config": {}})
    errors = []

    class Meddler(Agent):
        def __init__(self, **kwargs):
            kwargs["enable_store"] = True
            super().__init__(**kwargs)
            self.vip.config.subscribe(self.configure)

        def configure(self, name, action, contents):
            try:
                self.vip.config.set("other", {})
            except RuntimeError as exc:
                errors.append(str(exc))

    start_agent("meddler", Meddler)
    wait_until(lambda: errors)
    assert "configuration callback" in errors[0]


def test_agent_starts_without_a_store_and_uses_defaults(start_agent, wait_until) -> None:
    agent = start_agent("alone", Configured)
    wait_until(lambda: len(agent.seen) == 3)
    assert "onstart" in agent.seen
    assert [s for s in agent.seen if s != "onstart"] == [
        ("config", "NEW", {"interval": 5}),
        ("extra", "NEW", {"x": 1}),
    ]
    assert agent.vip.config.get() == {"interval": 5}


def test_bad_subscription_action(start_agent) -> None:
    agent = Configured(identity="x")
    with pytest.raises(ValueError, match="invalid configuration action"):
        agent.vip.config.subscribe(lambda *a: None, actions="RENAME")
