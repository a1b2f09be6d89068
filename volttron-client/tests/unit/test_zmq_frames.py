"""Whole ZeroMQ messages in one call: the compiled helper and pyzmq's frame-by-frame path answer alike.

Every test runs with both implementations and states the one expected answer, so the two cannot
drift apart. The compiled one is skipped (with its reason) only where volttron-client was built
without it; on a machine with a C compiler the last test insists that it was built.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading

import pytest
import zmq

from volttron.client.messagebus import zmq_frames

IMPLEMENTATIONS = ["compiled", "python"]


@pytest.fixture(params=IMPLEMENTATIONS)
def frames_impl(request):
    before = "compiled" if zmq_frames.COMPILED else "python"
    try:
        zmq_frames.use(request.param)
    except RuntimeError as exc:
        pytest.skip(reason=f"no compiled helper here: {exc}")
    try:
        yield request.param
    finally:
        zmq_frames.use(before)


@pytest.fixture
def context():
    ctx = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


@pytest.fixture
def pair(context):
    a = context.socket(zmq.PAIR)
    b = context.socket(zmq.PAIR)
    a.bind("inproc://frames")
    b.connect("inproc://frames")
    return a, b


def _recv_soon(sock, deadline_s: float = 5.0):
    """The next message; inproc delivers at once, other transports within the deadline."""
    if not sock.poll(int(deadline_s * 1000)):
        raise AssertionError("no message arrived")
    return zmq_frames.recv(sock)


MESSAGES = [
    [b"one"],
    [b""],
    [b"", b"", b""],
    [b"listener", b"VIP1", b"", b"id", b"pubsub", b"publish", b'{"topic": "t"}', b'{"m": 1}'],
    [b"x" * 1_000_000, b"tail"],
    [bytes(range(256)) * 4, b"\x00", b"\xff" * 3],
]


@pytest.mark.parametrize("message", MESSAGES, ids=["one", "empty", "three-empty", "vip", "1MB", "binary"])
def test_a_message_arrives_whole_and_unchanged(frames_impl, pair, message) -> None:
    a, b = pair
    assert zmq_frames.send(a, message) is True
    assert zmq_frames.recv(b) == message
    assert zmq_frames.recv(b) is None  # nothing more waits


def test_messages_keep_their_boundaries_and_order(frames_impl, pair) -> None:
    a, b = pair
    sent = [[str(i).encode()] * (1 + i % 9) for i in range(200)]
    for message in sent:
        assert zmq_frames.send(a, message)
    got = [zmq_frames.recv(b) for _ in sent]
    assert got == sent
    assert zmq_frames.recv(b) is None


def test_a_message_of_many_frames(frames_impl, pair) -> None:
    a, b = pair
    message = [i.to_bytes(2, "big") for i in range(10_000)]
    assert zmq_frames.send(a, message)
    assert zmq_frames.recv(b) == message


def test_pyzmq_and_the_helper_read_each_other(frames_impl, pair) -> None:
    a, b = pair
    a.send_multipart([b"from", b"pyzmq"])
    assert zmq_frames.recv(b) == [b"from", b"pyzmq"]
    assert zmq_frames.send(b, [b"to", b"pyzmq"])
    assert a.recv_multipart() == [b"to", b"pyzmq"]


def test_tuples_and_bytearrays_and_memoryviews_are_frames(frames_impl, pair) -> None:
    a, b = pair
    assert zmq_frames.send(a, (b"tuple", bytearray(b"bytearray"), memoryview(b"view")))
    assert zmq_frames.recv(b) == [b"tuple", b"bytearray", b"view"]


def test_a_frame_that_is_not_bytes_is_refused_and_nothing_is_queued(frames_impl, pair) -> None:
    a, b = pair
    with pytest.raises(TypeError):
        zmq_frames.send(a, [b"ok", "text is not a frame"])
    # the helper refuses before it queues anything; pyzmq's path may have queued the first part,
    # which the next message then completes: both must leave the peer a well-formed stream
    assert zmq_frames.send(a, [b"next"])
    received = zmq_frames.recv(b)
    assert received in ([b"next"], [b"ok", b"next"])
    if frames_impl == "compiled":
        assert received == [b"next"]


def test_an_empty_message_is_refused(frames_impl, pair) -> None:
    a, _ = pair
    with pytest.raises(ValueError):
        zmq_frames.send(a, [])


def test_a_send_that_would_block_returns_false_and_queues_nothing(frames_impl, context) -> None:
    dealer = context.socket(zmq.DEALER)
    try:
        dealer.setsockopt(zmq.IMMEDIATE, 1)  # queue only to completed connections
        dealer.connect("ipc:///nonexistent-volttron-test/no-peer")  # there is none: nowhere to queue
        assert zmq_frames.send(dealer, [b"a", b"b"]) is False
    finally:
        dealer.close(0)


def test_an_unknown_peer_on_a_mandatory_router_raises_with_its_errno(frames_impl, context) -> None:
    router = context.socket(zmq.ROUTER)
    try:
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.bind("inproc://mandatory")
        with pytest.raises(zmq.ZMQError) as caught:
            zmq_frames.send(router, [b"nobody", b"hello"])
        assert caught.value.errno == errno.EHOSTUNREACH
    finally:
        router.close(0)


def test_a_closed_socket_raises_enotsock_and_is_never_touched(frames_impl, pair) -> None:
    a, b = pair
    b.close(0)
    with pytest.raises(zmq.ZMQError) as caught:
        zmq_frames.recv(b)
    assert caught.value.errno == zmq.ENOTSOCK
    with pytest.raises(zmq.ZMQError) as caught:
        zmq_frames.send(b, [b"x"])
    assert caught.value.errno == zmq.ENOTSOCK
    with pytest.raises(zmq.ZMQError) as caught:
        zmq_frames.recv_routed(b, {})
    assert caught.value.errno == zmq.ENOTSOCK


def test_a_terminated_context_raises_context_terminated(frames_impl) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.bind("inproc://term")
    sock.set(zmq.LINGER, 0)
    closer = threading.Thread(target=ctx.term)  # term() waits for the socket to close
    closer.start()
    try:
        with pytest.raises(zmq.ContextTerminated):
            deadline = 200
            while deadline:  # term() flags the socket asynchronously; bounded polling
                deadline -= 1
                zmq_frames.recv(sock)
                closer.join(0.01)
    finally:
        sock.close(0)
        closer.join(5)


def test_recv_routed_on_inproc_has_no_descriptor_and_no_user(frames_impl, context) -> None:
    router = context.socket(zmq.ROUTER)
    dealer = context.socket(zmq.DEALER)
    try:
        router.bind("inproc://routed")
        dealer.setsockopt(zmq.IDENTITY, b"agent")
        dealer.connect("inproc://routed")
        dealer.send_multipart([b"", b"VIP1", b"hello"])
        assert zmq_frames.recv_routed(router, {}) == ([b"agent", b"", b"VIP1", b"hello"], -1, None)
        assert zmq_frames.recv_routed(router, {}) is None
    finally:
        dealer.close(0)
        router.close(0)


def test_recv_routed_gives_the_connection_and_the_zap_user(frames_impl, context, tmp_path) -> None:
    """Over ipc with CURVE and a ZAP handler: the descriptor of the connection and the User-Id."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(context)
    auth.start()
    router = context.socket(zmq.ROUTER)
    dealer = context.socket(zmq.DEALER)
    try:
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        router.curve_server = True
        router.curve_secretkey = server_secret
        router.zap_domain = b"vip"
        address = f"ipc://{tmp_path}/router"
        router.bind(address)
        dealer.curve_serverkey = server_public
        dealer.curve_publickey = client_public
        dealer.curve_secretkey = client_secret
        dealer.setsockopt(zmq.IDENTITY, b"agent")
        dealer.connect(address)
        dealer.send_multipart([b"", b"VIP1", b"hello"])
        assert router.poll(5000)
        frames, fd, user = zmq_frames.recv_routed(router, {})
        assert frames == [b"agent", b"", b"VIP1", b"hello"]
        assert fd >= 0 and os.fstat(fd)  # a live descriptor of this process
        assert user == client_public.decode()  # pyzmq's authenticator names CURVE users by their key
        # a sender already known on that descriptor: the user may be left out (pyzmq's path skips it)
        dealer.send_multipart([b"", b"again"])
        assert router.poll(5000)
        frames, fd_again, user_again = zmq_frames.recv_routed(router, {b"agent": fd})
        assert frames == [b"agent", b"", b"again"] and fd_again == fd
        assert user_again in (None, user)
    finally:
        dealer.close(0)
        router.close(0)
        auth.stop()


def test_the_environment_variable_turns_the_helper_off() -> None:
    code = "from volttron.client.messagebus import zmq_frames as z; print(z.COMPILED, z.IMPLEMENTATION)"
    env = dict(os.environ, VOLTTRON_ZMQ_FRAMES="python")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.startswith("False pyzmq frame by frame (VOLTTRON_ZMQ_FRAMES=python)")


def test_an_unknown_implementation_is_refused() -> None:
    with pytest.raises(ValueError):
        zmq_frames.use("fast")


def test_the_helper_is_built_where_a_compiler_is() -> None:
    """The build never fails for lack of a compiler (it falls back); this catches a build that dropped
    the helper silently on a machine that could have compiled it."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip(reason="no C compiler on this machine: volttron-client is built without its helper")
    if os.environ.get(zmq_frames.ENVIRONMENT_VARIABLE, "").lower() == "python":
        pytest.skip(reason="VOLTTRON_ZMQ_FRAMES=python turns the helper off in this run")
    module, why = zmq_frames._load()
    assert module is not None, why
