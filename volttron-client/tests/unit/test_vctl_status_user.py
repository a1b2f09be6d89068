"""vctl status against a platform in secure mode: the AGENT_USER column (reference §5.1)."""

from __future__ import annotations

from typing import Any

from volttron.client.commands import agent as agents


def row(identity: str, **extra: Any) -> dict[str, Any]:
    return {
        "uuid": f"{identity}-uuid",
        "name": "volttron-listener-agent",
        "version": "0.1.0",
        "identity": identity,
        "tag": None,
        "priority": "50",
        "status": "running [7]",
        "health": "GOOD",
        **extra,
    }


def test_rows_with_users_add_the_agent_user_column_after_agent() -> None:
    rows = [row("l1", user="volttron_3"), row("l2", user=None)]
    assert agents.status_header(rows) == [
        "UUID", "AGENT", "AGENT_USER", "IDENTITY", "TAG", "PRIORITY", "STATUS", "HEALTH"
    ]
    table = agents.status_table(rows, minimum=0)
    assert table[0] == [
        "l1-uuid", "volttron-listener-agent-0.1.0", "volttron_3", "l1", "", "50", "running [7]", "GOOD"
    ]
    assert table[1][2] == ""  # an agent whose user is not made yet


def test_rows_without_users_keep_the_plain_table() -> None:
    rows = [row("l1")]
    assert agents.status_header(rows) == agents.STATUS_HEADER
    assert len(agents.status_table(rows)[0]) == len(agents.STATUS_HEADER)
