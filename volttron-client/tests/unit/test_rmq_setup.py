"""``vcfg rabbitmq single`` without a broker: an in-memory administrator stands in for it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from volttron.client.messagebus import rmq_setup, rmq_testing
from volttron.client.messagebus.rmq_admin import (
    ADMIN_PERMISSIONS,
    BrokerAdmin,
    BrokerDown,
    Permissions,
    TopicPermissions,
)
from volttron.client.messagebus.rmq_setup import SingleSetup, load_setup_file, merge_setup, setup_single
from volttron.utils.config import load_config, load_platform_config
from volttron.utils.errors import ConfigError


class MemoryAdmin(BrokerAdmin):
    kind = "memory"

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.vhost_names: set[str] = set()
        self.passwords: dict[str, str | None] = {}
        self.tags: dict[str, list[str]] = {}
        self.grants: dict[tuple[str, str], Permissions] = {}
        self.topics: dict[tuple[str, str, str], TopicPermissions] = {}
        self.params: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.policy_table: dict[tuple[str, str], dict[str, Any]] = {}
        self.closed: list[str] = []

    def check(self) -> None:
        if self.down:
            raise BrokerDown("the RabbitMQ node is not running")

    def vhosts(self) -> list[str]:
        return sorted(self.vhost_names)

    def add_vhost(self, name: str) -> None:
        self.vhost_names.add(name)

    def delete_vhost(self, name: str) -> None:
        self.vhost_names.discard(name)

    def users(self) -> dict[str, list[str]]:
        return dict(self.tags)

    def put_user(self, name: str, password: str | None, tags: Sequence[str] | None = (),
                 exists: bool | None = None, grant: tuple[str, Permissions] | None = None) -> None:
        self.passwords[name] = password
        if tags is not None:
            self.tags[name] = list(tags)
        if grant is not None:
            self.grants[(grant[0], name)] = grant[1]

    def delete_user(self, name: str) -> None:
        self.passwords.pop(name, None)
        self.tags.pop(name, None)

    def permissions(self, vhost: str) -> dict[str, Permissions]:
        return {user: p for (v, user), p in self.grants.items() if v == vhost}

    def set_permissions(self, vhost: str, user: str, permissions: Permissions) -> None:
        self.grants[(vhost, user)] = permissions

    def close_user_connections(self, user: str, reason: str) -> None:
        self.closed.append(user)

    def link_status(self, kind: str, vhost: str) -> list[dict[str, Any]] | None:
        return []

    def topic_permissions(self, vhost: str) -> dict[str, dict[str, TopicPermissions]]:
        found: dict[str, dict[str, TopicPermissions]] = {}
        for (v, user, exchange), permissions in self.topics.items():
            if v == vhost:
                found.setdefault(user, {})[exchange] = permissions
        return found

    def set_topic_permissions(self, vhost: str, user: str, exchange: str,
                              permissions: TopicPermissions) -> None:
        self.topics[(vhost, user, exchange)] = permissions

    def clear_topic_permissions(self, vhost: str, user: str) -> None:
        self.topics = {k: v for k, v in self.topics.items() if k[:2] != (vhost, user)}

    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        return {}

    def delete_queue(self, vhost: str, name: str) -> None:
        pass

    def set_user_limits(self, user: str, limits: dict[str, int]) -> None:
        pass

    def parameters(self, component: str, vhost: str) -> dict[str, Any]:
        return {name: value for (c, v, name), value in self.params.items() if (c, v) == (component, vhost)}

    def set_parameter(self, component: str, vhost: str, name: str, value: dict[str, Any]) -> None:
        self.params[(component, vhost, name)] = value

    def clear_parameter(self, component: str, vhost: str, name: str) -> None:
        self.params.pop((component, vhost, name), None)

    def policies(self, vhost: str) -> dict[str, dict[str, Any]]:
        return {name: policy for (v, name), policy in self.policy_table.items() if v == vhost}

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, Any],
                   apply_to: str = "all", priority: int = 0) -> None:
        self.policy_table[(vhost, name)] = {"pattern": pattern, "definition": definition,
                                            "apply-to": apply_to, "priority": priority}

    def clear_policy(self, vhost: str, name: str) -> None:
        self.policy_table.pop((vhost, name), None)


@pytest.fixture(autouse=True)
def no_broker_port(monkeypatch):
    """No AMQP listener: the exchanges are left to the platform (and nothing touches the network)."""
    monkeypatch.setattr(rmq_setup, "port_open", lambda host, port, timeout=2.0: False)


def test_a_first_run_prepares_broker_and_home(tmp_path: Path) -> None:
    admin = MemoryAdmin()
    home = tmp_path / "home"
    report = setup_single(SingleSetup(home=home, instance_name="inst", vhost="v"), admin)
    assert admin.vhost_names == {"v"} and admin.tags["inst-admin"] == ["administrator"]
    assert admin.grants[("v", "inst-admin")] == ADMIN_PERMISSIONS
    config = load_config(home / "rabbitmq_config.yml")
    assert config["user"] == "inst-admin" and config["password"] == admin.passwords["inst-admin"]
    assert (home / "rabbitmq_config.yml").stat().st_mode & 0o077 == 0
    assert load_platform_config(home / "config") == {"message-bus": "rmq", "instance-name": "inst"}
    assert any("exchanges not declared" in note for note in report.notes)


def test_a_second_run_keeps_the_password_and_other_config(tmp_path: Path) -> None:
    admin = MemoryAdmin()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config").write_text("[volttron]\nvip-address = tcp://127.0.0.1:22916\n")
    setup_single(SingleSetup(home=home, instance_name="inst"), admin)
    first = admin.passwords["inst-admin"]
    setup_single(SingleSetup(home=home, instance_name="inst"), admin)
    assert admin.passwords["inst-admin"] == first
    assert load_platform_config(home / "config")["vip-address"] == "tcp://127.0.0.1:22916"


def test_another_instance_name_in_the_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config").write_text("[volttron]\ninstance-name = other\n")
    with pytest.raises(ConfigError, match="other"):
        setup_single(SingleSetup(home=home, instance_name="inst"), MemoryAdmin())


def test_a_stopped_broker_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BrokerDown):
        setup_single(SingleSetup(home=tmp_path, instance_name="inst"), MemoryAdmin(down=True))
    with pytest.raises(BrokerDown, match="no RabbitMQ broker answers"):
        setup_single(SingleSetup(home=tmp_path, instance_name="inst"))  # nothing listens (patched)


def test_tls_makes_certificates_and_the_broker_configuration_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    setup = SingleSetup(home=home, instance_name="inst", host="broker.example", ssl=True)
    report = setup_single(setup, MemoryAdmin())
    certs = home / "certificates" / "certs"
    for name in ("inst-root-ca", "inst-server", "inst-admin", "inst-trusted-cas"):
        assert (certs / f"{name}.crt").is_file()
    conf = (home / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "auth_mechanisms.1 = EXTERNAL" in conf and "ssl_cert_login_from = common_name" in conf
    assert "fail_if_no_peer_cert = true" in conf and "listeners.ssl.default = 5671" in conf
    assert any("restart the broker" in note for note in report.notes)
    ca = (certs / "inst-root-ca.crt").read_bytes()
    again = setup_single(setup, MemoryAdmin())
    assert (certs / "inst-root-ca.crt").read_bytes() == ca
    assert not any("certificate authority" in line for line in again.done)


def test_settings_from_a_file_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "rmq.yml"
    path.write_text("host: h1\nvirtual-host: v1\nssl: true\ncertificate-data: {organization: ACME}\n")
    values = load_setup_file(path)
    setup = merge_setup(tmp_path, "inst", values, {"host": "h2", "amqp_port": None})
    assert (setup.host, setup.vhost, setup.ssl) == ("h2", "v1", True)
    assert setup.certificate_data == {"organization": "ACME"}
    path.write_text("hostname: h1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_setup_file(path)
    with pytest.raises(ConfigError, match="bad RabbitMQ set-up value"):
        merge_setup(tmp_path, "inst", {"amqp-port": "many"}, {})


def test_tests_skip_without_a_broker_unless_it_is_required(monkeypatch) -> None:
    monkeypatch.setattr(rmq_testing, "port_open", lambda host, port, timeout=2.0: False)
    monkeypatch.delenv(rmq_testing.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no RabbitMQ broker answers"):
        rmq_testing.require_broker()
    monkeypatch.setenv(rmq_testing.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="VOLTTRON_TEST_REQUIRE_RABBITMQ=1"):
        rmq_testing.require_broker()
    monkeypatch.setattr(rmq_testing, "port_open", lambda host, port, timeout=2.0: True)
    rmq_testing.require_broker()


def test_vcfg_asks_on_a_terminal_when_given_nothing(monkeypatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from volttron.client.commands import rabbitmq as command
    from volttron.client.commands.vcfg import vcfg

    captured = []

    def fake_setup(setup: SingleSetup) -> rmq_setup.SetupReport:
        captured.append(setup)
        return rmq_setup.SetupReport(admin=f"{setup.instance_name}-admin", done=["vhost"])

    monkeypatch.setattr(rmq_setup, "setup_single", fake_setup)
    monkeypatch.setattr(command, "_interactive", lambda: True)
    answers = "\n".join(["asked", "broker.example", "vh", "5673", "n"]) + "\n"
    result = CliRunner().invoke(vcfg, ["--vhome", str(tmp_path), "rabbitmq", "single"], input=answers)
    assert result.exit_code == 0, result.output
    setup = captured[0]
    assert (setup.instance_name, setup.host, setup.vhost, setup.amqp_port, setup.ssl) == (
        "asked", "broker.example", "vh", 5673, False)
    assert "RabbitMQ ready for instance 'asked'" in result.output


def test_vcfg_with_flags_never_asks(monkeypatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from volttron.client.commands import rabbitmq as command
    from volttron.client.commands.vcfg import vcfg

    captured = []
    monkeypatch.setattr(rmq_setup, "setup_single",
                        lambda setup: captured.append(setup) or rmq_setup.SetupReport(admin="x"))
    monkeypatch.setattr(command, "_interactive", lambda: True)
    args = ["--vhome", str(tmp_path), "rabbitmq", "single", "--instance-name", "given", "--ssl"]
    result = CliRunner().invoke(vcfg, args, input="")
    assert result.exit_code == 0, result.output
    assert captured[0].instance_name == "given" and captured[0].ssl
