"""``vcfg rabbitmq single`` against the local broker (its own instance name and vhost each test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from volttron.client.messagebus.rmq_testing import broker_instance
from volttron.utils.config import load_config, load_platform_config

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def vcfg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from volttron.client.commands.vcfg import main; main()",
               "--vhome", str(home), "rabbitmq", "single", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          check=False)


@pytest.fixture
def broker():
    with broker_instance("vcfg") as instance:
        yield instance


def test_single_prepares_the_broker_and_is_safe_to_run_twice(broker, tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ("--instance-name", broker.instance, "--host", "127.0.0.1", "--vhost", broker.vhost)
    first = vcfg(home, *args)
    assert first.returncode == 0, first.stderr
    config = load_config(home / "rabbitmq_config.yml")
    assert broker.vhost in broker.admin.vhosts()
    admin = f"{broker.instance}-admin"
    assert broker.admin.users()[admin] == ["administrator"]
    assert broker.admin.permissions(broker.vhost)[admin].configure == ".*"
    second = vcfg(home, *args)
    assert second.returncode == 0, second.stderr
    assert load_config(home / "rabbitmq_config.yml")["password"] == config["password"]
    assert load_platform_config(home / "config")["message-bus"] == "rmq"
    exchanges = subprocess.run(["rabbitmqctl", "-q", "list_exchanges", "-p", broker.vhost, "name", "type"],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    assert "volttron\ttopic" in exchanges and "undeliverable\tfanout" in exchanges


def test_single_from_a_config_file(broker, tmp_path: Path) -> None:
    settings = tmp_path / "rabbitmq.yml"
    settings.write_text(f"host: 127.0.0.1\nvirtual-host: {broker.vhost}\ninstance-name: {broker.instance}\n")
    done = vcfg(tmp_path / "home", "--config", str(settings))
    assert done.returncode == 0, done.stderr
    assert load_config(tmp_path / "home" / "rabbitmq_config.yml")["virtual-host"] == broker.vhost


def test_a_broker_that_is_down_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    done = vcfg(tmp_path / "home", "--instance-name", "nobroker", "--host", "127.0.0.1", "--amqp-port", "9")
    assert done.returncode == 10
    assert done.stderr.startswith("vcfg: error: no RabbitMQ broker answers at 127.0.0.1:9")
    assert done.stderr.strip().count("\n") == 0 and not (tmp_path / "home" / "rabbitmq_config.yml").exists()


def test_a_bad_config_file_is_one_line(tmp_path: Path) -> None:
    settings = tmp_path / "rabbitmq.yml"
    settings.write_text("hostname: typo\n")
    done = vcfg(tmp_path / "home", "--config", str(settings))
    assert done.returncode == 1 and "unknown key(s) hostname" in done.stderr
    assert done.stderr.strip().count("\n") == 0
