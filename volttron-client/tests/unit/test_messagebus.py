"""The message-bus interface: back-end lookup, messages, addresses and credentials."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from volttron.client.credentials import default_address, resolve_credentials
from volttron.client.messagebus.address import parse_vip_address
from volttron.client.messagebus.base import BusError, Connection, Message, connection_class
from volttron.utils.errors import ConfigError, VolttronError
from volttron.utils.keys import generate_keypair, to_z85


def test_zmq_backend_by_name() -> None:
    cls = connection_class("zmq")
    assert issubclass(cls, Connection)
    assert cls.name == "zmq" and cls.uses_curve_keys and cls.reports_disconnects
    assert connection_class(" ZMQ ") is cls


def test_typo_suggests_the_closest_bus() -> None:
    with pytest.raises(BusError, match="did you mean 'zmq'"):
        connection_class("zqm")
    with pytest.raises(BusError) as info:
        connection_class("kafka")
    assert "did you mean" not in str(info.value) and "known: rmq, zmq" in str(info.value)
    assert isinstance(info.value, VolttronError)


def test_importing_the_interface_loads_no_backend() -> None:
    code = (
        "import sys, volttron.client.messagebus.base, volttron.client;"
        "print(any(m.split('.')[0] in ('zmq', 'pika', 'gevent') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_message_text_accessors() -> None:
    message = Message("bob", "RPC", [b"caf\xe9", b'{"a": 1}'], "7", "bob")
    assert message.text(0) == "café"
    assert message.texts() == ["café", '{"a": 1}']
    assert message.json(1) == {"a": 1}
    with pytest.raises(VolttronError):
        message.json(0)


def test_tcp_address_with_keys_and_identity() -> None:
    pair = generate_keypair()
    text = f"tcp://10.0.0.5:22916?serverkey={pair.public}&publickey={pair.public}&secretkey={pair.secret}#me"
    address = parse_vip_address(text)
    assert address.scheme == "tcp" and address.base == "tcp://10.0.0.5:22916"
    assert (address.serverkey, address.publickey, address.secretkey) == (
        pair.public,
        pair.public,
        pair.secret,
    )
    assert address.identity == "me"
    assert pair.secret not in address.redacted()
    assert parse_vip_address(str(address)) == address


@pytest.mark.parametrize(
    "text,base",
    [
        ("ipc://@/home/me/.volttron/run/vip.socket", "ipc://@/home/me/.volttron/run/vip.socket"),
        ("ipc:///tmp/vip.socket", "ipc:///tmp/vip.socket"),
        ("inproc://vip", "inproc://vip"),
    ],
)
def test_other_schemes(text: str, base: str) -> None:
    assert parse_vip_address(text).base == base


@pytest.mark.parametrize(
    "text,problem",
    [
        ("http://x", "must start with"),
        ("tcp://", "no host"),
        ("tcp://h:1?colour=red", "unknown VIP address parameter"),
        ("", "needed"),
    ],
)
def test_bad_addresses_say_why(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_vip_address(text)


def test_bad_address_error_never_shows_the_secret() -> None:
    with pytest.raises(ConfigError) as info:
        parse_vip_address("udp://h:1?secretkey=SECRET")
    assert "SECRET" not in str(info.value)


def test_default_address_honours_vip_addr_then_home(tmp_path) -> None:
    assert default_address(tmp_path, {"VOLTTRON_VIP_ADDR": "tcp://1.2.3.4:5"}) == "tcp://1.2.3.4:5"
    assert default_address(tmp_path, {}).endswith(f"{tmp_path}/run/vip.socket")


def test_credentials_explicit_then_query_then_files(tmp_path) -> None:
    mine, server, other = generate_keypair(), generate_keypair(), generate_keypair()
    (tmp_path / "known_hosts").write_text(json.dumps({"127.0.0.1:9": server.public}))
    store = tmp_path / "keystores" / "alice" / "keystore.json"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps(mine.as_dict()))
    found = resolve_credentials("alice", "tcp://127.0.0.1:9", volttron_home=tmp_path, env={})
    assert (found.publickey, found.secretkey, found.serverkey) == (mine.public, mine.secret, server.public)
    assert found.keystore == store and found.complete and found.missing() == []
    query = f"tcp://127.0.0.1:9?publickey={other.public}&secretkey={other.secret}&serverkey={other.public}"
    from_query = resolve_credentials("alice", query, volttron_home=tmp_path, env={})
    assert from_query.publickey == other.public and from_query.serverkey == other.public
    explicit = resolve_credentials(
        "alice",
        query,
        publickey=to_z85(mine.public).decode(),
        secretkey=mine.secret,
        volttron_home=tmp_path,
        env={},
    )
    assert explicit.publickey == mine.public  # any accepted form, returned as 43 characters


def test_installed_agent_keystore_wins_over_identity_keystore(tmp_path) -> None:
    installed, service = generate_keypair(), generate_keypair()
    for folder, pair in ((tmp_path / "agents" / "a1", installed), (tmp_path / "keystores" / "a1", service)):
        folder.mkdir(parents=True)
        (folder / "keystore.json").write_text(json.dumps(pair.as_dict()))
    found = resolve_credentials("a1", "tcp://127.0.0.1:9", volttron_home=tmp_path, env={})
    assert found.publickey == installed.public


def test_missing_keys_are_reported_not_generated(tmp_path) -> None:
    found = resolve_credentials("ghost", "tcp://127.0.0.1:9", volttron_home=tmp_path, env={})
    assert found.missing() == ["publickey", "secretkey", "serverkey"]
    assert not (tmp_path / "keystores").exists()


def test_inproc_needs_no_keys(tmp_path) -> None:
    found = resolve_credentials("svc", "inproc://vip", volttron_home=tmp_path, env={})
    assert found.address == "inproc://vip" and found.publickey is None
