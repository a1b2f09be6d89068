"""VIP messages as AMQP messages (reference §6.3): bodies, senders, routing and binding keys."""

from __future__ import annotations

import json

import pytest

from volttron.client.messagebus import rmq_wire as wire

TRUSTED = frozenset({"inst-admin"})


def test_frames_survive_the_json_body_byte_for_byte() -> None:
    frames = [b'{"x": 1}', b"caf\xe9", bytes(range(256)), b""]
    body = wire.encode_args(frames)
    assert isinstance(json.loads(body), list)
    assert wire.decode_args(body) == frames


def test_bodies_of_the_original_agents_become_frames() -> None:
    body = json.dumps([{"jsonrpc": "2.0"}, 3, None, "\u20ac"]).encode()
    assert wire.decode_args(body) == [b'{"jsonrpc": "2.0"}', b"3", b"", "\u20ac".encode()]


@pytest.mark.parametrize("body", [b"{}", b"not json", b'"text"'])
def test_a_body_that_is_not_a_list_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        wire.decode_args(body)


def test_routing_keys_and_queue_names() -> None:
    assert wire.peer_routing_key("inst", "") == "inst.router"
    assert wire.peer_routing_key("inst", "platform.control") == "inst.platform.control"
    assert wire.admin_user("inst") == "inst-admin"
    headers = wire.message_headers("inst.bob", "alice")
    assert headers == {"recipient": "inst.bob", "proto": "VIP", "user": "alice"}


def test_an_agent_user_is_who_the_message_is_from() -> None:
    origin = wire.message_origin("inst", "inst.alice", "inst.alice", {"user": "mallory"}, TRUSTED)
    assert origin == wire.Origin("alice", "alice")  # the header cannot change the user


@pytest.mark.parametrize("app_id", ["inst.bob", "inst.router", "other.alice"])
def test_an_agent_cannot_speak_for_another_identity_or_the_router(app_id: str) -> None:
    assert wire.message_origin("inst", app_id, "inst.alice", None, TRUSTED) is None


def test_a_message_nobody_vouches_for_is_refused() -> None:
    assert wire.message_origin("inst", "inst.alice", None, None, TRUSTED) is None


def test_the_platform_user_speaks_for_the_router_and_its_services() -> None:
    origin = wire.message_origin("inst", "inst.router", "inst-admin", {"user": "bob"}, TRUSTED)
    assert origin == wire.Origin("", "bob")
    assert wire.message_origin("inst", "inst.platform.auth", "inst-admin", {}, TRUSTED) == wire.Origin(
        "platform.auth", "platform.auth")


def test_a_user_of_another_instance_keeps_its_full_name() -> None:
    assert wire.message_origin("inst", "other.alice", "other.alice", None, TRUSTED) == wire.Origin(
        "other.alice", "other.alice")


@pytest.mark.parametrize("topic,key", [
    ("devices/a/b", "__pubsub__.inst.devices.a.b.#"),
    ("heartbeat", "__pubsub__.inst.heartbeat.#"),
])
def test_publish_keys_end_in_the_literal_hash(topic: str, key: str) -> None:
    assert wire.publish_routing_key("inst", topic) == key
    assert wire.topic_from_routing_key(key) == topic


@pytest.mark.parametrize("prefix,all_platforms,key", [
    ("", False, "__pubsub__.inst.#"),
    ("devices/a", False, "__pubsub__.inst.devices.a.#"),
    ("devices/a/", False, "__pubsub__.inst.devices.a.#"),
    ("devices", True, "__pubsub__.*.devices.#"),
])
def test_binding_keys(prefix: str, all_platforms: bool, key: str) -> None:
    assert wire.binding_key("inst", prefix, all_platforms) == key


@pytest.mark.parametrize("prefix,topic,expected", [
    ("", "anything", True),
    ("devices/ca", "devices/ca", True),
    ("devices/ca", "devices/ca/x", True),
    ("devices/ca", "devices/campus", False),  # word based, as the broker's bindings
    ("devices/", "devices/x", True),
    ("devices/", "devices", False),
])
def test_prefixes_match_whole_words(prefix: str, topic: str, expected: bool) -> None:
    assert wire.prefix_matches(prefix, topic) is expected


def test_the_sender_is_set_by_the_receiver_not_the_publisher() -> None:
    spliced = wire.with_sender(b'{"bus": "", "message": 1}', "alice")
    assert json.loads(spliced) == {"sender": "alice", "bus": "", "message": 1}
    assert json.loads(wire.with_sender(b"{}", "alice")) == {"sender": "alice"}
    forged = wire.with_sender(b'{"sender": "mallory", "message": 1}', "alice")
    assert json.loads(forged) == {"sender": "alice", "message": 1}
    assert wire.with_sender(b"[1]", "alice") == b"[1]"
