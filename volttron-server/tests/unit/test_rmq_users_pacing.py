"""How often the platform asks the broker about its agents' users when the broker keeps failing.

A failed sync is retried with a growing pause (each try is three requests; with ``rabbitmqctl``,
three Erlang VMs of half a second or more of CPU each), never every poll; a change of ``auth.json``
is still synced at once, so a removed agent's broker user goes as soon as the broker answers again.

The broker is a stand-in ``rabbitmqctl`` script (the real :class:`CtlAdmin` runs it): it answers
empty lists while healthy and "node down" while a flag file exists, and logs each call.
"""

from __future__ import annotations

import time
from pathlib import Path

import gevent

from volttron.client.messagebus.rmq_admin import CtlAdmin
from volttron.client.testing.waiting import wait_until as wait_for
from volttron.server.router.rmq.users import BrokerUsers
from volttron.server.services.auth.authfile import AuthEntry, ensure_entries
from volttron.utils.keys import generate_keypair

SCRIPT = """#!/bin/sh
echo "$*" >> {log}
if [ -e {down} ]; then
    echo "Error: unable to perform an operation on node 'rabbit@nowhere'" >&2
    exit 69
fi
case "$*" in *--formatter*) echo "[]" ;; esac
exit 0
"""


def syncs(log: Path) -> int:
    """Syncs attempted so far: each lists the users once."""
    return sum(1 for line in log.read_text().splitlines() if line.split()[1:2] == ["list_users"]) \
        if log.exists() else 0


def test_a_failing_broker_is_retried_with_growing_pauses_and_a_change_at_once(tmp_path: Path) -> None:
    log, down = tmp_path / "calls.log", tmp_path / "down"
    script = tmp_path / "rabbitmqctl"
    script.write_text(SCRIPT.format(log=log, down=down))
    script.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    platform = generate_keypair()
    ensure_entries(home / "auth.json", [AuthEntry(credentials=generate_keypair().public, user_id="a",
                                                  identity="a")])
    users = BrokerUsers(CtlAdmin(str(script)), home, "inst", "inst-vhost", secret_key=platform.secret,
                        public_key=platform.public)
    users.start()
    try:
        assert users.syncs == 1
        down.touch()
        ensure_entries(home / "auth.json", [AuthEntry(credentials=generate_keypair().public, user_id="b",
                                                      identity="b")])
        wait_for(lambda: users.failures == 1, 10, "the sync after the auth.json change to fail")
        failed_at, tries = time.monotonic(), syncs(log)
        gevent.sleep(4.0)
        retries = syncs(log) - tries
        # old pace: a try every poll (0.5 s), 8 in 4 s; now after 1, 2 (then 4) s: 2, or 3 when slow
        assert 1 <= retries <= 3, f"{retries} retries in 4 s of a failing broker"
        # the broker is back and auth.json changes: synced at once, not at the next retry (4 s away)
        down.unlink()
        ensure_entries(home / "auth.json", [AuthEntry(credentials=generate_keypair().public, user_id="c",
                                                      identity="c")])
        wait_for(lambda: users.failures == 0, 2.5, "an auth.json change to be synced at once")
        assert time.monotonic() - failed_at < 4.0 + 2.5 + 1
    finally:
        users.stop()
