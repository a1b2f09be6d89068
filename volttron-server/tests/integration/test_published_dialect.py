"""``platform.auth`` answers the published VOLTTRON's per-call questions with the policy our agents obey.

An agent of the published client (volttron-core 2.x) asks ``platform.auth`` about every protected
call it serves (``check_rpc_authorization``) and every publish it makes
(``check_pubsub_authorization``). These tests ask exactly those questions on the wire, from agents
in this process, and require the answers our own checks give: the caller without the capability
is refused where our ``@RPC.allow`` refuses it, the publisher without the capability is told no where
our router refuses its publish. ``tests/test_enforcement_switches.py`` runs them with each check
switched off (``published-rpc``, ``published-pubsub``); the end-to-end run of a real published-client
agent is ``test_published_client.py``.
"""

from __future__ import annotations

import json

import pytest

from volttron.client.testing.modules import load_beside


def _enforcement_tests() -> object:
    """The enforcement tests' module (its platform, fixture and refusal checks), loaded by path."""
    return load_beside(__file__, "test_auth_enforcement", "auth_enforcement_for_published_dialect")


_tests = _enforcement_tests()
CALL_TIMEOUT = _tests.CALL_TIMEOUT  # type: ignore[attr-defined]
NOT_ENFORCED = _tests.NOT_ENFORCED  # type: ignore[attr-defined]
EnforcedPlatform = _tests.EnforcedPlatform  # type: ignore[attr-defined]
assert_refused = _tests.assert_refused  # type: ignore[attr-defined]
enforced = _tests.enforced  # type: ignore[attr-defined]

pytestmark = pytest.mark.integration

AUTH = "platform.auth"


def test_a_published_client_callee_refuses_a_caller_without_the_capability(enforced: EnforcedPlatform
                                                                           ) -> None:
    enforced.start()
    callee = enforced.agent("callee")
    enforced.agent("holder", capabilities={"can_add": None, "tagged": {"tag": "/^ok-.*/"}})
    admin = enforced.admin()
    for method, capability in (("add", "can_add"), ("label", "tagged")):
        admin.vip.rpc.call(AUTH, "add_rpc_authorizations", "callee", method, [capability]).get(
            timeout=CALL_TIMEOUT)

    def ask(caller: str, method: str, **arguments: object) -> object:
        return callee.vip.rpc.call(AUTH, "check_rpc_authorization", identity=caller,
                                   method_name=f"callee.{method}", method_args=arguments)

    protected = callee.vip.rpc.call(AUTH, "get_protected_rpcs", "callee").get(timeout=CALL_TIMEOUT)
    assert {"add", "label", "config.update", "config.initial_update"} <= set(protected), protected
    assert "open" not in protected
    assert ask("holder", "add", a=1, b=2).get(timeout=CALL_TIMEOUT) is True
    assert ask("nobody", "open").get(timeout=CALL_TIMEOUT) is True
    assert_refused(ask("nobody", "add", a=1, b=2), "callee.add for a caller without can_add")
    # what every one of our agents requires in code holds for a published agent too
    assert ask("platform.config_store", "config.update", action="NEW", config_name="config").get(
        timeout=CALL_TIMEOUT) is True
    assert_refused(ask("holder", "config.update", action="NEW", config_name="config"),
                   "config.update pushed by an agent without sync_agent_config")
    # argument restrictions are checked as our @RPC.allow checks them
    assert ask("holder", "label", tag="ok-1").get(timeout=CALL_TIMEOUT) is True
    assert_refused(ask("holder", "label", tag="bad"), "callee.label with a tag its restriction excludes")
    # an agent asks about its own methods only, and about its own protected list only
    assert_refused(callee.vip.rpc.call(AUTH, "check_rpc_authorization", identity="holder",
                                       method_name="holder.add", method_args={}),
                   "a question about another agent's method")
    assert_refused(callee.vip.rpc.call(AUTH, "get_protected_rpcs", "holder"),
                   "another agent's protected list")


def test_a_published_client_is_told_what_the_router_enforces(enforced: EnforcedPlatform) -> None:
    enforced.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (enforced.home / "protected_topics.json").write_text(json.dumps(
        {"write-protect": [{"topic": "secure/", "capabilities": ["can_publish_secure"]}]}))
    enforced.start()
    writer = enforced.agent("writer", capabilities={"can_publish_secure": None})
    other = enforced.agent("other")

    def ask(agent: object, identity: str, topic: str, access: str) -> object:
        return agent.vip.rpc.call(AUTH, "check_pubsub_authorization", identity=identity,  # type: ignore[attr-defined]
                                  topic_pattern=topic, access=access).get(timeout=CALL_TIMEOUT)

    assert_refused(other.vip.pubsub.publish("pubsub", "secure/x", message=1), "the router's refusal")
    told = ask(other, "other", "secure/x", "publish")
    assert told is False, (f"{NOT_ENFORCED}publish to secure/x was allowed by check_pubsub_authorization "
                           f"({told!r})")
    assert ask(other, "other", "secure/x", "pubsub") is False
    assert ask(other, "other", "secure/x", "subscribe") is True  # the router does not restrict subscribing
    assert ask(other, "other", "open/x", "publish") is True
    assert ask(writer, "writer", "secure/x", "publish") is True
    assert callee_is_protected(other, "secure/y") is True and callee_is_protected(other, "open/y") is False
    assert_refused(other.vip.rpc.call(AUTH, "check_pubsub_authorization", identity="writer",
                                      topic_pattern="secure/x", access="publish"),
                   "a question about another agent's rights")


def callee_is_protected(agent: object, topic: str) -> object:
    """``is_protected_topic`` as a published client asks it."""
    return agent.vip.rpc.call(AUTH, "is_protected_topic", topic_name_pattern=topic).get(  # type: ignore[attr-defined]
        timeout=CALL_TIMEOUT)
