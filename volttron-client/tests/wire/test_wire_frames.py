"""Byte-exact VIP frames between our agent and a raw ZeroMQ ROUTER (reference §1.2, §1.5, §1.8, §2.13).

The router sees ``[sender, recipient, VIP1, user, msg_id, subsystem, args...]``.
"""

from __future__ import annotations

import json
import socket
import time

import gevent
import pytest

from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import RPC, Agent, PubSub
from volttron.client.vip.agent.errors import ConnectError, UnknownSubsystem, Unreachable

COMPAT = b'{"min_compatible_version": "3.0", "max_compatible_version": ""}'
JSON_ID = "1716400000.000000.8795093022353.000000"


def subsystem(name: bytes, op: bytes | None = None):
    """A predicate on the subsystem frame (and first argument) of what the router received."""
    return lambda f: len(f) > 5 and f[5] == name and (op is None or (len(f) > 6 and f[6] == op))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make(identity: str, router, agent_class=Agent, **kwargs) -> Agent:
    kwargs.setdefault("enable_store", False)
    kwargs.setdefault("enable_auth", False)
    kwargs.setdefault("heartbeat_autostart", False)
    return agent_class(identity=identity, address=router.address, **kwargs)


class Bob(Agent):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.got = []

    @RPC.export
    def add(self, a, b):
        return a + b

    @PubSub.subscribe("pubsub", "devices")
    def on_devices(self, peer, sender, bus, topic, headers, message):
        self.got.append((peer, sender, bus, topic, headers, message))


def test_hello_is_the_first_message(raw_router, run_agent) -> None:
    router = raw_router()
    run_agent(make("alice", router))
    assert router.history[0] == [b"alice", b"", b"VIP1", b"", b"connect.hello.0", b"hello", b"hello"]


def test_rpc_request_and_answer_as_caller(raw_router, run_agent) -> None:
    router = raw_router()
    alice = run_agent(make("alice", router))
    result = alice.vip.rpc.call("bob", "add", 1, 2)
    frames = router.expect(subsystem(b"RPC"))
    sender, recipient, sig, user, msg_id, sub, body = frames
    assert (sender, recipient, sig, user, sub) == (b"alice", b"bob", b"VIP1", b"", b"RPC")
    request = json.loads(body)
    ident = request["id"]
    assert isinstance(ident, str) and msg_id == ident.encode()
    assert body == b'{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "' + msg_id + b'"}'
    router.send(
        [
            b"alice",
            b"bob",
            b"VIP1",
            b"bob",
            msg_id,
            b"RPC",
            b'{"jsonrpc": "2.0", "id": "' + msg_id + b'", "result": 3}',
        ]
    )
    assert result.get(timeout=5) == 3


def test_rpc_answer_as_callee(raw_router, run_agent) -> None:
    router = raw_router()
    run_agent(make("bob", router, Bob))
    request = b'{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "' + JSON_ID.encode() + b'"}'
    router.send([b"bob", b"alice", b"VIP1", b"alice", b"1716400000.8795093022209", b"RPC", request])
    answer = router.expect(subsystem(b"RPC"))
    assert answer == [
        b"bob",
        b"alice",
        b"VIP1",
        b"",
        b"1716400000.8795093022209",
        b"RPC",
        b'{"jsonrpc": "2.0", "id": "1716400000.000000.8795093022353.000000", "result": 3}',
    ]


def test_publish_and_delivery(raw_router, run_agent) -> None:
    router = raw_router()
    bob = run_agent(make("bob", router, Bob))
    result = bob.vip.pubsub.publish("pubsub", "devices/x", message=42)
    frames = router.expect(subsystem(b"pubsub", b"publish"))
    assert frames[:4] == [b"bob", b"", b"VIP1", b""] and frames[5:8] == [b"pubsub", b"publish", b"devices/x"]
    assert frames[8] == b'{"bus": "", "headers": ' + COMPAT + b', "message": 42}'
    router.send([b"bob", b"", b"VIP1", b"bob", frames[4], b"pubsub", b"request_response", b"1"])
    assert result.get(timeout=5) == 1
    delivery = b'{"sender": "alice", "bus": "", "headers": ' + COMPAT + b', "message": 42}'
    router.send([b"bob", b"", b"VIP1", b"alice", b"m-9", b"pubsub", b"publish", b"devices/x", delivery])
    wait_until(lambda: bob.got, timeout=5, what="bob's delivery")
    assert bob.got == [("pubsub", "alice", "", "devices/x", json.loads(COMPAT), 42)]


def test_subscribe_frames(raw_router, run_agent) -> None:
    router = raw_router()
    alice = run_agent(make("alice", router))
    result = alice.vip.pubsub.subscribe("pubsub", "devices", lambda *a: None)
    frames = router.expect(subsystem(b"pubsub", b"subscribe"))
    assert frames[:4] == [b"alice", b"", b"VIP1", b""] and frames[5:] == [
        b"pubsub",
        b"subscribe",
        b'{"prefix": "devices", "bus": "", "all_platforms": false}',
    ]
    router.send([b"alice", b"", b"VIP1", b"alice", frames[4], b"pubsub", b"request_response", b"true"])
    assert result.get(timeout=5) is True


def test_synchronize_on_welcome_and_again_after_router_restart(raw_router, run_agent) -> None:
    router = raw_router()
    bob = run_agent(make("bob", router, Bob, reconnect_interval=50))
    first = router.expect(subsystem(b"pubsub", b"synchronize"))
    expected = [
        b"bob",
        b"",
        b"VIP1",
        b"",
        b"",
        b"pubsub",
        b"synchronize",
        b"connected",
        b'{"subscriptions": {"internal": {"": ["devices"]}, "all": {}}}',
    ]
    assert first == expected
    reconnected = gevent.event.Event()
    bob.core.onconnected.connect(lambda sender, **kw: reconnected.set())
    port = router.port
    router.close()
    restarted = raw_router(port)
    hello = restarted.expect(subsystem(b"hello"), timeout=10)
    assert hello == [b"bob", b"", b"VIP1", b"", b"connect.hello.1", b"hello", b"hello"]
    assert restarted.expect(subsystem(b"pubsub", b"synchronize"), timeout=5) == expected
    assert reconnected.wait(5) and bob.core.connected


def test_agentstop_on_stop(raw_router, run_agent) -> None:
    router = raw_router()
    alice = run_agent(make("alice", router))
    alice.core.stop(timeout=5)
    assert router.expect(subsystem(b"agentstop")) == [
        b"alice",
        b"",
        b"VIP1",
        b"",
        b"",
        b"agentstop",
        b"alice",
    ]


@pytest.mark.parametrize("errnum,cls", [(b"113", Unreachable), (b"93", UnknownSubsystem)])
def test_error_frames_fail_the_matching_call(raw_router, run_agent, errnum, cls) -> None:
    router = raw_router()
    alice = run_agent(make("alice", router))
    result = alice.vip.rpc.call("carol", "x")
    msg_id = router.expect(subsystem(b"RPC"))[4]
    router.send(
        [b"alice", b"", b"VIP1", b"", msg_id, b"error", errnum, b"No route to host", b"carol", b"RPC"]
    )
    started = time.monotonic()
    with pytest.raises(cls) as info:
        result.get(timeout=5)
    assert time.monotonic() - started < 1.0
    assert info.value.errno == int(errnum)


def test_unknown_subsystem_is_answered_with_error_93(raw_router, run_agent) -> None:
    router = raw_router()
    run_agent(make("alice", router))
    router.send([b"alice", b"bob", b"VIP1", b"bob", b"q-1", b"weird", b"x"])
    assert router.expect(subsystem(b"error")) == [
        b"alice",
        b"bob",
        b"VIP1",
        b"",
        b"q-1",
        b"error",
        b"93",
        b"Protocol not supported",
        b"",
        b"weird",
    ]


def test_peer_hello_and_ping_answers(raw_router, run_agent) -> None:
    router = raw_router()
    run_agent(make("alice", router))
    router.send([b"alice", b"bob", b"VIP1", b"bob", b"h-1", b"hello", b"hello"])
    assert router.expect(subsystem(b"hello", b"welcome")) == [
        b"alice",
        b"bob",
        b"VIP1",
        b"",
        b"h-1",
        b"hello",
        b"welcome",
        b"1.0",
        b"alice",
        b"bob",
    ]
    router.send([b"alice", b"bob", b"VIP1", b"bob", b"p-1", b"ping", b"ping", b"data"])
    assert router.expect(subsystem(b"ping")) == [
        b"alice",
        b"bob",
        b"VIP1",
        b"",
        b"p-1",
        b"ping",
        b"pong",
        b"data",
    ]


def test_curve_handshake_and_welcome(raw_router, run_agent, keys) -> None:
    router = raw_router(keys=keys["server"])
    agent = make(
        "secure",
        router,
        serverkey=keys["server"].public,
        publickey=keys["agent"].public,
        secretkey=keys["agent"].secret,
    )
    run_agent(agent)
    assert agent.core.connected and router.history[0][0] == b"secure"


def test_wrong_server_key_gives_a_clear_error(raw_router, keys) -> None:
    router = raw_router(keys=keys["server"])
    agent = make(
        "lost",
        router,
        serverkey=keys["agent"].public,
        publickey=keys["agent"].public,
        secretkey=keys["agent"].secret,
    )
    agent.core.welcome_timeout = 1.0
    gevent.spawn(agent.core.run).join(10)
    assert isinstance(agent.core.failure, ConnectError)
    assert "'lost'" in str(agent.core.failure)
    assert router.history == []


def test_nothing_listening_is_unreachable_with_one_clear_error() -> None:
    agent = Agent(
        identity="nobody",
        address=f"tcp://127.0.0.1:{free_port()}",
        enable_auth=False,
        enable_store=False,
        heartbeat_autostart=False,
    )
    agent.core.welcome_timeout = 0.5
    gevent.spawn(agent.core.run).join(10)
    assert "could not reach the platform" in str(agent.core.failure)


def test_rpc_call_never_blocks_the_caller_while_the_platform_is_away(raw_router, run_agent) -> None:
    router = raw_router()
    alice = run_agent(make("alice", router, reconnect_interval=50))
    port = router.port
    router.close()
    wait_until(lambda: not alice.core.connected, timeout=5, what="alice to see the platform gone")
    started = time.monotonic()
    result = alice.vip.rpc.call("bob", "add", 1, 2)
    assert time.monotonic() - started < 0.1  # call() itself returned at once
    with pytest.raises(gevent.Timeout):
        result.get(timeout=0.2)
    restarted = raw_router(port)
    frames = restarted.expect(subsystem(b"RPC"), timeout=10)  # queued request goes out on reconnection
    assert frames[1] == b"bob" and json.loads(frames[6])["method"] == "add"
