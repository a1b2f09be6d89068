"""Federation and shovel settings (reference §6.5): parsing, parameters, link states, plugin enabling."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from volttron.client.messagebus import rmq_link_config as link_config
from volttron.client.messagebus import rmq_links as links
from volttron.client.messagebus.rmq_admin import BrokerAdminError
from volttron.client.messagebus.rmq_config import BrokerSettings
from volttron.client.messagebus.rmq_wire import Origin, message_origin
from volttron.utils.errors import ConfigError

LOCAL = BrokerSettings(host="127.0.0.1", port=5672, vhost="b-vhost", instance_name="B")


def upstream_entry(**more: Any) -> dict[str, Any]:
    return {"virtual-host": "a-vhost", "password": "p@ss/word", **more}


# -- federation ------------------------------------------------------------------------------------

def test_an_upstream_is_named_by_host_and_vhost_and_logs_in_with_a_url_encoded_plain_uri() -> None:
    [upstream] = link_config.parse_federation({"a.example.com": upstream_entry(port=5673)}, "B")
    assert upstream.name == "upstream-a.example.com-a-vhost"
    assert upstream.remote.user == "B-federation"  # the default user
    assert upstream.remote.uri() == "amqp://B-federation:p%40ss%2Fword@a.example.com:5673/a-vhost"
    assert "p@ss" not in upstream.remote.redacted()
    value = upstream.parameter()
    assert value["trust-user-id"] is True and value["max-hops"] == 1 and value["uri"] == upstream.remote.uri()


def test_two_vhosts_of_one_host_are_two_upstreams_when_the_entries_name_their_host() -> None:
    upstreams = link_config.parse_federation({
        "first": upstream_entry(host="127.0.0.1", **{"federation-user": "fed"}),
        "second": upstream_entry(host="127.0.0.1", **{"virtual-host": "c/vhost"}),
    }, "B")
    assert [u.name for u in upstreams] == ["upstream-127.0.0.1-a-vhost", "upstream-127.0.0.1-c/vhost"]
    assert upstreams[0].remote.user == "fed"
    assert upstreams[1].remote.uri().endswith("@127.0.0.1:5672/c%2Fvhost")


def test_the_same_host_and_vhost_twice_is_an_error() -> None:
    with pytest.raises(ConfigError, match="same link 'upstream-h-a-vhost'"):
        link_config.parse_federation({"x": upstream_entry(host="h"), "y": upstream_entry(host="h")}, "B")


def tls_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for key in ("remote_ca", "public_cert", "private_key"):
        path = tmp_path / f"{key}.pem"
        path.write_text("-----\n")
        files[key] = str(path)
    return files


def test_certificates_make_an_amqps_uri_with_external_login(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    entry = {"virtual-host": "v", "certificates": files}
    [upstream] = link_config.parse_federation({"a.example.com": entry}, "B")
    uri = urlsplit(upstream.remote.uri())
    assert (uri.scheme, uri.hostname, uri.port, uri.path, uri.username) == (
        "amqps", "a.example.com", 5671, "/v", None)
    query = {k: v[0] for k, v in parse_qs(uri.query).items()}
    assert query == {"cacertfile": files["remote_ca"], "certfile": files["public_cert"],
                     "keyfile": files["private_key"], "verify": "verify_peer",
                     "server_name_indication": "a.example.com", "auth_mechanism": "external"}


def test_certificates_with_a_password_log_in_with_the_password_over_tls(tmp_path: Path) -> None:
    entry = {"virtual-host": "v", "certificates": tls_files(tmp_path), "password": "pw", "port": 5999}
    [upstream] = link_config.parse_federation({"h": entry}, "B")
    uri = urlsplit(upstream.remote.uri())
    assert (uri.scheme, uri.username, uri.password, uri.port) == ("amqps", "B-federation", "pw", 5999)
    assert "auth_mechanism" not in uri.query


@pytest.mark.parametrize("entry,message", [
    ({"password": "x"}, "federation-upstream.h.virtual-host is required"),
    ({"virtual-host": "v"}, "federation-upstream.h: give password (plain login) or certificates"),
    ({"virtual-host": "v", "password": "x", "prot": 1}, "federation-upstream.h: unknown key(s) prot"),
    ({"virtual-host": "v", "password": "x", "port": "many"}, "federation-upstream.h.port must be a port"),
    ({"virtual-host": "v", "password": "x", "port": 70000}, "federation-upstream.h.port must be a port"),
    ({"virtual-host": "v", "certificates": {"public_cert": "/nonexistent.crt"}},
     "federation-upstream.h.certificates.public_cert: file /nonexistent.crt not found"),
    ({"virtual-host": "v", "certificates": {"ca": "x"}},
     "federation-upstream.h.certificates: unknown key(s) ca"),
    ("just text", "federation-upstream.h must be a mapping"),
])
def test_a_bad_entry_names_its_key(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        link_config.parse_federation({"h": entry}, "B", "")
    assert str(info.value).startswith(message)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rabbitmq_federation_config.yml"
    path.write_text("federation-upstream:\n  h:\n    port: 5672\n")
    entries = link_config.load_links_file(path, link_config.FEDERATION_KEY)
    with pytest.raises(ConfigError, match=f"^{path}: federation-upstream.h.virtual-host is required"):
        link_config.parse_federation(entries, "B", str(path))


@pytest.mark.parametrize("text,message", [
    ("upstreams: {}\n", "unknown key(s) upstreams"),
    ("federation-upstream: []\n", "'federation-upstream' must map remote hosts"),
])
def test_a_bad_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        link_config.load_links_file(path, link_config.FEDERATION_KEY)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        link_config.load_links_file(tmp_path / "nope.yml", link_config.SHOVEL_KEY)


# -- shovels ------------------------------------------------------------------------------------

def test_shovels_for_topics_and_rpc_peers_with_their_source_keys() -> None:
    entry = {"virtual-host": "b-vhost", "password": "pw", "pubsub": {"pub": ["devices/x/", "alerts"]},
             "rpc": {"B": [["caller", "platform.callee"], ["other", "platform.callee"], ["caller", "z"]]}}
    shovels = {s.name: s.source_key for s in link_config.parse_shovels({"b.example.com": entry}, "A")}
    prefix = "shovel-b.example.com-b-vhost"
    assert shovels == {
        f"{prefix}-pubsub-devices.x": "__pubsub__.A.devices.x.#",
        f"{prefix}-pubsub-alerts": "__pubsub__.A.alerts.#",
        f"{prefix}-rpc-B.platform.callee": "B.platform.callee.#",  # one shovel for both callers
        f"{prefix}-rpc-B.z": "B.z.#",
    }


def test_a_shovel_publishes_as_its_own_login_from_the_local_node() -> None:
    entry = {"virtual-host": "b v", "password": "pw", "pubsub": {"p": ["t"]}}
    [shovel] = link_config.parse_shovels({"h": entry}, "A")
    value = shovel.parameter("a/vhost")
    assert value["src-uri"] == "amqp:///a%2Fvhost"
    assert value["dest-uri"] == "amqp://A-shovel:pw@h:5672/b%20v"
    assert (value["src-exchange"], value["dest-exchange"], value["src-exchange-key"]) == (
        "volttron", "volttron", "__pubsub__.A.t.#")
    assert value["dest-publish-properties"] == {"user_id": "A-shovel"}
    assert value["dest-add-forward-headers"] is True


@pytest.mark.parametrize("entry,message", [
    ({}, "shovel.h: give pubsub topics or rpc pairs"),
    ({"pubsub": ["t"]}, "shovel.h.pubsub must map local identities"),
    ({"pubsub": {"p": "t"}}, "shovel.h.pubsub.p must be a list of topics"),
    ({"rpc": {"B": ["caller"]}}, "shovel.h.rpc.B must be a list of [local identity, remote identity]"),
    ({"rpc": {"A": [["x", "y"]]}}, "shovel.h.rpc.A names this instance"),
])
def test_a_bad_shovel_entry_names_its_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        link_config.parse_shovels({"h": {"virtual-host": "v", "password": "p", **entry}}, "A")
    assert str(info.value).startswith(message)


# -- link states ----------------------------------------------------------------------------------

def test_rabbitmqctl_errors_become_text() -> None:
    assert links.describe_error(["auth_failure", [65, 67, 67]]) == "auth_failure: ACC"
    assert links.describe_error("not_allowed") == "not_allowed"


def states(*answers: dict[str, tuple[str, str]]):
    remaining = list(answers)

    def read(vhost: str) -> dict[str, tuple[str, str]]:
        assert vhost == "v"
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return read


def test_waiting_ends_when_every_link_runs() -> None:
    read = states({}, {"x": ("starting", "")}, {"x": ("running", ""), "y": ("running", "")})
    links.wait_for_links(read, "v", ["x", "y"], timeout=5, poll=0)


@pytest.mark.parametrize("problem,advice", [
    ("auth_failure: ACCESS_REFUSED", "wrong user or password"),
    ("not_allowed", "the remote vhost does not exist"),
])
def test_a_failed_link_is_reported_with_advice(problem: str, advice: str) -> None:
    with pytest.raises(links.BrokerLinkError, match=f"link x failed: {problem}.*{advice}"):
        links.wait_for_links(states({"x": ("error", problem)}), "v", ["x"], timeout=5, poll=0)


def test_a_link_that_never_starts_times_out_naming_it() -> None:
    expected = r"not running after 0.1 s: x \(starting\), y \(not started\)"
    with pytest.raises(links.BrokerLinkError, match=expected):
        links.wait_for_links(states({"x": ("starting", "")}), "v", ["x", "y"], timeout=0.1, poll=0.01)


# -- applying, with a broker that keeps its parameters in memory ------------------------------------

class MemoryAdmin:
    """The parameter and policy calls of a BrokerAdmin, in memory."""

    kind = "memory"

    def __init__(self, vhosts: tuple[str, ...] = ("a-vhost", "b-vhost"), refuse: str = "") -> None:
        self._vhosts = list(vhosts)
        self.params: dict[tuple[str, str], dict[str, Any]] = {}
        self.policy: dict[str, dict[str, Any]] = {}
        self.refuse = refuse

    def vhosts(self) -> list[str]:
        return self._vhosts

    def parameters(self, component: str, vhost: str) -> dict[str, Any]:
        return dict(self.params.get((component, vhost), {}))

    def set_parameter(self, component: str, vhost: str, name: str, value: dict[str, Any]) -> None:
        if self.refuse and self.refuse in name:
            raise BrokerAdminError("rabbitmqctl set_parameter failed: Validation failed component shovel "
                                   "not found")
        self.params.setdefault((component, vhost), {})[name] = value

    def clear_parameter(self, component: str, vhost: str, name: str) -> None:
        self.params.get((component, vhost), {}).pop(name, None)

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, Any],
                   apply_to: str = "all", priority: int = 0) -> None:
        self.policy[name] = {"pattern": pattern, "definition": definition, "apply-to": apply_to}

    def clear_policy(self, vhost: str, name: str) -> None:
        self.policy.pop(name, None)

    def link_status(self, kind: str, vhost: str) -> list[dict[str, Any]] | None:
        return None  # like a management API without the plugins' status pages


def test_federation_sets_the_upstream_and_the_policy_and_removing_the_last_upstream_drops_it() -> None:
    admin = MemoryAdmin()
    upstreams = link_config.parse_federation({"x": upstream_entry(host="127.0.0.1")}, "B")
    report = links.apply_federation(admin, LOCAL, upstreams)  # type: ignore[arg-type]
    assert set(admin.parameters("federation-upstream", "b-vhost")) == {"upstream-127.0.0.1-a-vhost"}
    assert admin.policy["volttron-federation"] == {"pattern": "^volttron", "apply-to": "exchanges",
                                                   "definition": {"federation-upstream-set": "all"}}
    assert any("not checked" in note for note in report.notes)  # no status to read from this admin
    links.apply_federation(admin, LOCAL, upstreams)  # type: ignore[arg-type]  # twice is safe
    assert links.remove_links(admin, "b-vhost", "federation",  # type: ignore[arg-type]
                              "upstream-127.0.0.1-a-vhost") == ["upstream-127.0.0.1-a-vhost"]
    assert admin.policy == {} and admin.parameters("federation-upstream", "b-vhost") == {}
    expected = r"no federation named 'gone' on vhost 'b-vhost' \(there: "
    with pytest.raises(links.BrokerLinkError, match=expected):
        links.remove_links(admin, "b-vhost", "federation", "gone")  # type: ignore[arg-type]


def test_a_remote_vhost_missing_on_the_same_broker_is_refused_before_anything_is_set() -> None:
    admin = MemoryAdmin()
    upstreams = link_config.parse_federation({"localhost": upstream_entry(**{"virtual-host": "nosuch"})}, "B")
    expected = "remote vhost 'nosuch' does not exist on the broker at local"
    with pytest.raises(links.BrokerLinkError, match=expected):
        links.apply_federation(admin, LOCAL, upstreams)  # type: ignore[arg-type]
    assert admin.params == {} and admin.policy == {}


def test_a_failure_leaves_nothing_of_the_run_behind() -> None:
    admin = MemoryAdmin(refuse="rpc")
    entry = {"virtual-host": "a-vhost", "password": "p", "pubsub": {"p": ["t"]}, "rpc": {"A": [["x", "y"]]}}
    shovels = link_config.parse_shovels({"127.0.0.1": entry}, "B")
    with pytest.raises(links.BrokerLinkError, match="enable rabbitmq_shovel.*the link was not kept"):
        links.apply_shovels(admin, LOCAL, shovels)  # type: ignore[arg-type]
    assert admin.parameters("shovel", "b-vhost") == {}


def fake_command(tmp_path: Path, exit_code: int, text: str) -> str:
    script = tmp_path / "fake-rabbitmq-plugins"
    script.write_text(f"#!/bin/sh\necho '{text}' >&2\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_a_plugin_that_cannot_be_enabled_says_what_to_run(tmp_path: Path) -> None:
    admin = MemoryAdmin(refuse="upstream")
    upstreams = link_config.parse_federation({"127.0.0.1": upstream_entry()}, "B")
    command = fake_command(tmp_path, 2, "Error: permission denied")
    with pytest.raises(links.BrokerLinkError) as info:
        links.apply_federation(admin, LOCAL, upstreams, plugins_command=command)  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith("cannot enable rabbitmq_federation (Error: permission denied): run "
                           "'rabbitmq-plugins enable rabbitmq_federation' on the broker's host as root")
    assert "\n" not in text


def test_plugins_are_enabled_on_this_host_only(tmp_path: Path) -> None:
    command = fake_command(tmp_path, 0, "ok")
    assert links.ensure_plugins(LOCAL, links.PLUGINS, command) == (
        "enabled broker plugins rabbitmq_federation, rabbitmq_shovel")
    remote = BrokerSettings(host="broker.invalid")
    assert links.ensure_plugins(remote, links.PLUGINS, command) is None
    with pytest.raises(links.BrokerLinkError, match="no-such-command not found"):
        links.ensure_plugins(LOCAL, links.PLUGINS, "no-such-command")


def test_the_link_users_may_do_only_what_their_link_needs() -> None:
    federation = links.link_user_permissions("federation")
    assert (federation.configure, federation.write, federation.read) == (
        "^federation: .*$", "^federation: .*$", "^(volttron|federation: .*)$")
    shovel = links.link_user_permissions("shovel")
    assert (shovel.configure, shovel.write, shovel.read) == ("^$", "^volttron$", "^$")


# -- who sent a linked message -----------------------------------------------------------------------

FEDERATED = {"x-received-from": [{"uri": "amqp://a/v"}]}
SHOVELLED = {"x-shovelled": [{"shovel-name": "s"}]}


@pytest.mark.parametrize("headers", [FEDERATED, SHOVELLED])
def test_a_linked_message_from_another_instances_user_keeps_that_user(headers: dict[str, Any]) -> None:
    origin = message_origin("B", "A.pub", "A.pub", headers, frozenset({"B-admin"}))
    assert origin == Origin("A.pub", "A.pub")


@pytest.mark.parametrize("user", ["B-admin", "B.agent", "B-shovel"])
@pytest.mark.parametrize("headers", [FEDERATED, SHOVELLED])
def test_a_linked_message_claiming_one_of_our_users_is_dropped(headers: dict[str, Any], user: str) -> None:
    assert message_origin("B", "B.agent", user, headers, frozenset({"B-admin"})) is None


def test_a_linked_message_nobody_vouches_for_is_dropped() -> None:
    assert message_origin("B", "A.pub", None, FEDERATED, frozenset({"B-admin"})) is None


# -- the command, asking on a terminal -------------------------------------------------------------

@pytest.mark.parametrize("kind,extra,expected", [
    ("federation", [], {"upstream-127.0.0.1-a-vhost"}),
    ("shovel", ["devices/x, alerts", "A:caller:callee"],
     {"shovel-127.0.0.1-a-vhost-pubsub-devices.x", "shovel-127.0.0.1-a-vhost-pubsub-alerts",
      "shovel-127.0.0.1-a-vhost-rpc-A.callee"}),
])
def test_vcfg_asks_on_a_terminal_when_given_nothing(monkeypatch, tmp_path: Path, kind: str,
                                                    extra: list[str], expected: set[str]) -> None:
    from click.testing import CliRunner

    from volttron.client.commands import rabbitmq as command
    from volttron.client.commands.vcfg import vcfg

    admin = MemoryAdmin()
    monkeypatch.setattr(command, "_local_broker", lambda home: (LOCAL, admin))
    monkeypatch.setattr(command, "_interactive", lambda: True)
    answers = "\n".join(["127.0.0.1", "5672", "a-vhost", "", "secret", *extra]) + "\n"
    result = CliRunner().invoke(vcfg, ["--vhome", str(tmp_path), "rabbitmq", kind], input=answers)
    assert result.exit_code == 0, result.output
    component = "federation-upstream" if kind == "federation" else "shovel"
    made = admin.parameters(component, "b-vhost")
    assert set(made) == expected
    uri = next(iter(made.values())).get("uri") or next(iter(made.values()))["dest-uri"]
    assert uri == f"amqp://B-{kind}:secret@127.0.0.1:5672/a-vhost"


def test_vcfg_reads_the_file_in_the_home_when_given_nothing(monkeypatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from volttron.client.commands import rabbitmq as command
    from volttron.client.commands.vcfg import vcfg

    admin = MemoryAdmin()
    monkeypatch.setattr(command, "_local_broker", lambda home: (LOCAL, admin))
    monkeypatch.setattr(command, "_interactive", lambda: False)
    (tmp_path / "rabbitmq_shovel_config.yml").write_text(
        "shovel:\n  127.0.0.1:\n    virtual-host: a-vhost\n    password: pw\n    pubsub: {p: [t]}\n")
    result = CliRunner().invoke(vcfg, ["--vhome", str(tmp_path), "rabbitmq", "shovel"])
    assert result.exit_code == 0, result.output
    assert set(admin.parameters("shovel", "b-vhost")) == {"shovel-127.0.0.1-a-vhost-pubsub-t"}
    (tmp_path / "rabbitmq_shovel_config.yml").write_text("shovel:\n  127.0.0.1: {password: pw}\n")
    result = CliRunner().invoke(vcfg, ["--vhome", str(tmp_path), "rabbitmq", "shovel"])
    assert result.exit_code == 1
    assert "rabbitmq_shovel_config.yml: shovel.127.0.0.1.virtual-host is required" in result.output


def test_a_management_api_that_cannot_tell_link_states_leaves_the_links_with_a_note(monkeypatch) -> None:
    from volttron.client.messagebus.rmq_admin import HttpAdmin

    admin = HttpAdmin("http://127.0.0.1:15672", "u", "p")
    memory = MemoryAdmin()
    for name in ("vhosts", "parameters", "set_parameter", "clear_parameter", "set_policy", "clear_policy"):
        monkeypatch.setattr(admin, name, getattr(memory, name))
    monkeypatch.setattr(admin, "_request", lambda method, path, body=None, headers=None: None)  # 404
    upstreams = link_config.parse_federation({"127.0.0.1": upstream_entry()}, "B")
    report = links.apply_federation(admin, LOCAL, upstreams)
    assert report.notes == ["link status not checked: the management API has no federation-links (enable "
                            "rabbitmq_federation_management)"]
    assert set(memory.parameters("federation-upstream", "b-vhost")) == {"upstream-127.0.0.1-a-vhost"}
