"""The integration half of the testing kit: VolttronPlatform and the plugin's platform fixtures."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path
from typing import Any

import pytest

from volttron.client.testing.errors import PlatformUnavailable, VolttronPlatformError
from volttron.client.testing.platform import VolttronPlatform, wait_until
from volttron.client.vip.agent import RPC, Agent, Core, PubSub

pytestmark = pytest.mark.integration


class Echo(Agent):
    """Answers RPC, remembers what it hears, reads its configuration file and store."""

    def __init__(self, config_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_config = json.loads(Path(config_path).read_text()) if config_path else {}
        self.heard: list[Any] = []
        self.started = False
        self.vip.config.set_default("config", {"prefix": "echo"})

    @Core.receiver("onstart")
    def onstart(self, sender, **kwargs) -> None:
        self.started = True

    @PubSub.subscribe("pubsub", "echo/")
    def on_echo(self, peer, sender, bus, topic, headers, message) -> None:
        self.heard.append([sender, topic, message])

    @RPC.export
    def heard_so_far(self) -> list[Any]:
        return self.heard

    @RPC.export
    def settings(self) -> Any:
        return {"file": self.file_config, "store": self.vip.config.get("config")}


@pytest.mark.parametrize("volttron_message_bus", ["zmq", "rmq"], indirect=True)
def test_agent_in_a_real_platform_talks_to_an_observer(volttron_platform, volttron_message_bus) -> None:
    echo = volttron_platform.start_agent(Echo, "echo", config={"greeting": "hi"})
    assert echo.started and echo.core.connected
    observer = volttron_platform.build_agent("observer", transport="tcp")
    assert observer.vip.rpc.call("echo", "settings").get(timeout=10) == {
        "file": {"greeting": "hi"},
        "store": {"prefix": "echo"},
    }
    observer.vip.pubsub.publish("pubsub", "echo/one", message={"n": 1}).get(timeout=10)
    wait_until(lambda: echo.heard, 10, "the publication")
    assert observer.vip.rpc.call("echo", "heard_so_far").get(timeout=10) == [
        ["observer", "echo/one", {"n": 1}]
    ]
    assert volttron_platform.message_bus == volttron_message_bus
    assert "volttron" in volttron_platform.log_text().lower()


def test_platform_restarts_in_the_same_home(volttron_platform_factory) -> None:
    platform = volttron_platform_factory()
    first = platform.process.pid
    serverkey = platform.serverkey
    assert platform.stop() == 0
    platform.start()
    assert platform.process.pid != first and platform.serverkey == serverkey and platform.starts == 2
    observer = platform.build_agent("after.restart")
    assert observer.vip.peerlist().get(timeout=10)


def test_unknown_identity_is_refused(volttron_platform_factory) -> None:
    platform = volttron_platform_factory()
    from volttron.client.runner import build_agent
    from volttron.client.vip.agent.errors import ConnectError
    from volttron.utils.keys import generate_keypair

    stranger = generate_keypair()
    with pytest.raises(ConnectError):
        build_agent(
            address=platform.local_address,
            identity="stranger",
            publickey=stranger.public,
            secretkey=stranger.secret,
            serverkey=platform.serverkey,
            timeout=3,
            volttron_home=str(platform.home),
        )


def test_a_python_without_the_server_is_reported_not_run(tmp_path: Path) -> None:
    # an interpreter without volttron-server: a fresh venv of this Python, without pip or packages
    venv.EnvBuilder(with_pip=False).create(tmp_path / "bare")
    bare = str(tmp_path / "bare" / "bin" / "python")
    probe = subprocess.run([bare, "-c", "import volttron.server"], capture_output=True, check=False)
    assert probe.returncode != 0, "a fresh venv should not see volttron-server"
    platform = VolttronPlatform(tmp_path / "root", python=bare)
    try:
        with pytest.raises(PlatformUnavailable, match="volttron-server is not installed"):
            platform.start()
    finally:
        platform.close()
    assert not platform.home.exists()


def test_bad_bus_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VolttronPlatformError, match="message_bus"):
        VolttronPlatform(tmp_path, message_bus="mqtt")
