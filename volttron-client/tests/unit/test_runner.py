"""vip_main and build_agent without a network (the in-memory router stands in for the platform)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from volttron.client.runner import build_agent, vip_main
from volttron.client.vip.agent import Agent, Core
from volttron.client.vip.agent.errors import ConnectError
from volttron.utils.keys import generate_keypair

ENV_NAMES = (
    "AGENT_CONFIG",
    "AGENT_VIP_IDENTITY",
    "AGENT_PUBLICKEY",
    "AGENT_SECRETKEY",
    "VOLTTRON_SERVERKEY",
    "AGENT_UUID",
    "VOLTTRON_VIP_ADDR",
    "MESSAGEBUS",
    "_LAUNCHED_BY_PLATFORM",
    "AUTH_ENABLED",
)


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOLTTRON_HOME", str(tmp_path))
    return monkeypatch


class OneShot(Agent):
    """Records what vip_main gave it and stops as soon as it starts."""

    last: OneShot | None = None

    def __init__(self, config_path=None, **kwargs):
        super().__init__(**kwargs)
        self.config_path = config_path
        self.stopped = False
        OneShot.last = self

    @Core.receiver("onstart")
    def started(self, sender, **kwargs):
        self.core.stop()

    @Core.receiver("onstop")
    def stopping(self, sender, **kwargs):
        self.stopped = True


def test_vip_main_reads_the_environment_at_call_time(env, router, tmp_path) -> None:
    pair, server = generate_keypair(), generate_keypair()
    env.setenv("AGENT_VIP_IDENTITY", "from.env")
    env.setenv("AGENT_CONFIG", str(tmp_path / "config"))
    env.setenv("AGENT_UUID", "uuid-1")
    env.setenv("AGENT_PUBLICKEY", pair.public)
    env.setenv("AGENT_SECRETKEY", pair.secret)
    env.setenv("VOLTTRON_SERVERKEY", server.public)
    env.setenv("VOLTTRON_VIP_ADDR", "tcp://127.0.0.1:1")
    vip_main(OneShot, identity="ignored", version="3.1", connection_factory=router.factory)
    agent = OneShot.last
    assert agent.core.identity == "from.env" and agent.core.agent_uuid == "uuid-1"
    assert agent.config_path == str(tmp_path / "config") and agent.core.version() == "3.1"
    assert agent.core.address == "tcp://127.0.0.1:1" and agent.core.serverkey == server.public
    assert agent.stopped and agent.core.failure is None
    assert router.connections == {} and router.messages("agentstop", "from.env")


def test_vip_main_finds_keys_in_the_home_when_run_by_hand(env, router, tmp_path) -> None:
    pair, server = generate_keypair(), generate_keypair()
    store = tmp_path / "keystores" / "byhand" / "keystore.json"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps(pair.as_dict()))
    (tmp_path / "known_hosts").write_text(json.dumps({"127.0.0.1:9": server.public}))
    env.setenv("VOLTTRON_VIP_ADDR", "tcp://127.0.0.1:9")
    vip_main(OneShot, identity="byhand", connection_factory=router.factory)
    assert OneShot.last.core.publickey == pair.public and OneShot.last.core.serverkey == server.public


def test_vip_main_without_keys_exits_with_one_line(env, router, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        vip_main(OneShot, identity="nokeys", connection_factory=router.factory)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'nokeys'" in err and "keystore.json" in err and "known_hosts" in err
    assert "Traceback" not in err


def test_vip_main_launched_by_platform_needs_no_keys(env, router) -> None:
    env.setenv("_LAUNCHED_BY_PLATFORM", "1")
    vip_main(OneShot, identity="launched", connection_factory=router.factory)
    assert OneShot.last.stopped


def test_vip_main_exits_when_not_welcomed(env, router, capsys) -> None:
    env.setenv("AUTH_ENABLED", "false")
    router.refuse.add("refused")

    class Quick(OneShot):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.core.welcome_timeout = 0.2

    with pytest.raises(SystemExit) as info:
        vip_main(Quick, identity="refused", connection_factory=router.factory)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no welcome" in err and "'refused'" in err


def test_build_agent_connects_and_reports_timeouts(router) -> None:
    agent = build_agent(
        identity="tool", connection_factory=router.factory, address="inproc://m", enable_auth=False
    )
    try:
        assert agent.core.connected and agent.vip.config is None
        assert not agent.vip.heartbeat.running
    finally:
        agent.core.stop(timeout=5)
    router.refuse.add("slow")
    with pytest.raises(ConnectError, match="'slow'"):
        build_agent(identity="slow", timeout=0.2, connection_factory=router.factory, address="inproc://m")


def test_porting_paths_are_lazy() -> None:
    code = (
        "import sys, volttron.client as c; assert 'gevent' not in sys.modules and 'zmq' not in sys.modules;"
        "from volttron.client import vip_main, build_agent, Agent;"
        "from volttron.client.vip.agent.utils import build_agent as b2;"
        "import volttron.client.runner as r; assert b2 is not None and vip_main is r.vip_main;"
        "import gevent.monkey; assert not gevent.monkey.is_module_patched('socket'); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
