"""The router of a real `volttron` process, spoken to with raw pyzmq DEALERs (reference §1, §2.1-§2.4)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import zmq

pytestmark = pytest.mark.integration


def is_peerlist(op: bytes, identity: bytes):
    return lambda m: m.subsystem == b"peerlist" and m.args[:2] == [op, identity]


def test_hello_over_ipc_and_tcp(running_platform) -> None:
    for address in (running_platform.local_address, running_platform.vip_address):
        client = running_platform.client(f"hello.{address[:3]}", address=address)
        welcome = client.hello()
        assert welcome.peer == b"" and welcome.user == client.identity
        assert welcome.args[:2] == [b"welcome", b"1.0"] and welcome.args[3] == client.identity
        assert len(welcome.args[2]) == 36  # the router's uuid4 identity


def test_queries(running_platform) -> None:
    alice = running_platform.client("alice")
    answers = {name: alice.request("", "query", name).args for name in (
        "serverkey", "instance-name", "addresses", "local_address", "message-bus", "platform-version",
        "agent-monitor-frequency", "bind-web-address", "volttron-home")}
    assert all(a[0] == b"" for a in answers.values())
    assert answers["serverkey"][1].decode() == running_platform.serverkey
    assert json.loads(answers["addresses"][1]) == [running_platform.vip_address]
    assert answers["local_address"][1].decode() == running_platform.local_address
    assert answers["message-bus"][1] == b"zmq"
    assert answers["agent-monitor-frequency"][1] == b"600"
    assert answers["platform-version"][1] == b"0.1.0"
    assert answers["bind-web-address"][1] == b"" and answers["volttron-home"][1] == b""
    assert answers["instance-name"][1]


def test_forwarding_is_byte_for_byte_with_user_frame_set_to_sender(running_platform) -> None:
    alice = running_platform.client("alice")
    bob = running_platform.client("bob", address=running_platform.vip_address)
    alice.hello()
    bob.hello()
    args = [b'{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "1.5"}', bytes(range(256)), b"",
            b"123", b"\xff" * 100_000]
    alice.send("bob", "RPC", *args, msg_id=b"1716400000.8795093022209", user=b"i-am-root")
    got = bob.recv_until(lambda m: m.subsystem == b"RPC")
    assert got.frames == [b"alice", b"VIP1", b"alice", b"1716400000.8795093022209", b"RPC", *args]
    bob.send("alice", "RPC", b'{"result": 3}', msg_id=b"1716400000.8795093022209")
    back = alice.recv_until(lambda m: m.subsystem == b"RPC")
    assert back.frames == [b"bob", b"VIP1", b"bob", b"1716400000.8795093022209", b"RPC", b'{"result": 3}']


def test_ping_echoes(running_platform) -> None:
    alice = running_platform.client("alice")
    assert alice.request("", "ping", "drop", "bob").args == [b"pong", b"bob"]


def test_peerlist_and_add_drop_broadcasts_on_close(running_platform) -> None:
    alice = running_platform.client("alice")
    alice.hello()
    bob = running_platform.client("bob")
    bob.hello()
    alice.recv_until(is_peerlist(b"add", b"bob"), timeout=2)
    listing = alice.request("", "peerlist", "list").args
    assert listing[0] == b"listing" and set(listing[1:]) >= {b"alice", b"bob"}
    start = time.monotonic()
    bob.close()
    alice.recv_until(is_peerlist(b"drop", b"bob"), timeout=2)
    assert time.monotonic() - start < 2
    assert b"bob" not in alice.request("", "peerlist", "list").args


def test_killed_client_process_is_dropped_promptly(running_platform) -> None:
    """A peer whose process dies (SIGKILL, no agentstop) is dropped within a second or two."""
    keys = running_platform.add_allow_entry("victim")
    script = textwrap.dedent(f"""
        import sys, threading, zmq
        from volttron.utils.keys import to_z85
        s = zmq.Context().socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, b"victim")
        s.curve_serverkey = to_z85({running_platform.serverkey!r})
        s.curve_publickey = to_z85({keys.public!r})
        s.curve_secretkey = to_z85({keys.secret!r})
        s.connect({running_platform.vip_address!r})
        s.send_multipart([b"", b"VIP1", b"", b"1", b"hello", b"hello"])
        assert s.poll(10000), "no welcome"
        s.recv_multipart()
        print("ready", flush=True)
        threading.Event().wait(60)  # holds the connection until the test kills it
    """)
    alice = running_platform.client("alice")
    alice.hello()
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert victim.stdout.readline().strip() == b"ready"
        alice.recv_until(is_peerlist(b"add", b"victim"), timeout=5)
        start = time.monotonic()
        victim.kill()
        alice.recv_until(is_peerlist(b"drop", b"victim"), timeout=2)
        assert time.monotonic() - start < 2
    finally:
        victim.kill()
        victim.wait(10)


def test_agentstop_drops_and_reconnect_readds(running_platform) -> None:
    alice = running_platform.client("alice")
    alice.hello()
    bob = running_platform.client("bob")
    bob.hello()
    alice.recv_until(is_peerlist(b"add", b"bob"))
    bob.send("", "agentstop", "bob")
    alice.recv_until(is_peerlist(b"drop", b"bob"))
    bob.hello()
    alice.recv_until(is_peerlist(b"add", b"bob"))


def test_message_to_unknown_identity_gets_ehostunreach_within_a_second(running_platform) -> None:
    alice = running_platform.client("alice")
    start = time.monotonic()
    alice.send("nobody.here", "RPC", b'{"jsonrpc": "2.0", "method": "x", "id": "1"}', msg_id=b"rpc-1")
    error = alice.recv_until(lambda m: m.msg_id == b"rpc-1", timeout=1)
    assert time.monotonic() - start < 1
    assert error.frames == [b"", b"VIP1", b"", b"rpc-1", b"error", b"113", b"No route to host",
                            b"nobody.here", b"RPC"]


def test_unknown_subsystem_gets_93(running_platform) -> None:
    alice = running_platform.client("alice")
    reply = alice.request("", "nonexistent", "x")
    assert reply.subsystem == b"error"
    assert reply.args == [b"93", b"Protocol not supported", b"", b"nonexistent"]


def test_unknown_curve_key_is_refused_at_once_and_routes_nothing(running_platform) -> None:
    alice = running_platform.client("alice")
    alice.hello()
    mallory = running_platform.client("mallory", authorize=False, monitor=True)
    start = time.monotonic()
    event = mallory.wait_event(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED, timeout=2)
    assert event == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    assert time.monotonic() - start < 2
    # A refused DEALER has no connection to queue on: a blocking send may wait forever, so try
    # without blocking; whether libzmq queues or refuses the frames, none may reach anyone.
    attempts = ([b"alice", b"VIP1", b"", b"", b"RPC", b"{}"], [b"", b"VIP1", b"", b"", b"hello", b"hello"])
    for frames in attempts:
        try:
            mallory.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass
    assert not mallory.socket.poll(300)
    assert all(m.subsystem != b"RPC" and b"mallory" not in m.args for m in alice.drain(0.3))
    assert b"mallory" not in alice.request("", "peerlist", "list").args


def test_entry_added_while_running_is_used(running_platform) -> None:
    late = running_platform.client("late.comer")  # adds the entry now, after start-up
    assert late.hello().args[3] == b"late.comer"


def test_wrong_server_key_fails_handshake(running_platform, vip_client_factory) -> None:
    from volttron.utils.keys import generate_keypair

    keys = running_platform.add_allow_entry("alice")
    client = vip_client_factory(running_platform.local_address, "alice", serverkey=generate_keypair().public,
                                keys=keys, monitor=True)
    try:  # never block on a connection that cannot complete its handshake
        client.socket.send_multipart([b"", b"VIP1", b"", b"", b"hello", b"hello"], zmq.NOBLOCK)
    except zmq.Again:
        pass
    assert not client.socket.poll(500)


def test_duplicate_identity_first_connection_keeps_working(running_platform) -> None:
    """libzmq's ROUTER (no ROUTER_HANDOVER) ignores a second connection with an identity in use.

    The first keeps working; the second is never routed anything, so its hello goes unanswered
    (an agent then stops with the "conflicting VIP IDENTITY" hint, reference §1.6).
    """
    keys = running_platform.add_allow_entry("twin")
    first = running_platform.client("twin", keys=keys, authorize=False)
    first.hello()
    second = running_platform.client("twin", keys=keys, authorize=False)
    second.send("", "hello", "hello", msg_id=b"second")
    assert not second.socket.poll(500)
    assert first.hello().args[3] == b"twin"
    assert first.request("", "ping", "ping").args == [b"pong"]
    second.close()
    assert first.request("", "ping", "ping").args == [b"pong"]
