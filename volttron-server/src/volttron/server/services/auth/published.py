"""The published VOLTTRON's authorization dialect, answered from our ``auth.json`` (issue 12 item 1).

Agents written with the published modular VOLTTRON client (``volttron-core`` 2.x with
``volttron-lib-auth``) do not fetch a capability table. They ask ``platform.auth`` per decision:

* ``get_protected_rpcs(identity) -> [method]``: on an agent's first RPC call (not to
  ``platform.auth``/``platform.control``), its exported methods that need a check. The agent wraps
  each so that a call first asks ``check_rpc_authorization``. The platform may add names later with
  ``rpc.add_protected_rpcs(names)`` on the agent (it cannot remove any: a method whose requirement
  was withdrawn is still asked about, and then allowed).
* ``check_rpc_authorization(identity=caller, method_name="<callee>.<method>", method_args={...})``:
  asked by the callee; its answer is ignored, an error refuses the call.
* ``check_pubsub_authorization(identity, topic_pattern, access) -> bool``: asked by an agent about
  itself before each ``publish`` (``access="publish"``) and ``subscribe`` (``"subscribe"``); False
  makes the agent log, set its health BAD and not send. Advisory: our router checks every publish
  to a protected topic itself.
* ``is_protected_topic(topic_name_pattern) -> bool`` and ``get_agent_capabilities(identity)``.

One policy holds for both kinds of client. What a method requires is what our agents' ``@RPC.allow``
reports to ``auth.json`` (the entry's ``rpc_method_authorizations``, administrators' changes
included) plus what every one of our agents checks in code (``config.update`` and
``config.initial_update`` need ``sync_agent_config``). What a caller holds is its entry's effective
capabilities, checked by the same :func:`~volttron.client.vip.agent.capabilities.check_capabilities`
as our agents' (argument restrictions included). Publishing to a protected topic needs what
``protected_topics.json`` lists, as the router checks it; subscribing is not restricted, here or
by the router.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from volttron.client.vip.agent.capabilities import check_capabilities, unauthorized
from volttron.server.services.auth.access import SYNC_AGENT_CONFIG
from volttron.server.services.auth.authfile import AuthDocument, AuthEntry, Capabilities
from volttron.server.services.pubsub.protected import ProtectedTopics, is_allowed

CHECKED_IN_CODE: dict[str, list[str]] = {
    "config.update": [SYNC_AGENT_CONFIG],
    "config.initial_update": [SYNC_AGENT_CONFIG],
}
"""What every one of our agents requires in code, and so what a published agent is held to as well."""

PUBLISH_ACCESS = frozenset({"publish", "pubsub"})
ACCESS_VALUES = frozenset({"publish", "subscribe", "pubsub"})


def agent_entry(document: AuthDocument, identity: str) -> AuthEntry | None:
    """The enabled allow entry of the agent ``identity`` (its ``identity`` field, else its ``user_id``)."""
    for entry in document.allow:
        if entry.enabled and entry.identity == identity:
            return entry
    for entry in document.allow:
        if entry.enabled and entry.user_id == identity:
            return entry
    return None


def held_capabilities(document: AuthDocument, user: str) -> Capabilities:
    """The effective capabilities of ``user`` (empty for an unknown or disabled user)."""
    for entry in document.allow:
        if entry.enabled and entry.user_id == user:
            return document.effective_capabilities(entry)
    return {}


def method_requirements(document: AuthDocument, identity: str) -> dict[str, list[str]]:
    """``{method: [capabilities]}`` of the agent ``identity``: in-code defaults, then its entry's map.

    ``[""]`` (no restriction) is left out; ``[]`` (closed to everyone) stays.
    """
    required = {method: list(caps) for method, caps in CHECKED_IN_CODE.items()}
    entry = agent_entry(document, identity)
    if entry is not None:
        required.update({method: list(caps) for method, caps in entry.rpc_method_authorizations.items()})
    return {method: caps for method, caps in required.items() if caps != [""]}


def protected_rpcs(document: AuthDocument, identity: str) -> list[str]:
    """The methods of ``identity`` that need a check (``get_protected_rpcs``), sorted."""
    return sorted(method_requirements(document, identity))


def _stand_in(method_args: Mapping[str, Any]) -> Any:
    """A callable whose signature takes exactly ``method_args`` by name (to check restrictions on them)."""

    def call(**kwargs: Any) -> None:
        return None

    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(str(name), inspect.Parameter.KEYWORD_ONLY) for name in method_args])
    return call


def check_rpc_call(document: AuthDocument, caller: str, callee: str, method: str,
                   method_args: Mapping[str, Any]) -> None:
    """Raise :class:`~volttron.utils.jsonrpc.Unauthorized` unless ``caller`` may call ``callee.method``.

    The method's requirement is :func:`method_requirements`; ``method_args`` are the call's
    arguments by name (defaults applied), checked against parameter restrictions.
    """
    required = method_requirements(document, callee).get(method)
    if required is None:
        return
    if not isinstance(method_args, Mapping):
        raise unauthorized(f"method_args of {callee}.{method} must be an object of arguments by name")
    arguments = {str(k): v for k, v in method_args.items()}
    check_capabilities(f"{callee}.{method}", _stand_in(arguments), [], arguments, set(required),
                       lambda user: held_capabilities(document, user), caller)


def split_method_name(method_name: str, callee: str) -> str:
    """The method part of ``"<callee>.<method>"``; :class:`Unauthorized` if it names another agent."""
    prefix = f"{callee}."
    if not isinstance(method_name, str) or not method_name.startswith(prefix) or method_name == prefix:
        raise unauthorized(f"{callee!r} may ask only about its own methods ('{prefix}<method>'), "
                           f"not {method_name!r}")
    return method_name[len(prefix):]


def publish_allowed(document: AuthDocument, protected: ProtectedTopics, user: str, topic: str) -> bool:
    """Whether ``user`` may publish to ``topic``, exactly as the router decides it."""
    required = protected.required(topic)
    if required is None:
        return True
    return is_allowed(required, held_capabilities(document, user))


def pubsub_allowed(document: AuthDocument, protected: ProtectedTopics, user: str, topic_pattern: str,
                   access: str) -> bool:
    """``check_pubsub_authorization``: subscribing is free; publishing needs the topic's capabilities."""
    if access not in ACCESS_VALUES:
        raise unauthorized(f"access must be one of {sorted(ACCESS_VALUES)}, not {access!r}")
    if not isinstance(topic_pattern, str):
        raise unauthorized("topic_pattern must be text")
    if access in PUBLISH_ACCESS:
        return publish_allowed(document, protected, user, topic_pattern)
    return True


def capabilities_view(document: AuthDocument, identity: str) -> dict[str, Any]:
    """``get_agent_capabilities``: the agent's named capabilities and the methods its own require."""
    return {"capabilities": dict(held_capabilities(document, identity)),
            "protected_rpcs": protected_rpcs(document, identity)}
