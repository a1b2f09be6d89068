"""``vcfg rabbitmq federation|shovel|link-user`` against the local broker (two vhosts stand in for two hosts).

Each test has two broker instances of its own (instance name, vhost, home: ``prepare_home`` is what
``vcfg rabbitmq single`` does), removed again at the end with every user named after them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from volttron.client.messagebus.rmq_testing import BrokerInstance, broker_instance

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

PASSWORD = "link-secret"


def vcfg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from volttron.client.commands.vcfg import main; main()",
               "--vhome", str(home), "rabbitmq", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                          check=False)


def one_line_failure(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("vcfg: error: ") and done.stderr.strip().count("\n") == 0, done.stderr
    return done.stderr


class Instance:
    def __init__(self, broker: BrokerInstance, home: Path) -> None:
        self.broker = broker
        self.home = home
        broker.prepare_home(home)

    @property
    def name(self) -> str:
        return self.broker.instance

    @property
    def vhost(self) -> str:
        return self.broker.vhost


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    with broker_instance("lka") as a, broker_instance("lkb") as b:
        yield Instance(a, tmp_path / "a"), Instance(b, tmp_path / "b")


def test_federation_by_flags_runs_twice_and_is_removed_again(pair) -> None:
    a, b = pair
    user = f"{b.name}-federation"
    granted = vcfg(a.home, "link-user", user, "--federation", "--password", PASSWORD)
    assert granted.returncode == 0, granted.stderr
    assert a.broker.admin.permissions(a.vhost)[user].configure == "^federation: .*$"
    args = ("federation", "--host", "127.0.0.1", "--remote-vhost", a.vhost, "--user", user,
            "--password", PASSWORD)
    for _ in range(2):
        done = vcfg(b.home, *args)
        assert done.returncode == 0, done.stderr
        assert "federation link(s) running" in done.stdout
    name = f"upstream-127.0.0.1-{a.vhost}"
    assert list(b.broker.admin.parameters("federation-upstream", b.vhost)) == [name]
    assert "volttron-federation" in b.broker.admin.policies(b.vhost)
    removed = vcfg(b.home, "federation", "--remove", name)
    assert removed.returncode == 0 and name in removed.stdout
    assert b.broker.admin.parameters("federation-upstream", b.vhost) == {}
    assert b.broker.admin.policies(b.vhost) == {}
    assert "no federation named" in one_line_failure(vcfg(b.home, "federation", "--remove", name))


def test_a_wrong_password_is_one_line_and_leaves_no_link(pair) -> None:
    a, b = pair
    user = f"{b.name}-federation"
    assert vcfg(a.home, "link-user", user, "--federation", "--password", PASSWORD).returncode == 0
    done = vcfg(b.home, "federation", "--host", "127.0.0.1", "--remote-vhost", a.vhost, "--user", user,
                "--password", "wrong", "--timeout", "20")
    text = one_line_failure(done)
    assert "auth_failure" in text and "wrong user or password" in text and "not kept" in text
    assert "wrong" not in text.replace("wrong user", "")  # the password is never shown
    assert b.broker.admin.parameters("federation-upstream", b.vhost) == {}
    assert b.broker.admin.policies(b.vhost) == {}


def test_a_remote_vhost_that_does_not_exist_is_one_line(pair) -> None:
    _a, b = pair
    done = vcfg(b.home, "federation", "--host", "127.0.0.1", "--remote-vhost", "no-such-vhost",
                "--password", PASSWORD)
    assert "remote vhost 'no-such-vhost' does not exist" in one_line_failure(done)
    done = vcfg(b.home, "shovel", "--host", "localhost", "--remote-vhost", "no-such-vhost", "--password",
                PASSWORD, "--topic", "t")
    assert "remote vhost 'no-such-vhost' does not exist" in one_line_failure(done)


def test_shovels_by_flags_and_from_a_file_then_removed_by_prefix(pair, tmp_path: Path) -> None:
    a, b = pair
    user = f"{a.name}-shovel"
    granted = vcfg(b.home, "link-user", user, "--shovel", "--password", PASSWORD)
    assert granted.returncode == 0, granted.stderr
    done = vcfg(a.home, "shovel", "--host", "127.0.0.1", "--remote-vhost", b.vhost, "--user", user,
                "--password", PASSWORD, "--topic", "devices/x", "--rpc", f"{b.name}:caller:callee")
    assert done.returncode == 0, done.stderr
    prefix = f"shovel-127.0.0.1-{b.vhost}"
    shovels = a.broker.admin.parameters("shovel", a.vhost)
    assert sorted(shovels) == [f"{prefix}-pubsub-devices.x", f"{prefix}-rpc-{b.name}.callee"]
    assert shovels[f"{prefix}-pubsub-devices.x"]["src-exchange-key"] == f"__pubsub__.{a.name}.devices.x.#"
    config = tmp_path / "rabbitmq_shovel_config.yml"
    config.write_text(f"shovel:\n  127.0.0.1:\n    virtual-host: {b.vhost}\n    shovel-user: {user}\n"
                      f"    password: {PASSWORD}\n    pubsub:\n      pub: [alerts]\n")
    done = vcfg(a.home, "shovel", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert len(a.broker.admin.parameters("shovel", a.vhost)) == 3
    removed = vcfg(a.home, "shovel", "--remove", prefix)
    assert removed.returncode == 0, removed.stderr
    assert a.broker.admin.parameters("shovel", a.vhost) == {}


def test_bad_config_files_name_the_file_and_the_key(pair, tmp_path: Path) -> None:
    _a, b = pair
    missing = tmp_path / "nope.yml"
    assert f"{missing}: configuration file not found" in one_line_failure(
        vcfg(b.home, "federation", "--config", str(missing)))
    bad = tmp_path / "rabbitmq_federation_config.yml"
    bad.write_text("federation-upstream:\n  127.0.0.1:\n    virtual-host: v\n    passwd: x\n")
    text = one_line_failure(vcfg(b.home, "federation", "--config", str(bad)))
    assert f"{bad}: federation-upstream.127.0.0.1: unknown key(s) passwd" in text
    bad.write_text("shovel:\n  h:\n    virtual-host: v\n    password: x\n    rpc: {B: [one]}\n")
    text = one_line_failure(vcfg(b.home, "shovel", "--config", str(bad)))
    assert f"{bad}: shovel.h.rpc.B must be a list of [local identity, remote identity]" in text
    assert "--host and --remote-vhost" in one_line_failure(vcfg(b.home, "shovel", "--topic", "t"))


def test_without_a_broker_or_a_set_up_instance_it_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    text = one_line_failure(vcfg(home, "federation", "--host", "h", "--remote-vhost", "v", "--password", "p"))
    assert "run 'vcfg rabbitmq single'" in text
    home.mkdir()
    (home / "rabbitmq_config.yml").write_text("host: 127.0.0.1\namqp-port: 9\ninstance-name: down\n"
                                               "user: down-admin\npassword: x\n")
    done = vcfg(home, "shovel", "--host", "h", "--remote-vhost", "v", "--password", "p", "--topic", "t")
    assert "no RabbitMQ broker answers at 127.0.0.1:9" in one_line_failure(done, 10)
