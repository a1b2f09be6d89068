"""Where a RabbitMQ peer finds its broker and how it logs in (reference §6.1, §6.2a)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from volttron.client.messagebus.base import ConnectionParams
from volttron.client.messagebus.rmq_config import (
    BrokerSettings,
    admin_settings,
    parse_amqp_url,
    settings_from_config,
)
from volttron.client.messagebus.rmq_credentials import derive_password
from volttron.client.messagebus.rmq_login import pika_credentials, resolve_login, ssl_options
from volttron.utils.errors import ConfigError, KeyFormatError
from volttron.utils.keys import generate_keypair


def test_an_amqp_url_with_everything() -> None:
    settings = parse_amqp_url("amqp://bob:p%40ss@broker.example:5673/my%2Fvhost?instance=inst&heartbeat=5")
    assert settings == BrokerSettings(host="broker.example", port=5673, vhost="my/vhost",
                                      instance_name="inst", username="bob", password="p@ss", heartbeat=5)
    assert settings.redacted() == "amqp://broker.example:5673/my%2Fvhost"
    assert "p@ss" not in repr(settings.redacted())


def test_amqps_defaults() -> None:
    settings = parse_amqp_url("amqps://host?certfile=/c.crt&keyfile=/c.pem&cafile=/ca.crt")
    assert (settings.port, settings.vhost, settings.ssl, settings.external) == (5671, "volttron", True, True)


@pytest.mark.parametrize("url,text", [
    ("http://host/v", "amqp://"),
    ("amqp:///v", "no host"),
    ("amqp://host:notaport/v", "bad broker address"),
    ("amqp://host/v?colour=red", "unknown broker address parameter"),
    ("amqp://host/v?heartbeat=-1", "heartbeat"),
])
def test_bad_urls_say_what_is_wrong(url: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        parse_amqp_url(url)


def test_bad_url_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_amqp_url("amqp://bob:secret@host:x/v")
    assert "secret" not in str(raised.value)


def test_settings_from_rabbitmq_config(tmp_path: Path) -> None:
    config = {"host": "h", "virtual-host": "v", "amqp-port": 5000, "ssl": False, "instance-name": "i"}
    settings = settings_from_config(config, tmp_path)
    assert (settings.host, settings.port, settings.vhost, settings.instance_name) == ("h", 5000, "v", "i")
    tls = settings_from_config({**config, "ssl": "true", "amqp-port-ssl": 6000}, tmp_path)
    assert tls.ssl and tls.port == 6000 and tls.cafile.endswith("certs/i-trusted-cas.crt")
    with pytest.raises(ConfigError, match="ssl"):
        settings_from_config({**config, "ssl": "maybe"}, tmp_path)


def test_admin_settings_need_a_password_or_a_certificate(tmp_path: Path) -> None:
    assert admin_settings({"password": "pw"}, tmp_path, "inst").username == "inst-admin"
    assert admin_settings({"user": "root", "password": "pw"}, tmp_path, "inst").username == "root"
    with pytest.raises(ConfigError, match="no password"):
        admin_settings({}, tmp_path, "inst")


def test_both_sides_derive_the_same_password_and_only_for_that_user() -> None:
    agent, platform = generate_keypair(), generate_keypair()
    mine = derive_password(agent.secret, platform.public, "inst.alice")
    assert mine == derive_password(platform.secret, agent.public, "inst.alice")
    assert mine != derive_password(agent.secret, platform.public, "inst.bob")
    assert mine != derive_password(generate_keypair().secret, platform.public, "inst.alice")
    with pytest.raises(KeyFormatError):
        derive_password("short", platform.public, "inst.alice")


def _write_config(home: Path, **extra: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    values = {"host": "127.0.0.1", "virtual-host": "v", "ssl": False, "instance-name": "inst", **extra}
    (home / "rabbitmq_config.yml").write_text(json.dumps(values))


def test_login_from_the_url() -> None:
    params = ConnectionParams("amqp://u:p@h/v?instance=i", "alice")
    assert resolve_login(params).username == "u"


def test_login_from_curve_keys_with_the_home_named_by_the_local_address(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write_config(home)
    agent, platform = generate_keypair(), generate_keypair()
    address = f"ipc://@{home}/run/vip.socket"
    params = ConnectionParams(address, "alice", agent.public, agent.secret, platform.public)
    settings = resolve_login(params)
    assert (settings.username, settings.vhost, settings.instance_name) == ("inst.alice", "v", "inst")
    assert settings.password == derive_password(platform.secret, agent.public, "inst.alice")


def test_login_from_the_platform_context() -> None:
    context = BrokerSettings(host="h", instance_name="inst", username="inst-admin", password="pw")
    params = ConnectionParams("inproc://vip", "platform.auth", options={"context": context})
    settings = resolve_login(params)
    assert (settings.host, settings.username, settings.password) == ("h", "inst-admin", "pw")


def test_tls_login_uses_the_agent_certificate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write_config(home, ssl=True)
    certs = home / "certificates"
    (certs / "certs").mkdir(parents=True)
    (certs / "private").mkdir()
    (certs / "certs" / "inst.alice.crt").write_text("cert")
    (certs / "private" / "inst.alice.pem").write_text("key")
    settings = resolve_login(ConnectionParams("", "alice", options={"volttron_home": str(home)}))
    assert settings.external and settings.username == "inst.alice"
    assert type(pika_credentials(settings)).__name__ == "ExternalCredentials"
    with pytest.raises(ConfigError, match="TLS files"):
        ssl_options(settings)  # the files above are not PEM


def test_no_login_is_one_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write_config(home)
    with pytest.raises(ConfigError, match="no broker login for inst.alice"):
        resolve_login(ConnectionParams("", "alice", options={"volttron_home": str(home)}))


def test_a_home_without_rabbitmq_config_says_run_vcfg(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vcfg rabbitmq single"):
        resolve_login(ConnectionParams("", "alice", options={"volttron_home": str(tmp_path)}))


def test_the_rabbitmq_backend_is_chosen_by_name_and_says_what_it_does() -> None:
    from volttron.client.messagebus.base import connection_class

    rmq, zmq = connection_class("rmq"), connection_class("zmq")
    assert rmq.name == "rmq" and rmq.pubsub_by_broker and rmq.reports_disconnects and not rmq.uses_curve_keys
    assert not zmq.pubsub_by_broker


def test_an_identity_the_router_owns_is_refused(tmp_path: Path) -> None:
    from volttron.client.messagebus.base import BusError, connection_class

    connection = connection_class("rmq")(ConnectionParams("amqp://u:p@h/v?instance=i", "router"))
    with pytest.raises(BusError, match="router"):
        connection.open(lambda *a: None)
