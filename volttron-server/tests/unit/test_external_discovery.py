"""The discovery file of linked platforms (reference §3.6): what is accepted and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from volttron.server.services.external.discovery import (
    DiscoveryError,
    RemotePlatform,
    load_discovery,
    parse_discovery,
)
from volttron.utils.keys import generate_keypair, to_z85

KEY = generate_keypair().public


def entry(name: str = "B", address: str = "tcp://10.0.0.7:22916", key: str = KEY) -> dict[str, str]:
    return {"vip-address": address, "instance-name": name, "serverkey": key}


def test_entries_become_remote_platforms_and_our_own_name_is_skipped() -> None:
    remotes = parse_discovery({"B": entry("B"), "A": entry("A"), "C": entry("C", "tcp://h:1")}, "A")
    assert remotes == [RemotePlatform("B", "tcp://10.0.0.7:22916", KEY),
                       RemotePlatform("C", "tcp://h:1", KEY)]


def test_a_key_in_another_encoding_is_normalised_to_the_43_character_form() -> None:
    (remote,) = parse_discovery({"B": entry(key=to_z85(KEY).decode())}, "A")
    assert remote.serverkey == KEY


def test_no_file_means_no_links(tmp_path: Path) -> None:
    assert load_discovery(tmp_path, "A") == []


def test_an_empty_file_means_no_links(tmp_path: Path) -> None:
    (tmp_path / "external_platform_discovery.json").write_text("\n")
    assert load_discovery(tmp_path, "A") == []


@pytest.mark.parametrize(("document", "why"), [
    ([], "JSON object"),
    ({"B": "tcp://x:1"}, "entry 'B' must be a JSON object"),
    ({"B": entry("C")}, "instance-name must equal its key"),
    ({"B": entry(address="ipc://@/x")}, "vip-address must be tcp://host:port"),
    ({"B": entry(address="tcp://nohost")}, "vip-address must be tcp://host:port"),
    ({"B": {**entry(), "vip-address": None}}, "vip-address"),
    ({"B": entry(key="short")}, "serverkey must be the platform's public key"),
    ({"B": {"vip-address": "tcp://h:1", "instance-name": "B"}}, "serverkey"),
])
def test_bad_entries_are_refused_saying_which_and_why(document: object, why: str) -> None:
    with pytest.raises(DiscoveryError, match=why):
        parse_discovery(document, "A")


def test_a_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "external_platform_discovery.json"
    path.write_text("{not json")
    with pytest.raises(DiscoveryError, match="external_platform_discovery.json is not valid JSON"):
        load_discovery(tmp_path, "A")


def test_a_bad_entry_in_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "external_platform_discovery.json").write_text(json.dumps({"B": entry(key="x")}))
    with pytest.raises(DiscoveryError, match=r"external_platform_discovery.json: entry 'B'"):
        load_discovery(tmp_path, "A")
