"""``vctl config`` (run as a command) against a real platform, with an agent watching its callbacks.

Covers: configurations stored before an agent starts arriving as NEW (``config`` first); live
UPDATE and DELETE after ``vctl config store``/``delete``, referrers updated too; ``store-dir``
and ``get-all``; ``edit`` with ``$EDITOR``; a bad JSON file refused in one line with nothing
stored; an agent unable to write another agent's store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import Agent, Unauthorized

pytestmark = pytest.mark.integration

VCTL = [sys.executable, "-c", "from volttron.client.commands.vctl import main; main()"]


class Recorder(Agent):
    """Records configuration callbacks."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["enable_store"] = True
        super().__init__(**kwargs)
        self.seen: list[tuple[str, str, Any]] = []
        self.vip.config.subscribe(self.changed, actions=["NEW", "UPDATE", "DELETE"], pattern="*")

    def changed(self, name: str, action: str, contents: Any) -> None:
        self.seen.append((name, action, contents))


def recorder(platform: Any, identity: str) -> Recorder:
    keys = platform.authorize(identity)
    agent = build_agent(address=platform.ipc_address, identity=identity, publickey=keys.public,
                        secretkey=keys.secret, serverkey=platform.serverkey, timeout=10,
                        volttron_home=str(platform.home), agent_class=Recorder)
    platform.observers.append(agent)
    return agent


def vctl(platform: Any, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run vctl in a subprocess; the gevent hub keeps running for the agents of this process."""
    environment = {**os.environ, "VOLTTRON_HOME": str(platform.home), "HOME": str(platform.root), **env}
    environment.pop("VOLTTRON_VIP_ADDR", None)
    process = subprocess.Popen([*VCTL, *args], env=environment, text=True, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if stdin is not None:
        process.stdin.write(stdin)
    process.stdin.close()
    # wait cooperatively (gevent is loaded) so in-process agents keep answering meanwhile
    try:
        wait_until(lambda: process.poll() is not None, 60, f"vctl {args} to finish")
    except AssertionError:
        process.kill()
        raise
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"vctl {result.args} failed ({result.returncode}): {result.stderr}"
    return result.stdout


def test_an_agent_follows_vctl_config_changes(platform, poll, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"interval": 5, // seconds\n "points": "config://points.csv"}')
    (tmp_path / "points.csv").write_text("Point,Units\nT,F\n")
    ok(vctl(platform, "config", "store", "watcher", "config", str(tmp_path / "config.json")))
    ok(vctl(platform, "config", "store", "watcher", "points.csv", str(tmp_path / "points.csv"), "--csv"))
    agent = recorder(platform, "watcher")
    points = [{"Point": "T", "Units": "F"}]
    poll(lambda: len(agent.seen) >= 2, 10, "the NEW callbacks")
    assert agent.seen == [("config", "NEW", {"interval": 5, "points": points}), ("points.csv", "NEW", points)]

    ok(vctl(platform, "config", "store", "watcher", "points.csv", "--csv", stdin="Point,Units\nT,C\n"))
    poll(lambda: len(agent.seen) >= 4, 10, "the UPDATE callbacks")
    new_points = [{"Point": "T", "Units": "C"}]
    assert sorted(agent.seen[2:]) == [("config", "UPDATE", {"interval": 5, "points": new_points}),
                                      ("points.csv", "UPDATE", new_points)]

    ok(vctl(platform, "config", "store", "watcher", "note", "--raw", stdin="hello"))
    ok(vctl(platform, "config", "delete", "watcher", "note"))
    poll(lambda: len(agent.seen) >= 6, 10, "NEW and DELETE of the note")
    assert agent.seen[4:] == [("note", "NEW", "hello"), ("note", "DELETE", None)]
    assert ok(vctl(platform, "config", "list", "watcher")) == "config\npoints.csv\n"
    assert json.loads(ok(vctl(platform, "config", "get", "watcher", "config"))) == {
        "interval": 5, "points": "config://points.csv"}
    assert ok(vctl(platform, "config", "get", "watcher", "points.csv", "--raw")) == "Point,Units\nT,C\n"


def test_a_bad_json_file_is_one_line_and_nothing_is_stored(platform, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1\n  "b": 2\n}\n')
    result = vctl(platform, "config", "store", "someone", "config", str(bad))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"vctl: error: {bad}: line 3, column 3: invalid JSON: Expecting ',' delimiter\n"
    assert ok(vctl(platform, "config", "list")) == ""
    missing = vctl(platform, "config", "get", "someone", "config")
    assert missing.returncode == 20, missing.stderr
    assert missing.stderr.splitlines()[-1] == "vctl: error: no configuration 'config' for 'someone'"
    assert "Traceback" not in missing.stderr


def test_store_dir_get_all_and_edit(platform, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "devices").mkdir(parents=True)
    (tree / "config").write_text('{"device": "config://devices/rtu1"}')
    (tree / "devices" / "rtu1").write_text('{"registry": "config://rtu1.csv"}')
    (tree / "rtu1.csv").write_text("Point\nT\n")
    stored = ok(vctl(platform, "config", "store-dir", "driver", str(tree)))
    assert stored == "stored 3 configuration(s) for driver\n"
    assert json.loads(ok(vctl(platform, "config", "get-all", "driver"))) == {
        "config": {"device": {"registry": [{"Point": "T"}]}},
        "devices/rtu1": {"registry": [{"Point": "T"}]},
        "rtu1.csv": [{"Point": "T"}]}
    editor = tmp_path / "editor.py"
    editor.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text().replace('rtu1', 'rtu2'))\n")
    ok(vctl(platform, "config", "edit", "driver", "config", EDITOR=f"{sys.executable} {editor}", VISUAL=""))
    assert ok(vctl(platform, "config", "get", "driver", "config", "--raw")) == '{"device": "config://devices/rtu2"}\n'
    ok(vctl(platform, "config", "delete", "driver", "--all"))
    assert ok(vctl(platform, "config", "list")) == ""


def test_an_agent_cannot_write_another_agents_store(platform, poll) -> None:
    ok(vctl(platform, "config", "store", "victim", "config", "--json", stdin='{"safe": true}'))
    victim = recorder(platform, "victim")
    poll(lambda: victim.seen, 10, "the victim's configuration")
    intruder = recorder(platform, "intruder")
    with pytest.raises(Unauthorized):
        intruder.vip.rpc.call("platform.config_store", "manage_store", "victim", "config", "[1]",
                              "json").get(timeout=10)
    with pytest.raises(Unauthorized):
        intruder.vip.rpc.call("platform.config_store", "set_config", "victim", "config", "[1]",
                              "json").get(timeout=10)
    intruder.vip.config.set("config", {"mine": True})  # lands in its own store only
    assert ok(vctl(platform, "config", "list")) == "intruder\nvictim\n"
    assert json.loads(ok(vctl(platform, "config", "get", "victim", "config"))) == {"safe": True}
    assert victim.seen == [("config", "NEW", {"safe": True})]
