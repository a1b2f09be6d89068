"""What an agent's broker user may do, and which queues the platform declares for it."""

from __future__ import annotations

import re

import pytest

from volttron.client.messagebus.rmq_permissions import (
    NOTHING,
    agent_permissions,
    agent_queue_arguments,
    queue_request_body,
    requested_queues,
)


@pytest.mark.parametrize("name", ["inst.alice", "inst.alice.pubsub", "volttron", "amq.gen-x", "inst.alice.x"])
def test_an_agent_may_configure_nothing(name: str) -> None:
    """Configure permission on a queue name is also permission to declare an exchange of that name
    (and bind it to ``volttron`` as a source, past the topic permissions): agents get none."""
    permissions = agent_permissions("inst.alice")
    assert permissions.configure == NOTHING
    assert not re.search(permissions.configure, name)


def test_the_router_declares_only_the_senders_own_queues() -> None:
    body = queue_request_body(["inst.alice", "inst.alice.pubsub", "inst.bob", "inst.alice.pubsub.x"])
    granted = requested_queues("inst", "inst.alice", body)
    assert granted == [("inst.alice", True), ("inst.alice.pubsub", False)]
    assert requested_queues("inst", "inst.alice", queue_request_body(["inst.alice.pubsub"])) == [
        ("inst.alice.pubsub", False)]


@pytest.mark.parametrize("user,body", [
    ("other.alice", queue_request_body(["other.alice"])),  # another instance's user
    ("inst-admin", queue_request_body(["inst-admin"])),
    ("", queue_request_body([".alice"])),  # no user_id: nobody vouches for the sender
    ("inst.alice", b"not json"),
    ("inst.alice", b'{"inst.alice": 1}'),
    ("inst.alice", queue_request_body(["inst.alice"] * 200)),  # longer than a request may be
])
def test_a_request_the_router_refuses(user: str, body: bytes) -> None:
    assert requested_queues("inst", user, body) == []


def test_agent_queues_go_with_their_consumer() -> None:
    arguments = agent_queue_arguments()
    assert arguments["auto_delete"] and not arguments["exclusive"] and not arguments["durable"]
    assert arguments["arguments"]["x-expires"] > 0
