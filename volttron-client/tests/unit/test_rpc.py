"""RPC over the in-memory router: encoding, dispatch, inspect, errors, capabilities, concurrency."""

from __future__ import annotations

import json
import time

import gevent
import gevent.event
import pytest

from volttron.client.known_identities import AUTH
from volttron.client.messagebus.base import Message
from volttron.client.vip.agent import RPC, Agent
from volttron.client.vip.agent.errors import (
    MethodNotFound,
    RemoteError,
    ResultTimeout,
    Unauthorized,
    Unreachable,
)
from volttron.utils import jsonrpc
from volttron.utils.errors import FrameError, VolttronError


class Calculator(Agent):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.notes = []
        self.gate = gevent.event.Event()
        self.slow_started = gevent.event.Event()
        self.callers = []

    @RPC.export
    def add(self, a, b=0):
        """Add two numbers."""
        return a + b

    @RPC.export("named.echo")
    def echo(self, *args, **kwargs):
        return {"args": list(args), "kwargs": kwargs}

    @RPC.export
    def note(self, text):
        self.notes.append(text)

    @RPC.export
    def whoami(self):
        message = self.vip.rpc.context.vip_message
        self.callers.append((message.peer, message.user))
        return message.peer

    @RPC.export
    def custom_failure(self):
        raise LookupError("missing thing")

    @RPC.export
    def secret_failure(self):
        class Private(Exception):
            pass

        raise Private("hidden")

    @RPC.export
    def unserialisable(self):
        return object()

    @RPC.export
    def wait_for_gate(self):
        self.gate.wait()
        return "released"

    @RPC.export
    def slow(self, seconds):
        self.slow_started.set()
        gevent.sleep(seconds)
        return "slow"

    @RPC.export
    def call_back(self, peer):
        return self.vip.rpc.call(peer, "add", 20, 22).get(timeout=2)


@pytest.fixture
def pair(start_agent):
    return start_agent("calc", Calculator), start_agent("client")


def _request_text(router, sender="client"):
    return [json.loads(m.args[0]) for m in router.messages("RPC", sender)]


def test_positional_keyword_and_mixed_params_on_the_wire(pair, router) -> None:
    calc, client = pair
    assert client.vip.rpc.call("calc", "add", 1, 2).get(timeout=2) == 3
    assert client.vip.rpc.call("calc", "add", a=1, b=5).get(timeout=2) == 6
    assert client.vip.rpc.call("calc", "named.echo", 1, x=2).get(timeout=2) == {
        "args": [1],
        "kwargs": {"x": 2},
    }
    requests = _request_text(router)
    assert [r["params"] for r in requests] == [[1, 2], {"a": 1, "b": 5}, {"*args": [1], "**kwargs": {"x": 2}}]
    message = router.messages("RPC", "client")[0]
    assert message.peer == "calc" and message.user == ""
    assert requests[0]["id"] == message.id and isinstance(message.id, str)
    assert message.args[0] == json.dumps(requests[0]).encode()  # default separators, key order kept
    assert list(requests[0]) == ["jsonrpc", "method", "params", "id"]


def test_response_layout(pair, router) -> None:
    calc, client = pair
    client.vip.rpc.call("calc", "add", 1, 2).get(timeout=2)
    response = router.messages("RPC", "calc")[0]
    assert response.peer == "client" and response.user == ""
    ident = json.loads(router.messages("RPC", "client")[0].args[0])["id"]
    expected = '{"jsonrpc": "2.0", "id": "' + ident + '", "result": 3}'
    assert response.args == [expected.encode()]


def test_no_params_are_omitted(pair, router) -> None:
    calc, client = pair
    assert client.vip.rpc.call("calc", "whoami").get(timeout=2) == "client"
    assert "params" not in _request_text(router)[0]
    assert calc.callers == [("client", "client")]  # peer and user (the router sets user = sender)


def test_notify_has_no_id_and_no_answer(pair, router, wait_until) -> None:
    calc, client = pair
    assert client.vip.rpc.notify("calc", "note", "hi") is None
    wait_until(lambda: calc.notes == ["hi"])
    sent = router.messages("RPC", "client")[0]
    assert sent.id == "" and "id" not in json.loads(sent.args[0])
    # a call served after the notification: its answer is the marker; no answer came before it
    marker = client.vip.rpc.call("calc", "add", 1, 1)
    assert marker.get(timeout=2) == 2
    assert [m.id for m in router.messages("RPC", "calc")] == [marker.ident]


def test_batch_mixes_calls_and_notifications(pair, router, wait_until) -> None:
    calc, client = pair
    results = client.vip.rpc.batch(
        "calc", [(False, "add", [1, 1], {}), (True, "note", ["b"], {}), (False, "add", [2], {"b": 2})]
    )
    assert [r.get(timeout=2) for r in results] == [2, 4]
    wait_until(lambda: calc.notes == ["b"])
    batch = json.loads(router.messages("RPC", "client")[0].args[0])
    assert isinstance(batch, list) and len(batch) == 3 and "id" not in batch[1]
    answer = json.loads(router.messages("RPC", "calc")[0].args[0])
    assert isinstance(answer, list) and len(answer) == 2
    assert client.vip.rpc.batch("calc", [(True, "note", ["c"], {})]) is None


def test_inspect_builtins(pair) -> None:
    calc, client = pair
    methods = client.vip.rpc.call("calc", "inspect").get(timeout=2)["methods"]
    assert {"add", "named.echo", "agent.version", "health.get_status"} <= set(methods)
    info = client.vip.rpc.call("calc", "add.inspect").get(timeout=2)
    assert info["params"] == {
        "a": {"kind": "POSITIONAL_OR_KEYWORD"},
        "b": {"kind": "POSITIONAL_OR_KEYWORD", "default": 0},
    }
    assert info["doc"] == "Add two numbers."
    assert info["source"]["file"].endswith("test_rpc.py") and info["source"]["line_number"] > 0
    with pytest.raises(MethodNotFound):
        client.vip.rpc.call("calc", "nothing.inspect").get(timeout=2)


def test_remote_exceptions(pair) -> None:
    calc, client = pair
    with pytest.raises(LookupError) as info:
        client.vip.rpc.call("calc", "custom_failure").get(timeout=2)
    assert isinstance(info.value, RemoteError) and info.value.exc_args == ["missing thing"]
    with pytest.raises(RemoteError) as info:
        client.vip.rpc.call("calc", "secret_failure").get(timeout=2)
    assert type(info.value) is RemoteError and info.value.exc_type.endswith("Private")
    assert "Traceback" in info.value.exc_info["exc_tb"]


def test_missing_method_and_bad_arguments(pair) -> None:
    calc, client = pair
    with pytest.raises(MethodNotFound) as info:
        client.vip.rpc.call("calc", "nope").get(timeout=2)
    assert info.value.code == -32601 and "method 'nope' is not implemented" in str(info.value)
    with pytest.raises(TypeError):  # a TypeError raised by the call itself comes back as RemoteTypeError
        client.vip.rpc.call("calc", "add", 1, 2, 3).get(timeout=2)


def test_unserialisable_result_is_an_internal_error(pair) -> None:
    calc, client = pair
    with pytest.raises(jsonrpc.Error) as info:
        client.vip.rpc.call("calc", "unserialisable").get(timeout=2)
    assert info.value.code == jsonrpc.INTERNAL_ERROR and "not JSON serialisable" in str(info.value)


def test_unserialisable_arguments_fail_at_the_caller(pair) -> None:
    calc, client = pair
    with pytest.raises(FrameError):
        client.vip.rpc.call("calc", "add", object())


def test_missing_peer_is_unreachable_fast(pair) -> None:
    calc, client = pair
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        client.vip.rpc.call("ghost", "add", 1).get(timeout=5)
    assert time.monotonic() - started < 1.0
    assert info.value.peer == "ghost" and info.value.errno == 113


def test_timeout_is_both_gevent_and_volttron(pair) -> None:
    calc, client = pair
    result = client.vip.rpc.call("calc", "slow", 1)
    with pytest.raises(gevent.Timeout) as info:
        result.get(timeout=0.05)
    assert isinstance(info.value, ResultTimeout) and isinstance(info.value, VolttronError)
    assert "'slow' on 'calc'" in str(info.value)
    assert result.get(timeout=3) == "slow"  # the answer still arrives


def test_blocking_method_does_not_block_the_agent(pair) -> None:
    calc, client = pair
    blocked = client.vip.rpc.call("calc", "wait_for_gate")  # waits until the test opens the gate
    assert client.vip.rpc.call("calc", "add", 1, 1).get(timeout=2) == 2  # served meanwhile
    assert not blocked.ready()
    calc.gate.set()
    assert blocked.get(timeout=2) == "released"


def test_method_may_call_back_its_caller(start_agent) -> None:
    start_agent("calc", Calculator)
    other = start_agent("other", Calculator)
    assert other.vip.rpc.call("calc", "call_back", "other").get(timeout=3) == 42


def test_malformed_request_frames_get_parse_and_request_errors(pair, router, wait_until) -> None:
    calc, client = pair
    conn = calc.core.connection
    conn.deliver(Message("client", "RPC", [b"{not json"], "bad-1", "client"))
    conn.deliver(
        Message("client", "RPC", [b'{"jsonrpc": "1.0", "method": "add", "id": "r2"}'], "bad-2", "client")
    )
    wait_until(lambda: len(router.messages("RPC", "calc")) == 2)
    answers = {m.id: json.loads(m.args[0]) for m in router.messages("RPC", "calc")}
    assert answers["bad-1"]["error"]["code"] == jsonrpc.PARSE_ERROR
    assert answers["bad-2"]["error"]["code"] == jsonrpc.INVALID_REQUEST and answers["bad-2"]["id"] == "r2"


def test_pending_calls_fail_when_the_peer_leaves(pair, router) -> None:
    calc, client = pair
    pending = client.vip.rpc.call("calc", "slow", 5)
    assert calc.slow_started.wait(5), "the call never reached calc"
    calc.core.stop(timeout=5)
    with pytest.raises(Unreachable, match="left the platform"):
        pending.get(timeout=2)


# ---------------------------------------------------------------- capabilities


class Guarded(Agent):
    @RPC.export
    @RPC.allow("can_add")
    def guarded_add(self, a, b):
        return a + b

    @RPC.export
    @RPC.allow(["edit"])
    def edit(self, identity, value=None):
        return f"edited {identity}"


class AuthService(Agent):
    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = table
        self.fetches = 0

    @RPC.export
    def get_user_to_capabilities(self):
        self.fetches += 1
        return self.table


TABLE = {
    "adder": {"can_add": None},
    "lister": ["can_add", {"edit": {"identity": "/list.*/"}}],
    "exact": {"edit": {"identity": "bob"}},
    "nobody": {},
    "badpattern": {"edit": {"identity": "/[unclosed/"}},
}


@pytest.fixture
def guarded(start_agent):
    service = start_agent(AUTH, AuthService, table=TABLE)
    return service, start_agent("guarded", Guarded, enable_auth=True)


@pytest.mark.parametrize(
    "caller,method,args,allowed",
    [
        ("adder", "guarded_add", [1, 2], True),
        ("nobody", "guarded_add", [1, 2], False),  # an empty capability set denies
        ("stranger", "guarded_add", [1, 2], False),  # unknown user: no capabilities
        ("lister", "edit", ["listener"], True),  # regex restriction matches
        ("lister", "edit", ["bob"], False),
        ("exact", "edit", ["bob"], True),  # exact restriction
        ("exact", "edit", ["bobby"], False),
        ("adder", "edit", ["x"], False),
        ("badpattern", "edit", ["x"], False),  # a restriction that cannot be evaluated denies
    ],
)
def test_allow_checks(guarded, start_agent, caller, method, args, allowed) -> None:
    client = start_agent(caller)
    result = client.vip.rpc.call("guarded", method, *args)
    if allowed:
        assert result.get(timeout=3)
    else:
        with pytest.raises(Unauthorized) as info:
            result.get(timeout=3)
        assert info.value.code == -32001


def test_capability_table_is_fetched_once_and_replaced_only_by_auth(guarded, start_agent) -> None:
    service, agent = guarded
    client = start_agent("adder")
    for _ in range(3):
        assert client.vip.rpc.call("guarded", "guarded_add", 1, 1).get(timeout=3) == 2
    assert service.fetches == 1
    with pytest.raises(Unauthorized, match="accepted from platform.auth only"):
        client.vip.rpc.call("guarded", "auth.update", {"adder": {}}).get(timeout=3)
    assert client.vip.rpc.call("guarded", "guarded_add", 1, 1).get(timeout=3) == 2
    service.vip.rpc.call("guarded", "auth.update", {"adder": {}}).get(timeout=3)
    with pytest.raises(Unauthorized):
        client.vip.rpc.call("guarded", "guarded_add", 1, 1).get(timeout=3)


def test_unreachable_auth_service_denies(start_agent) -> None:
    start_agent("guarded", Guarded, enable_auth=True)
    client = start_agent("adder")
    with pytest.raises(Unauthorized, match="unavailable"):
        client.vip.rpc.call("guarded", "guarded_add", 1, 1).get(timeout=5)


def test_auth_disabled_skips_checks(start_agent) -> None:
    start_agent("guarded", Guarded, enable_auth=False)
    assert start_agent("anyone").vip.rpc.call("guarded", "guarded_add", 1, 1).get(timeout=3) == 2


def test_rpc_authorizations_can_be_read_and_changed_with_capability(guarded, start_agent) -> None:
    service, agent = guarded
    service.table["admin"] = {"modify_rpc_method_allowance": None, "can_add": None, "other": None}
    admin = start_agent("admin")
    get = admin.vip.rpc.call("guarded", "auth.get_rpc_authorizations", "guarded_add").get(timeout=3)
    assert get == ["can_add"]
    admin.vip.rpc.call("guarded", "auth.set_rpc_authorizations", "guarded_add", ["other"]).get(timeout=3)
    assert agent.vip.rpc.get_allowed("guarded_add") == ["other"]
    adder = start_agent("adder")
    with pytest.raises(Unauthorized):
        adder.vip.rpc.call("guarded", "auth.set_rpc_authorizations", "guarded_add", []).get(timeout=3)


def _send_peer(sender: str, platform: str = "", caller: str = "caller") -> Message:
    request = json.dumps({"jsonrpc": "2.0", "id": "x1", "method": "add", "params": [2, 3]})
    envelope = {"to_platform": "testplatform", "to_peer": "calc", "from_platform": "far",
                "from_peer": caller, "args": [request]}
    frames = [b"send_peer", json.dumps(envelope).encode()]
    return Message(sender, "external_rpc", frames, "e1", sender, platform)


def test_other_platforms_calls_come_only_from_the_router_or_a_broker_link(pair, router, wait_until) -> None:
    calc, _ = pair
    conn = calc.core.connection
    # first a local peer posing as another platform's caller, then the two legitimate deliverers
    conn.deliver(_send_peer("mallory", caller="forged"))
    conn.deliver(_send_peer("far.router", platform="far"))  # a RabbitMQ federation link or shovel
    conn.deliver(_send_peer(""))  # our router
    wait_until(lambda: len(router.messages("external_rpc", "calc")) >= 2)
    answers = [json.loads(m.args[1]) for m in router.messages("external_rpc", "calc")]
    assert [(a["to_platform"], a["to_peer"], json.loads(a["args"][0])["result"]) for a in answers] == [
        ("far", "caller", 5), ("far", "caller", 5)], "the forged call was answered"


def test_an_answer_leaves_before_the_agent_reads_again(start_agent, memory, monkeypatch, wait_until):
    """The receive loop used to try the next read before the request it had just started could run:
    on an idle agent that read fails and waits, and all of it sat between every request and its
    answer. Now the answer goes out first, and the caller's next request (woken by its result)
    goes out before the caller's loop reads again."""
    events: list[tuple[str, str]] = []
    real_recv, real_send = memory.MemoryConnection.recv, memory.MemoryConnection.send

    def recv(self, timeout=None):
        events.append((self.identity, "read"))
        return real_recv(self, timeout)

    def send(self, message, timeout=None):
        if message.subsystem == "RPC":
            events.append((self.identity, "send"))
        return real_send(self, message, timeout)

    monkeypatch.setattr(memory.MemoryConnection, "recv", recv)
    monkeypatch.setattr(memory.MemoryConnection, "send", send)
    start_agent("calc", Calculator)
    client = start_agent("client")
    answers: list[int] = []

    def two_calls():
        answers.append(client.vip.rpc.call("calc", "add", 1, 2).get(timeout=5))
        answers.append(client.vip.rpc.call("calc", "add", 3, 4).get(timeout=5))

    def waiting(identity):
        mine = [what for who, what in events if who == identity]
        return mine and mine[-1] == "read"

    wait_until(lambda: waiting("calc") and waiting("client"), timeout=5)  # both loops wait
    events.clear()
    gevent.spawn(two_calls).join(10)
    assert answers == [3, 7]
    wait_until(lambda: sum(1 for who, what in events if who == "calc" and what == "read") >= 2, timeout=5)
    def from_first_send(identity):  # a loop may have read something else (a peer list) first
        mine = [what for who, what in events if who == identity]
        return mine[mine.index("send"):]

    assert from_first_send("calc")[:4] == ["send", "read", "send", "read"], events
    # the first call; its answer wakes the second call, which is sent before the loop reads again
    assert from_first_send("client")[:3] == ["send", "send", "read"], events


def test_requests_are_served_by_reused_greenlets_and_still_concurrently(start_agent):
    calc = start_agent("calc", Calculator)
    client = start_agent("client")
    workers = calc.core._workers
    before = workers.spawned
    for i in range(50):
        assert client.vip.rpc.call("calc", "add", i, 1).get(timeout=5) == i + 1
    assert workers.spawned - before <= 1, f"{workers.spawned - before} greenlets for 50 sequential requests"
    listed = [g for g in calc.core.greenlets if getattr(g, "_run", None) == workers._work]
    assert not listed, "an idle worker is listed among the agent's running greenlets"
    held = client.vip.rpc.call("calc", "wait_for_gate")
    assert client.vip.rpc.call("calc", "add", 2, 2).get(timeout=5) == 4  # served beside the held one
    assert workers.spawned - before == 2
    calc.gate.set()
    assert held.get(timeout=5) == "released"
