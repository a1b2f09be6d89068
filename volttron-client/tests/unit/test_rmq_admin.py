"""Broker administration: rabbitmqctl (a fake script here) and the management API (a fake server)."""

from __future__ import annotations

import json
import re
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from volttron.client.messagebus.rmq_admin import (
    BrokerAdminError,
    BrokerDown,
    CtlAdmin,
    HttpAdmin,
    Permissions,
    TopicPermissions,
)
from volttron.client.messagebus.rmq_permissions import agent_permissions

FAKE_CTL = """#!{python}
import json, sys
log = {log!r}
args = sys.argv[1:]
stdin = sys.stdin.read() if args[1] in ("add_user", "change_password") else ""
with open(log, "a") as out:
    out.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
command = args[1]
if command == "list_users":
    print(json.dumps([{{"user": "guest", "tags": ["administrator"]}}]))
elif command == "add_user" and args[2] == "taken":
    sys.stderr.write("Error:\\nUser \\"taken\\" already exists\\n"); sys.exit(70)
elif command == "delete_vhost" and args[2] == "gone":
    sys.stderr.write("Virtual host 'gone' does not exist\\n"); sys.exit(65)
elif command == "list_vhosts" and {down}:
    sys.stderr.write("Error: unable to perform an operation on node 'rabbit@x'.\\n"); sys.exit(69)
elif command == "list_permissions":
    print(json.dumps([{{"user": "u", "configure": "c", "write": "w", "read": "r"}}]))
"""


def fake_ctl(tmp_path: Path, down: bool = False) -> tuple[CtlAdmin, Path]:
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "rabbitmqctl"
    script.write_text(FAKE_CTL.format(python=sys.executable, log=str(log), down=down))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return CtlAdmin(str(script)), log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_passwords_go_on_stdin_never_on_the_command_line(tmp_path: Path) -> None:
    admin, log = fake_ctl(tmp_path)
    admin.put_user("inst.alice", "s3cret", ["volttron-agent"], grant=("v", Permissions("c", "w", "r")))
    made = calls(log)
    assert all("s3cret" not in " ".join(c["args"]) for c in made)
    assert made[0] == {"args": ["-q", "add_user", "inst.alice"], "stdin": "s3cret\n"}
    assert sorted(c["args"][1] for c in made[1:]) == ["set_permissions", "set_user_tags"]


def test_an_existing_user_gets_its_password_changed(tmp_path: Path) -> None:
    admin, log = fake_ctl(tmp_path)
    admin.put_user("taken", "pw", None)
    assert [c["args"][1] for c in calls(log)] == ["add_user", "change_password"]
    assert calls(log)[1]["stdin"] == "pw\n"


def test_a_certificate_only_user_has_no_password(tmp_path: Path) -> None:
    admin, log = fake_ctl(tmp_path)
    admin.put_user("inst.tls", None, [], exists=True)
    assert [c["args"][1] for c in calls(log)] == ["clear_password"]


def test_listings_and_idempotent_deletes(tmp_path: Path) -> None:
    admin, _ = fake_ctl(tmp_path)
    assert admin.users() == {"guest": ["administrator"]}
    assert admin.permissions("v") == {"u": Permissions("c", "w", "r")}
    admin.delete_vhost("gone")  # not there: nothing to do


def test_a_stopped_node_is_broker_down(tmp_path: Path) -> None:
    admin, _ = fake_ctl(tmp_path, down=True)
    with pytest.raises(BrokerDown, match="not running"):
        admin.check()


def test_a_missing_rabbitmqctl_says_so(tmp_path: Path) -> None:
    with pytest.raises(BrokerAdminError, match="not found"):
        CtlAdmin(str(tmp_path / "nothing-here")).check()


@pytest.mark.parametrize("name,allowed", [
    ("inst.alice", True),
    ("inst.alice.pubsub", True),
    ("inst.alice.pubsub.1234", False),  # no more queues than its two
    ("amq.gen-xyz", False),  # nothing on amq.* (amq.topic could pass the topic permissions by)
    ("amq.topic", False),
    ("amq.default", False),
    ("volttron", True),
    ("inst.alicex", False),
    ("inst.bob", False),
    ("xinst.alice", False),
])
def test_agent_permissions_cover_only_its_own_queues(name: str, allowed: bool) -> None:
    permissions = agent_permissions("inst.alice")
    assert bool(re.fullmatch(permissions.read, name)) is allowed
    assert bool(re.search(permissions.configure, "volttron")) is False  # it cannot redeclare the exchange


class _Api(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, object, str]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, body, self.headers.get("Authorization", "")))
        if self.path == "/api/users":
            payload = json.dumps([{"name": "guest", "tags": "administrator"}]).encode()
        elif self.path.startswith("/api/vhosts/missing"):
            self.send_response(404)
            self.end_headers()
            return
        elif self.path == "/api/users/refused":
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"reason": "bad"}')
            return
        else:
            payload = b""
        self.send_response(200 if payload else 204)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_DELETE = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api():
    _Api.requests = []
    server = HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpAdmin(f"http://127.0.0.1:{server.server_port}", "admin", "pw"), _Api.requests
    server.shutdown()
    server.server_close()


def test_the_management_api_requests(api) -> None:
    admin, requests = api
    assert admin.users() == {"guest": ["administrator"]}
    admin.put_user("inst.a/b", "pw", ["volttron-agent"], grant=("v h", Permissions("c", "w", "r")))
    admin.delete_vhost("missing")  # 404: already gone
    assert requests[1][:3] == ("PUT", "/api/users/inst.a%2Fb", {"tags": "volttron-agent", "password": "pw"})
    assert requests[2][:3] == ("PUT", "/api/permissions/v%20h/inst.a%2Fb",
                               {"configure": "c", "write": "w", "read": "r"})
    assert requests[0][3].startswith("Basic ")


def test_the_management_api_reports_refusals_and_silence(api) -> None:
    admin, _ = api
    with pytest.raises(BrokerAdminError, match="HTTP 400"):
        admin.put_user("refused", "pw")
    with pytest.raises(BrokerDown):
        HttpAdmin("http://127.0.0.1:9", "a", "b", timeout=2).check()


def test_the_management_api_parameter_policy_and_topic_requests(api) -> None:
    admin, requests = api
    admin.set_parameter("federation-upstream", "v", "up-1", {"uri": "amqp://h"})
    admin.set_policy("v", "fed", "^volttron$", {"federation-upstream-set": "all"}, "exchanges")
    admin.set_topic_permissions("v", "inst.a", "volttron", TopicPermissions("^w", "^r"))
    admin.clear_parameter("shovel", "v", "s")
    admin.clear_policy("v", "fed")
    admin.clear_topic_permissions("v", "inst.a")
    assert [r[:3] for r in requests] == [
        ("PUT", "/api/parameters/federation-upstream/v/up-1",
         {"component": "federation-upstream", "vhost": "v", "name": "up-1", "value": {"uri": "amqp://h"}}),
        ("PUT", "/api/policies/v/fed",
         {"pattern": "^volttron$", "definition": {"federation-upstream-set": "all"}, "apply-to": "exchanges",
          "priority": 0}),
        ("PUT", "/api/topic-permissions/v/inst.a", {"exchange": "volttron", "write": "^w", "read": "^r"}),
        ("DELETE", "/api/parameters/shovel/v/s", None),
        ("DELETE", "/api/policies/v/fed", None),
        ("DELETE", "/api/topic-permissions/v/inst.a", None),
    ]
