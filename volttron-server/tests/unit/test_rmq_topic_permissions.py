"""Protected topics as broker topic permissions: the patterns, checked with Python ``re`` and on a broker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from volttron.client.messagebus.rmq_admin import Permissions, TopicPermissions
from volttron.client.messagebus.rmq_testing import BrokerInstance, broker_instance
from volttron.client.messagebus.rmq_wire import EXCHANGE, peer_routing_key, publish_routing_key
from volttron.server.router.rmq.topic_permissions import (
    ANY_KEY,
    agent_topic_permissions,
    read_pattern,
    regex_key_pattern,
)
from volttron.server.router.rmq.users import BrokerUsers
from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.server.services.pubsub.protected import ProtectedTopics, is_allowed
from volttron.utils.keys import generate_keypair

INSTANCE = "plat"


def permissions(document: dict[str, Any], capabilities: dict[str, Any] | None) -> TopicPermissions | None:
    protected = ProtectedTopics()
    protected.replace(document)
    literal, regexes = protected.entries()
    return agent_topic_permissions(INSTANCE, literal, regexes, capabilities, "agent")


def may_publish(granted: TopicPermissions | None, key: str) -> bool:
    """What the broker decides: no topic permission allows all, else the write pattern must match."""
    return granted is None or re.search(granted.write, key) is not None


def key(topic: str, instance: str = INSTANCE) -> str:
    return publish_routing_key(instance, topic)


SECURE = {"write-protect": [{"topic": "devices/secure", "capabilities": ["can_publish_secure"]}]}


def test_a_literal_entry_refuses_its_prefix_on_every_instance_and_nothing_else() -> None:
    granted = permissions(SECURE, {})
    assert granted is not None and granted.read == read_pattern(INSTANCE, "agent")
    for topic in ("devices/secure", "devices/secure/x", "devices/secure/x/y", "devices/secure2/z"):
        assert not may_publish(granted, key(topic)), topic
        assert not may_publish(granted, key(topic, "other")), f"{topic} on another instance"
    for topic in ("devices/secur", "devices/other", "devices", "secure", "x/devices/secure", ""):
        assert may_publish(granted, key(topic)), topic
    for peer in ("", "agent", "platform.control", "__pubsub__"):  # VIP messages are not topics
        assert may_publish(granted, peer_routing_key(INSTANCE, peer)), peer
    # every publisher's key ends with .#: one without it could escape the patterns
    assert not may_publish(granted, key("devices/open")[:-2])


def publishes_everything(granted: TopicPermissions | None) -> bool:
    return granted is not None and granted.write == ANY_KEY


def test_an_agent_holding_the_capabilities_may_publish_everything() -> None:
    assert publishes_everything(permissions(SECURE, {"can_publish_secure": None}))
    assert publishes_everything(permissions({"write-protect": []}, {}))
    both = {"write-protect": [{"topic": "a", "capabilities": ["x", "y"]}]}
    assert not publishes_everything(permissions(both, {"x": None}))
    assert publishes_everything(permissions(both, {"x": None, "y": None}))


def may_bind(granted: TopicPermissions | None, key: str) -> bool:
    return granted is None or re.search(granted.read, key) is not None


def test_an_agent_binds_only_its_own_routing_key_and_pub_sub_keys() -> None:
    granted = agent_topic_permissions("my.site", {}, [], {}, "a.b")
    for key_ in ("my.site.a.b", "__pubsub__.my.site.devices.#", "__pubsub__.*.x.#", "__pubsub__.#"):
        assert may_bind(granted, key_), key_
    for key_ in ("my.site.a.c", "my.site.a.b.c", "my.site.platform.config_store", "#", "*.a.b", "my.site.#",
                 "my.site.*", "my-site.a.b", "__pubsub__"):
        assert not may_bind(granted, key_), key_


def test_an_instance_name_with_dots_is_covered_too() -> None:
    granted = agent_topic_permissions("my.site", {"devices/secure": ["c"]}, [], {}, "agent")
    assert granted is not None
    assert not may_publish(granted, publish_routing_key("my.site", "devices/secure/x"))
    assert may_publish(granted, publish_routing_key("my.site", "devices/open"))
    assert may_publish(granted, peer_routing_key("my.site", "agent"))


NESTED = {"write-protect": [
    {"topic": "devices", "capabilities": ["a"]},
    {"topic": "devices/secure", "capabilities": ["b"]},
    {"topic": "devices/secure/top", "capabilities": ["c"]},
]}


@pytest.mark.parametrize("held,allowed,refused", [
    ({"a": None}, ["devices/x", "devices/secur"],
     ["devices/secure", "devices/securely", "devices/secure/top/1"]),
    ({"b": None}, ["devices/secure", "devices/secure/x"],
     ["devices/x", "devices/secure/top", "devices/secure/topx"]),
    ({"b": None, "c": None}, ["devices/secure/top/1"], ["devices/x"]),
    ({"c": None}, ["devices/secure/top", "devices/secure/top/1"], ["devices/x", "devices/secure/x"]),
])
def test_nested_literal_entries_follow_the_longest_prefix(held, allowed, refused) -> None:
    granted = permissions(NESTED, held)
    for topic in allowed:
        assert may_publish(granted, key(topic)), topic
    for topic in refused:
        assert not may_publish(granted, key(topic)), topic


@pytest.mark.parametrize("regex,translated", [
    ("^alerts/.*", r"alerts\..*"),
    (r"alerts\/[^/]+$", r"alerts\.[^\.]+(?=\.#$)"),
    ("[]/^]x", r"[]\.^]x"),
    (r"\Aa\Z", r"a(?=\.#$)"),
    (r"a\.b", r"a\.b"),
])
def test_regex_entries_are_translated_to_topic_words(regex: str, translated: str) -> None:
    assert regex_key_pattern(regex) == translated
    re.compile(translated)


MIXED = {"write-protect": [
    {"topic": "devices/secure", "capabilities": ["secure"]},
    {"topic": "devices/open", "capabilities": []},
    {"topic": "secure/", "capabilities": ["secure"]},
    {"topic": "/^(?!x)a/", "capabilities": ["alerting"]},
    {"topic": "/^alerts/[^/]+/critical$/", "capabilities": ["critical"]},
    {"topic": "/^alerts/.*/", "capabilities": ["alerting"]},
    {"topic": "/^devices/.*/secret/", "capabilities": ["secret"]},
    {"topic": "/^(?:record|log)s?/", "capabilities": ["record"]},
]}
TOPICS = ["devices/secure", "devices/secure/x", "devices/open/x", "devices/a/secret/b", "devices/a/secrets",
          "devices/secret", "devices/secure/secret", "alerts/x", "alerts/x/critical", "alerts/x/critical/y",
          "alerts/x/y/critical", "alerts", "record/1", "logs/2", "recorder", "other/alerts/x", "heartbeat/a",
          "secure", "secure/", "secure/a",
          "securex", "alerts/", "alerts/#", "a", "ab/c", "devices", "devices/", ""]
HOLDINGS = [{}, {"secure": None}, {"critical": None}, {"alerting": None},
            {"critical": None, "alerting": None},
            {"secret": None}, {"record": None}, {"secure": None, "secret": None}]


@pytest.mark.parametrize("held", HOLDINGS, ids=lambda h: "+".join(h) or "nothing")
def test_the_broker_pattern_refuses_exactly_what_the_pubsub_service_refuses(held: dict[str, Any]) -> None:
    protected = ProtectedTopics()
    protected.replace(MIXED)
    granted = permissions(MIXED, held)
    for topic in TOPICS:
        required = protected.required(topic)
        refused_on_zeromq = required is not None and not is_allowed(required, held)
        for instance in (INSTANCE, "other"):
            allowed = may_publish(granted, key(topic, instance))
            assert allowed is not refused_on_zeromq, (topic, instance, granted)


# -- on the broker --------------------------------------------------------------------------------

@pytest.fixture
def rmq() -> Iterator[BrokerInstance]:
    with broker_instance("tp") as instance:
        instance.admin.add_vhost(instance.vhost)
        yield instance


def _publisher(rmq: BrokerInstance, user: str, password: str) -> Any:
    import pika

    credentials = pika.PlainCredentials(user, password)
    parameters = pika.ConnectionParameters(rmq.host, rmq.port, rmq.vhost, credentials,
                                           connection_attempts=1, socket_timeout=10)
    return pika.BlockingConnection(parameters)


def test_the_broker_refuses_what_the_pattern_refuses(rmq: BrokerInstance) -> None:
    import pika.exceptions

    admin = rmq.admin
    user = f"{rmq.instance}.writer"
    admin.put_user(user, "pw", ["volttron-agent"], grant=(rmq.vhost, Permissions(".*", ".*", ".*")))
    granted = agent_topic_permissions(rmq.instance, {"devices/secure": ["c"]},
                                      [("^alerts/.*/critical$", ["c"])],
                                      {}, "writer")
    assert granted is not None
    admin.set_topic_permissions(rmq.vhost, user, EXCHANGE, granted)
    assert admin.topic_permissions(rmq.vhost)[user][EXCHANGE] == granted
    connection = _publisher(rmq, user, "pw")
    try:
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, "topic")
        channel.confirm_delivery()
        outcomes = {}
        for routing_key in (key("devices/open", rmq.instance), peer_routing_key(rmq.instance, "agent"),
                            key("alerts/a/critical/not", rmq.instance), key("devices/secure/x", rmq.instance),
                            key("devices/secure", "elsewhere"), key("alerts/a/b/critical", rmq.instance),
                            key("alerts/a/critical", rmq.instance)[:-2]):
            try:
                channel.basic_publish(EXCHANGE, routing_key, b"{}")
                outcomes[routing_key] = True
            except pika.exceptions.ChannelClosedByBroker as exc:
                assert exc.reply_code == 403 and "ACCESS_REFUSED" in exc.reply_text
                outcomes[routing_key] = False
                channel = connection.channel()
                channel.confirm_delivery()
        assert outcomes == {routing_key: may_publish(granted, routing_key) for routing_key in outcomes}
        assert list(outcomes.values()) == [True, True, True, False, False, False, False]
    finally:
        connection.close()


def test_broker_users_follow_protected_topics_and_capabilities(rmq: BrokerInstance, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    platform, writer, reader = generate_keypair(), generate_keypair(), generate_keypair()
    ensure_entries(home / "auth.json", [
        AuthEntry(credentials=writer.public, user_id="writer", identity="writer",
                  capabilities={"secure": None}),
        AuthEntry(credentials=reader.public, user_id="reader", identity="reader")])
    (home / "protected_topics.json").write_text(json.dumps(
        {"write-protect": [{"topic": "devices/secure", "capabilities": ["secure"]}]}))
    users = BrokerUsers(rmq.admin, home, rmq.instance, rmq.vhost, secret_key=platform.secret,
                        public_key=platform.public)
    users.refresh_protected_topics()
    users.sync()
    listed = rmq.admin.topic_permissions(rmq.vhost)
    writer_user, reader_user = f"{rmq.instance}.writer", f"{rmq.instance}.reader"
    assert publishes_everything(listed[writer_user][EXCHANGE]) and list(listed[reader_user]) == [EXCHANGE]
    assert not may_publish(listed[reader_user][EXCHANGE], key("devices/secure/x", rmq.instance))
    assert users.topic_updates == 2
    # a restart (a new BrokerUsers on the same home) changes nothing
    again = BrokerUsers(rmq.admin, home, rmq.instance, rmq.vhost, secret_key=platform.secret,
                        public_key=platform.public)
    again.refresh_protected_topics()
    again.sync()
    assert again.topic_updates == 0
    # a new protected topic reaches both; the writer lacks its capability too
    (home / "protected_topics.json").write_text(json.dumps({"write-protect": [
        {"topic": "devices/secure", "capabilities": ["secure"]},
        {"topic": "/^alerts//", "capabilities": ["a"]}]}))
    assert again.refresh_protected_topics() and not again.refresh_protected_topics()
    again.sync()
    listed = rmq.admin.topic_permissions(rmq.vhost)
    assert not may_publish(listed[writer_user][EXCHANGE], key("alerts/x", rmq.instance))
    assert may_publish(listed[writer_user][EXCHANGE], key("devices/secure/x", rmq.instance))
    # a file that does not parse is reported and changes nothing
    (home / "protected_topics.json").write_text("{not json")
    assert not again.refresh_protected_topics()
    # granting the reader every capability lets it publish everything
    ensure_entries(home / "auth.json", [AuthEntry(credentials=reader.public, user_id="reader",
                                                  identity="reader",
                                                  capabilities={"secure": None, "a": None})])
    again.sync()
    assert publishes_everything(rmq.admin.topic_permissions(rmq.vhost)[reader_user][EXCHANGE])
