"""Each enforcement check, switched off, must make an enforcement test fail.

A test that still passes while the protection it tests is off proves nothing (STYLE.md). Every
check is one function:

==================  =====================================================================
RPC allow check     ``volttron.client.vip.agent.capabilities.check_capabilities`` (every agent's
                    ``@RPC.allow``, so also the control and config-store services' admin methods)
protected topics    ``volttron.server.services.pubsub.protected.is_allowed`` (the router)
ZAP decision        ``volttron.server.services.auth.zap.decide`` (the ZAP handler)
admin capability    ``volttron.server.services.auth.access.require_capability`` (the auth
                    service's modifying methods)
auth policy read    ``volttron.server.services.auth.access.may_read_policy`` (``auth_file.read``
                    and every user's capabilities need ``read_auth_file``)
identity claim      ``volttron.server.services.auth.identity_claims.identity_allowed`` (the router:
                    which VIP identities an authenticated key may use)
web route capab.    ``volttron.server.services.web.access.check_serve_path`` (``platform.web``:
                    ``register_path_route`` needs ``web.serve_path``)
web path check      ``volttron.server.services.web.static.is_inside`` (every static file request:
                    the real path must lie inside the folder fixed at registration)
remote caller       ``volttron.client.vip.agent.subsystems.rpc.remote_caller`` (every agent: the
                    user a call from a linked platform is checked as, never the name it wrote)
remote principal    ``volttron.utils.identities.remote_principal`` (the router: a linked platform's
                    caller or publisher is ``<platform>:<identity>``, never a local user)
linked publish      ``volttron.server.services.external.service.linked_publish_refusal`` (the
                    router: a linked publish only on the default bus, on topics we asked for)
answer acceptance   ``volttron.client.vip.agent.subsystems.rpc.answer_accepted`` (every agent: an
                    answer settles a call only from the peer and platform it went to)
link identity       ``identity_allowed`` again, for a link key (``vctl auth add-platform``'s entry)
RMQ topic perms.    ``volttron.server.router.rmq.topic_permissions.agent_topic_permissions`` (the
                    broker: which routing keys an agent may bind, and publish)
RMQ agent perms.    ``volttron.client.messagebus.rmq_permissions.agent_permissions`` (the broker:
                    an agent's two queues and ``volttron``, no configure, nothing on ``amq.*``)
RMQ link origin     ``volttron.client.messagebus.rmq_wire.speaks_for_its_own_platform`` (every
                    RabbitMQ peer: a linked message never comes from one of our peers)
published RPC       ``volttron.server.services.auth.published.check_rpc_call`` (``platform.auth``'s
                    ``check_rpc_authorization``, which a published-client agent asks on each call)
published publish   ``volttron.server.services.auth.published.publish_allowed`` (its
                    ``check_pubsub_authorization``, which such an agent asks before publishing)
==================  =====================================================================

For each, the enforcement tests of ``volttron-server/tests/integration/test_auth_enforcement.py``
(or of the module its ``Switch.tests_module`` names, e.g. ``test_hardening_web.py``) run again
with the function's code replaced by one that lets everything through: in the platform process
(started through a small launcher that patches it before ``main()``) and in this process (where
the test's own agents run). The test must then fail with its ``NOT ENFORCED:`` assertion.
A control run through the same launcher with nothing switched off must pass.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from volttron.client.testing.modules import load_beside

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SERVER_TESTS = ROOT / "volttron-server" / "tests"

REPLACEMENTS = '''
def allow_everything(*args, **kwargs):
    return None


def always_true(*args, **kwargs):
    return True


def accept_everyone(request, allow, deny=()):
    # the decision without its refusal; names resolve in the zap module's globals
    credentials = request.credential_text()
    for entry in allow:
        if entry.enabled and entry.matches(request.domain, request.address, request.mechanism, credentials):
            return ZapDecision(True, user_id=entry.user_id)
    return ZapDecision(True, user_id=credentials or "anonymous")


def claimed_caller(message, envelope):
    # the remote caller as its platform wrote it, not the principal our router names
    return envelope.get("from_peer", "")


def bare_identity(platform, identity):
    # a remote agent under its bare name, as if it were one of ours
    return identity


def every_permission(user):
    # a broker user's vhost permissions without their limits; names resolve in rmq_permissions' globals
    return Permissions(".*", ".*", ".*")


REPLACEMENTS = {"allow": allow_everything, "true": always_true, "accept": accept_everyone,
                "claimed": claimed_caller, "bare": bare_identity, "every-permission": every_permission}
'''

LAUNCHER = '''
from gevent import monkey

monkey.patch_all()

import importlib
import sys

module_name, function_name, replacement = sys.argv[1:4]
del sys.argv[1:4]
''' + REPLACEMENTS + '''
if replacement != "none":
    function = getattr(importlib.import_module(module_name), function_name)
    function.__code__ = REPLACEMENTS[replacement].__code__

from volttron.server.main import main

sys.exit(main())
'''


@dataclass(frozen=True)
class Switch:
    """One check: where it is, what replaces it, and the enforcement tests that must then fail.

    ``scenarios`` maps each such test to the refusal its failure must name. ``tests_module`` is the
    file under ``volttron-server/tests/integration`` that holds them (its tests take an
    ``EnforcedPlatform``, not started, and fail with its ``NOT_ENFORCED`` prefix); ``platform``, when
    not ``EnforcedPlatform``, names the class of ``tests_module`` they take instead (built from the
    same process factory, whose arguments are :class:`PlatformProcess`'s after the root, e.g.
    ``name=`` for a second platform).
    """

    module: str
    function: str
    replacement: str
    scenarios: dict[str, str]
    in_test_process: bool = False
    tests_module: str = "test_auth_enforcement.py"
    platform: str = "EnforcedPlatform"


LINKS = "test_hardening_links.py"
RMQ = "test_hardening_rmq.py"
PUBLISHED = "test_published_dialect.py"

SWITCHES = {
    "rpc-allow": Switch("volttron.client.vip.agent.capabilities", "check_capabilities", "allow",
                        {"test_rpc_allow_holds_across_agent_and_platform_restarts": "add by a caller",
                         "test_ordinary_agent_cannot_administer_the_platform": "control.install_agent"},
                        in_test_process=True),
    "protected-topic": Switch("volttron.server.services.pubsub.protected", "is_allowed", "true",
                              {"test_protected_topic_refuses_publishers_without_the_capability":
                               "publish to secure/x"}),
    "zap-decision": Switch("volttron.server.services.auth.zap", "decide", "accept",
                           {"test_unknown_key_is_refused_recorded_and_can_be_approved":
                            "stranger connected"}),
    "admin-capability": Switch("volttron.server.services.auth.access", "require_capability", "allow",
                               {"test_ordinary_agent_cannot_administer_the_platform": "auth.auth_file.add"}),
    "auth-policy-read": Switch("volttron.server.services.auth.access", "may_read_policy", "true",
                               {"test_an_agent_cannot_read_the_auth_policy": "auth_file.read by an agent"}),
    "identity-claim": Switch("volttron.server.services.auth.identity_claims", "identity_allowed", "true",
                             {"test_a_key_cannot_speak_as_another_identity": "with the key of 'ordinary'"}),
    "web-route-capability": Switch("volttron.server.services.web.access", "check_serve_path", "allow",
                                   {"test_path_route_needs_the_capability": "without web.serve_path"},
                                   tests_module="test_hardening_web.py"),
    "web-path-check": Switch("volttron.server.services.web.static", "is_inside", "true",
                             {"test_symlink_swap_is_refused_at_request_time":
                              "outside the registered folder"},
                             tests_module="test_hardening_web.py"),
    "remote-caller": Switch("volttron.client.vip.agent.subsystems.rpc", "remote_caller", "claimed",
                            {"test_a_linked_platform_cannot_name_our_administrator_as_its_caller":
                             "caller B named 'control.connection'",
                             "test_a_remote_agent_holds_nothing_of_a_local_user_with_its_name":
                             "held A's ops.agent capabilities",
                             "test_a_linked_platform_cannot_pose_as_our_auth_service":
                             "took a capability table from B"},
                            in_test_process=True, tests_module=LINKS, platform="LinkedPlatforms"),
    "remote-principal": Switch("volttron.utils.identities", "remote_principal", "bare",
                               {"test_a_linked_platform_cannot_name_our_administrator_as_its_caller":
                                "caller B named 'control.connection'",
                                "test_a_linked_platforms_publishes_are_checked_and_qualified":
                                "delivered as A's own senders"},
                               tests_module=LINKS, platform="LinkedPlatforms"),
    "linked-publish": Switch("volttron.server.services.external.service", "linked_publish_refusal", "allow",
                             {"test_a_linked_platforms_publishes_are_checked_and_qualified":
                              "a publish on another bus crossed"},
                             tests_module=LINKS, platform="LinkedPlatforms"),
    "answer-acceptance": Switch("volttron.client.vip.agent.subsystems.rpc", "answer_accepted", "true",
                                {"test_an_answer_from_a_linked_platform_does_not_settle_a_local_call":
                                 "took 'FORGED' from B's agent"},
                                in_test_process=True, tests_module=LINKS, platform="LinkedPlatforms"),
    "link-identity": Switch("volttron.server.services.auth.identity_claims", "identity_allowed", "true",
                            {"test_the_link_entry_vctl_adds_lets_the_key_in_as_the_link_only":
                             "B's link key connected to A"},
                            tests_module=LINKS, platform="LinkedPlatforms"),
    "rmq-topic-permissions": Switch("volttron.server.router.rmq.topic_permissions", "agent_topic_permissions",
                                    "allow",
                                    {"test_an_agent_cannot_read_other_agents_rpc_calls_and_replies":
                                     "mallory bound"},
                                    tests_module=RMQ, platform="RmqSides"),
    "rmq-agent-permissions": Switch("volttron.client.messagebus.rmq_permissions", "agent_permissions",
                                    "every-permission",
                                    {"test_an_agent_cannot_publish_a_protected_topic_through_amq_topic":
                                     "amq.topic bound to volttron",
                                     "test_an_agent_cannot_publish_a_protected_topic_through_an_exchange_of_"
                                     "its_own": "an exchange of mallory's own carried"},
                                    tests_module=RMQ, platform="RmqSides"),
    "rmq-link-origin": Switch("volttron.client.messagebus.rmq_wire", "speaks_for_its_own_platform", "true",
                              {"test_a_shovelled_publish_cannot_claim_a_local_agent":
                               "a message over the link arrived as from B's"},
                              in_test_process=True, tests_module=RMQ, platform="RmqSides"),
    "published-rpc": Switch("volttron.server.services.auth.published", "check_rpc_call", "allow",
                            {"test_a_published_client_callee_refuses_a_caller_without_the_capability":
                             "callee.add for a caller without can_add"},
                            tests_module=PUBLISHED),
    "published-pubsub": Switch("volttron.server.services.auth.published", "publish_allowed", "true",
                               {"test_a_published_client_is_told_what_the_router_enforces":
                                "allowed by check_pubsub_authorization"},
                               tests_module=PUBLISHED),
}


def _load(name: str, path: Path) -> ModuleType:
    return load_beside(path, path.stem, name)


@pytest.fixture(scope="module")
def server_fixtures() -> ModuleType:
    """The server tests' conftest (PlatformProcess), loaded by path."""
    return _load("volttron_server_tests_conftest_for_switches", SERVER_TESTS / "conftest.py")


@pytest.fixture(scope="module")
def enforcement() -> ModuleType:
    """The enforcement tests, loaded by path."""
    return _load("auth_enforcement_for_switches", SERVER_TESTS / "integration" / "test_auth_enforcement.py")


@pytest.fixture
def switched_platform(tmp_path: Path, server_fixtures: ModuleType, enforcement: ModuleType
                      ) -> Iterator[Any]:
    """``make(switch)``: an :class:`EnforcedPlatform` whose platform processes run with ``switch`` off."""
    launcher = tmp_path / "switched_volttron.py"
    launcher.write_text(LAUNCHER)
    processes: list[Any] = []
    platforms: list[Any] = []

    class SwitchedProcess(server_fixtures.PlatformProcess):
        def __init__(self, switch_args: list[str], *args: Any, **kwargs: Any) -> None:
            super().__init__(tmp_path, *args, **kwargs)
            self.switch_args = switch_args

        def command(self) -> list[str]:
            command = super().command()
            assert command[1:3] == ["-m", "volttron.server"], command
            return [command[0], str(launcher), *self.switch_args, *command[3:]]

    def make(switch: Switch | None, tests: ModuleType | None = None) -> Any:
        args = [switch.module, switch.function, switch.replacement] if switch else ["-", "-", "none"]

        def new_process(*process_args: Any, **kwargs: Any) -> Any:
            process = SwitchedProcess(args, *process_args, **kwargs)
            processes.append(process)
            return process

        own = switch is not None and tests is not None and switch.platform != "EnforcedPlatform"
        platform = (getattr(tests, switch.platform) if own else enforcement.EnforcedPlatform)(new_process)
        platforms.append(platform)
        return platform

    yield make
    for platform in platforms:
        for identity in list(platform.agents):
            platform.stop_agent(identity)
    for process in processes:
        process.stop()


def _switch_off_here(monkeypatch: pytest.MonkeyPatch, switch: Switch) -> None:
    namespace: dict[str, Any] = {}
    exec(REPLACEMENTS, namespace)  # the same replacements the launcher uses
    function = getattr(importlib.import_module(switch.module), switch.function)
    monkeypatch.setattr(function, "__code__", namespace["REPLACEMENTS"][switch.replacement].__code__)


@pytest.mark.parametrize("name,scenario", [(name, scenario) for name, switch in SWITCHES.items()
                                           for scenario in switch.scenarios])
def test_switching_a_check_off_fails_an_enforcement_test(name: str, scenario: str, switched_platform: Any,
                                                         enforcement: ModuleType,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    switch = SWITCHES[name]
    tests = enforcement
    if switch.tests_module != "test_auth_enforcement.py":
        tests = _load(f"{Path(switch.tests_module).stem}_for_switches",
                      SERVER_TESTS / "integration" / switch.tests_module)
    if switch.in_test_process:
        _switch_off_here(monkeypatch, switch)
    with pytest.raises(AssertionError, match=tests.NOT_ENFORCED) as failure:
        getattr(tests, scenario)(switched_platform(switch, tests))
    assert switch.scenarios[scenario] in str(failure.value), failure.value


def test_the_launcher_alone_breaks_nothing(switched_platform: Any, enforcement: ModuleType) -> None:
    for scenario in ("test_protected_topic_refuses_publishers_without_the_capability",
                     "test_unknown_key_is_refused_recorded_and_can_be_approved"):
        platform = switched_platform(None)
        try:
            getattr(enforcement, scenario)(platform)
        finally:
            platform.close()  # the next one uses the same home
