"""A key may connect only under the identities its auth entries allow (services/auth/identity_claims)."""

from __future__ import annotations

import errno

import pytest

pytestmark = pytest.mark.integration


def test_an_agent_key_cannot_speak_as_control_connection(running_platform) -> None:
    keys = running_platform.add_allow_entry("agent.a")
    impostor = running_platform.client("control.connection", keys=keys, authorize=False)
    reply = impostor.request(b"", b"hello", b"hello", timeout=5)
    assert reply.subsystem == b"error"
    assert reply.args[0] == str(errno.EACCES).encode()
    # nothing it sends is routed, and it never becomes a peer
    impostor.send(b"platform.control", b"RPC", b'{"jsonrpc": "2.0", "method": "shutdown", "id": "x"}',
                  msg_id=b"x")
    witness = running_platform.client("witness")
    listing = witness.request(b"", b"peerlist", b"list")
    assert b"control.connection" not in listing.args[1:]


def test_the_same_key_works_under_its_own_identity(running_platform) -> None:
    keys = running_platform.add_allow_entry("agent.b")
    client = running_platform.client("agent.b", keys=keys, authorize=False)
    assert client.hello().args[0] == b"welcome"


def test_an_agent_key_cannot_take_another_agents_identity(running_platform) -> None:
    running_platform.add_allow_entry("agent.c")
    keys = running_platform.add_allow_entry("agent.d")
    impostor = running_platform.client("agent.c", keys=keys, authorize=False)
    reply = impostor.request(b"", b"hello", b"hello", timeout=5)
    assert reply.subsystem == b"error" and reply.args[0] == str(errno.EACCES).encode()
