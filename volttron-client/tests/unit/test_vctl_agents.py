"""vctl's agent commands without a platform: naming agents, the status table, health, actions.

A fake connection answers the control service's RPC methods from tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from volttron.client.commands import agent as agents
from volttron.client.commands.auth_keys import agent_publickeys, new_keypair
from volttron.client.commands.cli import EXIT_REMOTE, CommandError
from volttron.client.commands.connection import ConnectionSettings
from volttron.client.commands.rpc import call_snippet, describe_peers

LIST = [
    {
        "uuid": "a1b2c3d4-0000",
        "name": "volttron-listener-agent",
        "identity": "listener",
        "tag": "qs",
        "priority": "50",
    },
    {"uuid": "a1b2ffff-0000", "name": "volttron-listener-agent", "identity": "l2", "tag": None,
     "priority": None},
    {"uuid": "9f000000-0000", "name": "weather", "identity": "a1b2", "tag": None, "priority": None},
]


def row(identity: str, state: str, **extra: Any) -> dict[str, Any]:
    entry = next(e for e in LIST if e["identity"] == identity)
    base = {"version": "0.1.0", "pid": None, "returncode": None, "last_error": None, "crashes": 0}
    return {**entry, **base, "state": state, **extra}


class FakeConnection:
    """Answers RPC calls from ``answers`` (a value, an exception, or a function of the arguments)."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, tuple, dict]] = []
        self.settings = ConnectionSettings(home=Path("/nonexistent"), timeout=3)
        self.peer_identity = "control.connection"

    def call(
        self,
        method: str,
        *args: Any,
        peer: str = "platform.control",
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        self.calls.append((peer, method, args, kwargs))
        answer = self.answers.get((peer, method))
        if isinstance(answer, BaseException):
            raise answer
        return answer(*args, **kwargs) if callable(answer) else answer


# -- naming agents -------------------------------------------------------------------------------


def test_identity_and_full_uuid_win_over_prefixes() -> None:
    # "a1b2" is an identity and a prefix of two UUIDs: the identity wins
    assert [a["identity"] for a in agents.match_ref(LIST, "a1b2")] == ["a1b2"]
    assert [a["identity"] for a in agents.match_ref(LIST, "a1b2c3d4-0000")] == ["listener"]
    assert [a["identity"] for a in agents.match_ref(LIST, "a1b2c")] == ["listener"]


def test_ambiguous_prefix_names_the_candidates() -> None:
    with pytest.raises(CommandError, match="'a1b' matches 2 agents") as exc:
        agents.resolve_refs(LIST, ["a1b"])
    assert "listener" in str(exc.value) and "l2" in str(exc.value)


def test_unknown_ref_is_one_clear_error() -> None:
    with pytest.raises(CommandError, match="no installed agent has the UUID, UUID prefix or identity 'nope'"):
        agents.resolve_refs(LIST, ["nope"])
    with pytest.raises(CommandError, match="empty"):
        agents.resolve_refs(LIST, [" "])


def test_patterns_match_identities_and_names_and_duplicates_collapse() -> None:
    found = agents.resolve_refs(LIST, ["l*", "listener", "volttron-*"])
    assert [a["identity"] for a in found] == ["listener", "l2"]
    with pytest.raises(CommandError, match="matches 2 agents"):
        agents.resolve_refs(LIST, ["l*"], allow_many=False)


def test_short_uuids_are_unique_prefixes() -> None:
    short = agents.short_uuids([a["uuid"] for a in LIST], 1)
    assert short == {"a1b2c3d4-0000": "a1b2c", "a1b2ffff-0000": "a1b2f", "9f000000-0000": "9"}
    assert agents.short_uuids(["abc"], 0) == {"abc": "abc"}
    assert agents.short_uuids(["abcdef"], 3) == {"abcdef": "abc"}


# -- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({"state": "running", "pid": 42}, "running [42]"),
        (
            {"state": "FAILED", "returncode": 3, "last_error": "ValueError: bad config"},
            "FAILED (exit 3): ValueError: bad config",
        ),
        ({"state": "FAILED", "returncode": -9}, "FAILED (exit -9)"),
        ({"state": "stopped", "returncode": 2}, "stopped (exit 2)"),
        ({"state": "stopped", "returncode": 0}, "stopped"),
        ({"state": "restarting", "returncode": 1, "crashes": 2}, "restarting (exit 1, crash 2)"),
        # issue 13 item 5: the first crash's reason at once, not after five crashes
        (
            {"state": "restarting", "returncode": 1, "crashes": 1, "last_error": "SyntaxError: bad"},
            "restarting (exit 1, crash 1): SyntaxError: bad",
        ),
        ({"state": "stopping"}, "stopping"),
    ],
)
def test_status_column(extra: dict[str, Any], text: str) -> None:
    assert agents.describe_state({**row("listener", "stopped"), **extra}) == text


def test_status_rows_merge_health_and_sort_by_identity() -> None:
    connection = FakeConnection(
        {
            ("platform.control", "agent_status_rows"): [
                row("listener", "running", pid=7),
                row("l2", "stopped"),
            ],
            ("platform.health", "get_platform_health"): {"listener": {"message": "GOOD", "status": "GOOD"}},
        }
    )
    rows = agents.status_rows(connection)
    assert [(r["identity"], r["status"], r["health"]) for r in rows] == [
        ("l2", "stopped", ""),
        ("listener", "running [7]", "GOOD"),
    ]
    table = agents.status_table(rows)
    assert table[1] == ["a1b2c", "volttron-listener-agent-0.1.0", "listener", "qs", "50", "running [7]",
                        "GOOD"]


def test_status_survives_a_missing_health_service() -> None:
    connection = FakeConnection(
        {
            ("platform.control", "agent_status_rows"): [row("listener", "running", pid=7)],
            ("platform.health", "get_platform_health"): CommandError(
                "platform.health is not connected", EXIT_REMOTE
            ),
        }
    )
    assert agents.status_rows(connection)[0]["health"] == agents.UNKNOWN_HEALTH


def test_health_service_is_not_asked_when_nothing_runs() -> None:
    connection = FakeConnection({("platform.control", "agent_status_rows"): [row("l2", "stopped")]})
    agents.status_rows(connection)
    assert all(peer != "platform.health" for peer, *_ in connection.calls)


def test_status_of_named_agents_only() -> None:
    connection = FakeConnection(
        {
            ("platform.control", "agent_status_rows"): [row("listener", "stopped"), row("l2", "stopped")],
        }
    )
    assert [r["identity"] for r in agents.status_rows(connection, ["l2"])] == ["l2"]


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        ({"message": "GOOD"}, "GOOD"),
        ({"status": "BAD"}, "BAD"),
        ({"status": {"status": "STARTING"}}, "STARTING"),
        ({}, "UNKNOWN"),
        (None, "UNKNOWN"),
        # issue 13 item 1: a stale agent's last message said GOOD; the column says what vctl health says
        ({"message": "GOOD", "status": "UNKNOWN", "state": "stale"}, "UNKNOWN"),
    ],
)
def test_health_column(record: Any, shown: str) -> None:
    assert agents.health_of({"x": record} if record is not None else {}, "x", True) == shown
    assert agents.health_of({"x": record}, "x", False) == ""


# -- actions -------------------------------------------------------------------------------------


def test_act_on_calls_the_method_once_per_agent_with_the_full_uuid() -> None:
    connection = FakeConnection(
        {
            ("platform.control", "list_agents"): LIST,
            ("platform.control", "enable_agent"): lambda uuid, priority: {"uuid": uuid, "priority": priority},
        }
    )
    results = agents.act_on(connection, "enable_agent", ["listener", "a1b2f"], priority="20")
    assert [r["result"] for r in results] == [
        {"uuid": "a1b2c3d4-0000", "priority": "20"},
        {"uuid": "a1b2ffff-0000", "priority": "20"},
    ]


def test_health_record_falls_back_to_the_agent_itself() -> None:
    connection = FakeConnection(
        {
            ("platform.control", "list_agents"): LIST,
            ("platform.health", "get_platform_health"): {},
            ("l2", "health.get_status"): {"status": "GOOD", "context": None},
        }
    )
    assert agents.health_record(connection, "l2") == {"status": "GOOD", "context": None}


def test_publickeys_of_named_agents() -> None:
    connection = FakeConnection(
        {
            ("platform.control", "list_agents"): LIST,
            ("platform.control", "get_all_agent_publickeys"): {"listener": "K1", "l2": "K2"},
        }
    )
    assert agent_publickeys(connection, ("l2",)) == [
        {"uuid": "a1b2ffff-0000", "identity": "l2", "publickey": "K2"}
    ]


def test_keypair_is_two_43_character_keys() -> None:
    keys = new_keypair()
    assert set(keys) == {"public", "secret"} and all(len(v) == 43 for v in keys.values())


def test_rpc_list_hides_subsystem_methods_unless_verbose() -> None:
    connection = FakeConnection({("listener", "inspect"): {"methods": ["agent.version", "b", "a"]}})
    assert describe_peers(connection, ["listener"], [], verbose=False) == {"listener": ["a", "b"]}
    assert describe_peers(connection, ["listener"], [], verbose=True) == {
        "listener": ["a", "agent.version", "b"]
    }


def test_rpc_details_need_exactly_one_identity() -> None:
    with pytest.raises(CommandError, match="exactly one"):
        describe_peers(FakeConnection({}), ["a", "b"], ["m"], verbose=False)


def test_rpc_code_snippet_lists_parameters() -> None:
    details = {"params": {"self": {"kind": "X"}, "uuid": {"kind": "POSITIONAL_OR_KEYWORD"}}}
    assert call_snippet("platform.control", "start_agent", details) == (
        "self.vip.rpc.call('platform.control', 'start_agent', uuid).get(timeout=10)"
    )
