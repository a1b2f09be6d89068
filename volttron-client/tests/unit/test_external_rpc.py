"""Calls and publishes of linked platforms, agent side (issue 17): who a remote caller is, which
answers settle a call, call ids, and which callbacks hear another platform's publish."""

from __future__ import annotations

import json

import gevent
import gevent.event
import pytest

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.results import AsyncResult, ResultsDictionary
from volttron.client.vip.agent.subsystems.rpc import answer_accepted, remote_caller
from volttron.utils.identities import is_remote_principal, remote_principal


def test_call_ids_are_random_unique_and_never_json() -> None:
    results = ResultsDictionary()
    kept = [results.next("peer") for _ in range(10_000)]
    ids = [r.ident for r in kept]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("r") and len(i) == 17 for i in ids)
    # nothing shared past the marker letter: one seen id tells nothing of the next
    assert len({i[1:5] for i in ids}) > 9_000
    for ident in ids[:100]:
        with pytest.raises(ValueError):
            json.loads(ident)


@pytest.mark.parametrize("peer,platform,accepted", [
    ("callee", "B", True),
    ("callee", "", False),  # the same name on our platform
    ("callee", "C", False),  # another platform
    ("b.other", "B", False),  # another agent of the platform the call went to
])
def test_an_answer_is_accepted_only_from_who_was_asked(peer: str, platform: str, accepted: bool) -> None:
    assert answer_accepted(AsyncResult("r1", "callee", "", "B"), peer, platform) is accepted


def test_a_remote_caller_is_the_principal_the_router_or_broker_names() -> None:
    envelope = {"from_peer": "control.connection", "from_platform": "B"}
    # over ZeroMQ our router names the caller in the user frame; the envelope's text is not believed
    assert remote_caller(Message("", "external_rpc", [], "m", "B:ops.agent"), envelope) == "B:ops.agent"
    # a broker link vouches for the instance; the identity is qualified by it
    assert remote_caller(Message("b.router", "external_rpc", [], "m", "x", "B"), envelope) == \
        "B:control.connection"
    assert remote_principal("B", "ops.agent") == "B:ops.agent"
    assert is_remote_principal("B:ops.agent") and not is_remote_principal("ops.agent")


def test_a_local_peer_cannot_answer_a_call_made_to_another(start_agent, wait_until) -> None:
    release = gevent.event.Event()
    callee = start_agent("slow.callee")
    callee.vip.rpc.export(lambda: release.wait(5) and "late", "wait")
    caller = start_agent("caller")
    pending = caller.vip.rpc.call("slow.callee", "wait")
    forged = json.dumps({"jsonrpc": "2.0", "id": pending.ident, "result": "FORGED"}).encode()
    caller.core.connection.deliver(Message("mallory", "RPC", [forged], "x", "mallory"))
    real = json.dumps({"jsonrpc": "2.0", "id": pending.ident, "result": "real"}).encode()
    caller.core.connection.deliver(Message("slow.callee", "RPC", [real], "y", "slow.callee"))
    assert pending.get(timeout=5) == "real"
    release.set()


def test_another_platforms_publish_reaches_only_all_platforms_callbacks(start_agent, wait_until) -> None:
    agent = start_agent("both")
    everywhere: list[str] = []
    here: list[str] = []
    agent.vip.pubsub.subscribe("pubsub", "alerts/", lambda *a: everywhere.append(a[1]), all_platforms=True)
    agent.vip.pubsub.subscribe("pubsub", "alerts/", lambda *a: here.append(a[1]))

    def publish(sender: str) -> None:
        body = json.dumps({"sender": sender, "bus": "", "headers": {}, "message": 1}).encode()
        agent.core.connection.deliver(Message("", "pubsub", [b"publish", b"alerts/x", body], "", sender))

    publish("B:b.agent")  # the router qualifies another platform's publisher
    publish("a.local")
    wait_until(lambda: "a.local" in here)
    gevent.sleep(0)
    assert everywhere == ["B:b.agent", "a.local"] and here == ["a.local"]


def test_the_link_entry_binds_a_platform_key_to_the_links_to_this_platform() -> None:
    import re

    from volttron.client.commands.auth import link_entry
    from volttron.client.commands.cli import CommandError

    entry = link_entry("B", "K" * 43, "site-a")
    assert (entry["user_id"], entry["credentials"]) == ("B", "K" * 43)
    pattern = entry["identity"]
    assert pattern.startswith("/") and pattern.endswith("/")
    matches = [name for name in ("instance.site-a.0.25", "instance.site-a.8", "instance.site-b.1", "B",
                                 "platform.driver", "instance.site-a")
               if re.fullmatch(pattern[1:-1], name)]
    assert matches == ["instance.site-a.0.25", "instance.site-a.8"]
    with pytest.raises(CommandError):
        link_entry("B:x", "K" * 43, "site-a")  # a platform name never holds the principal separator
