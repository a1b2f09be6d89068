"""Key stores (created once, never silently regenerated) and known_hosts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import zmq

from volttron.utils import keystore
from volttron.utils.errors import ConfigError, CorruptFileError, KeyFormatError
from volttron.utils.keys import decode_key, generate_keypair, public_from_secret, to_z85
from volttron.utils.keystore import KeyStore, KnownHosts, known_host_key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keystore_generated_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "keystores" / "control.connection" / "keystore.json"
    store = KeyStore(path)
    assert not store.exists()
    public, secret = store.public, store.secret
    assert store.exists()
    assert len(public) == len(secret) == 43
    assert _mode(path) == 0o600
    assert json.loads(path.read_text()) == {"public": public, "secret": secret}
    # the keys are a real CURVE pair, as ZeroMQ sees them
    assert zmq.curve_public(to_z85(secret)) == to_z85(public)
    again = KeyStore(path)
    assert (again.public, again.secret) == (public, secret)


def test_keystore_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    first = KeyStore.generate(path)
    assert _mode(path) == 0o600
    with pytest.raises(FileExistsError):
        KeyStore.generate(path)
    assert KeyStore(path).public == first.public
    second = KeyStore.generate(path, overwrite=True)
    assert second.public != first.public
    assert KeyStore(path).public == second.public


def test_keystore_lost_race_uses_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes creating the same key store at once end up with the same keys."""
    path = tmp_path / "keystore"
    winner = generate_keypair()
    real_write = keystore.write_json_file

    def other_process_first(target, value, mode, **kwargs):
        real_write(target, winner.as_dict(), mode, overwrite=False)  # the other process
        return real_write(target, value, mode, **kwargs)

    monkeypatch.setattr(keystore, "write_json_file", other_process_first)
    assert KeyStore(path).public == winner.public
    assert json.loads(path.read_text())["secret"] == winner.secret


def test_keystore_accepts_other_encodings(tmp_path: Path) -> None:
    pair = generate_keypair()
    path = tmp_path / "keystore"
    z85_public, hex_secret = to_z85(pair.public).decode(), decode_key(pair.secret).hex()
    path.write_text(json.dumps({"public": z85_public, "secret": hex_secret}))
    store = KeyStore(path)
    assert (store.public, store.secret) == (pair.public, pair.secret)


@pytest.mark.parametrize(
    "content,problem",
    [
        ("", "is empty"),
        ('{"public": "abc', "not valid JSON"),
        ("[1, 2]", "holds a JSON list"),
        ('{"public": "x"}', '"public" and "secret"'),
        ('{"public": 1, "secret": 2}', '"public" and "secret"'),
        ('{"public": "short", "secret": "short"}', "malformed key"),
        ('{"public": "' + "!" * 43 + '", "secret": "' + "!" * 43 + '"}', "malformed key"),
    ],
)
def test_corrupt_keystore_is_an_error_and_kept(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "keystore"
    path.write_text(content)
    with pytest.raises(CorruptFileError) as info:
        _ = KeyStore(path).public
    assert problem in str(info.value)
    assert str(path) in str(info.value)
    assert path.read_text() == content  # never moved, never regenerated
    assert [p.name for p in tmp_path.iterdir()] == ["keystore"]


def test_keystore_mismatched_pair(tmp_path: Path) -> None:
    a, b = generate_keypair(), generate_keypair()
    path = tmp_path / "keystore"
    path.write_text(json.dumps({"public": a.public, "secret": b.secret}))
    with pytest.raises(CorruptFileError, match="does not belong"):
        _ = KeyStore(path).secret


@pytest.mark.parametrize(
    "address,key",
    [
        ("tcp://127.0.0.1:22916", "127.0.0.1:22916"),
        ("tcp://127.0.0.1:22916?serverkey=abc&publickey=def", "127.0.0.1:22916"),
        ("tcp://[::1]:22916", "[::1]:22916"),
        ("10.0.0.5:22916", "10.0.0.5:22916"),
        ("ipc://@/home/user/.volttron/run/vip.socket", "@"),
        ("ipc:///tmp/volttron/run/vip.socket", "/tmp/volttron/run/vip.socket"),
        ("  tcp://host:1  ", "host:1"),
    ],
)
def test_known_host_key(address: str, key: str) -> None:
    assert known_host_key(address) == key


@pytest.mark.parametrize("address", ["", "   ", None, "tcp://", "ipc://"])
def test_known_host_key_rejects(address) -> None:
    with pytest.raises(ConfigError):
        known_host_key(address)


def test_known_hosts_add_lookup_remove(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "known_hosts")
    assert hosts.items() == []
    assert hosts.serverkey("tcp://10.0.0.5:22916") is None
    tcp_key, ipc_key = generate_keypair().public, generate_keypair().public
    hosts.add("tcp://10.0.0.5:22916", tcp_key)
    hosts.add("ipc://@/home/u/.volttron/run/vip.socket", to_z85(ipc_key))  # stored as 43 characters
    assert _mode(tmp_path / "known_hosts") == 0o644
    assert hosts.serverkey("10.0.0.5:22916") == tcp_key
    assert hosts.serverkey("ipc://@/another/home/run/vip.socket") == ipc_key
    assert json.loads((tmp_path / "known_hosts").read_text()) == {"10.0.0.5:22916": tcp_key, "@": ipc_key}
    assert hosts.items() == [("10.0.0.5:22916", tcp_key), ("@", ipc_key)]
    assert hosts.remove("tcp://10.0.0.5:22916") is True
    assert hosts.remove("tcp://10.0.0.5:22916") is False
    assert KnownHosts(tmp_path / "known_hosts").items() == [("@", ipc_key)]


def test_known_hosts_rejects_bad_key(tmp_path: Path) -> None:
    hosts = KnownHosts(tmp_path / "known_hosts")
    with pytest.raises(KeyFormatError):
        hosts.add("tcp://h:1", "not-a-key")
    assert not (tmp_path / "known_hosts").exists()


@pytest.mark.parametrize("content", ["{broken", "[]", '{"h:1": 5}'])
def test_known_hosts_corrupt_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(content)
    with pytest.raises(CorruptFileError):
        KnownHosts(path).serverkey("tcp://h:1")


def test_public_from_secret_matches_zmq() -> None:
    public, secret = zmq.curve_keypair()
    assert to_z85(public_from_secret(secret)) == public
