"""A launched agent gets what agents of the published VOLTTRON read at start-up, never the platform secret.

The published client (volttron-core 2.x ``vip_main``) reads ``AGENT_CREDENTIALS`` and the server key
from ``$VOLTTRON_HOME/credentials_store/platform.json``; ``test_published_client.py`` runs a real
one from that home.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from volttron.server.aip.agent_dir import AgentDirectory
from volttron.server.aip.launcher import LaunchSettings, agent_environment
from volttron.server.aip.published_contract import PLATFORM_CREDENTIALS, ensure_platform_credentials
from volttron.utils.keys import generate_keypair


def test_a_launched_agent_gets_its_credentials_and_the_public_key_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    agent = AgentDirectory.populate(home / "agents" / "demo.agent", name="pip", version="1")
    platform = generate_keypair()
    inherited = {"AGENT_CREDENTIALS": '{"identity": "someone.else"}', "PATH": "/bin"}
    env = agent_environment(agent, LaunchSettings(volttron_home=home, serverkey=platform.public,
                                                  base_env=inherited))
    keys = agent.keys()
    assert json.loads(env["AGENT_CREDENTIALS"]) == {"identity": "demo.agent", "publickey": keys.public,
                                                    "secretkey": keys.secret, "domain": "VIP", "address": ""}
    record = json.loads((home / PLATFORM_CREDENTIALS).read_text())
    assert record["identity"] == "platform" and record["publickey"] == platform.public
    assert record["secretkey"] == ""  # present (the client's record needs the field), never the secret
    assert all(platform.secret not in value for value in env.values())
    assert platform.secret not in (home / PLATFORM_CREDENTIALS).read_text()
    assert stat.S_IMODE((home / PLATFORM_CREDENTIALS).stat().st_mode) == 0o644


def test_the_record_follows_a_new_server_key_and_is_left_alone_when_current(tmp_path: Path) -> None:
    first, second = generate_keypair(), generate_keypair()
    path = ensure_platform_credentials(tmp_path, first.public)
    written = path.stat().st_mtime_ns, path.stat().st_ino
    assert ensure_platform_credentials(tmp_path, first.public) == path
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == written
    path.parent.chmod(0o700)  # as secure mode leaves the home's entries at each start
    path.chmod(0o600)
    ensure_platform_credentials(tmp_path, first.public)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755 and stat.S_IMODE(path.stat().st_mode) == 0o644
    ensure_platform_credentials(tmp_path, second.public)
    assert json.loads(path.read_text())["publickey"] == second.public
    assert [p.name for p in path.parent.iterdir()] == ["platform.json"]  # no temporary file left


def test_no_server_key_writes_nothing(tmp_path: Path) -> None:
    agent = AgentDirectory.populate(tmp_path / "agents" / "plain", name="pip", version="1")
    env = agent_environment(agent, LaunchSettings(volttron_home=tmp_path))
    assert "AGENT_CREDENTIALS" in env
    assert not (tmp_path / PLATFORM_CREDENTIALS).exists()
