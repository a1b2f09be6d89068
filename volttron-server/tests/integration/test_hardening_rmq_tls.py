"""Hardening battery, RabbitMQ bus: TLS is the default of ``vcfg rabbitmq single``, and works end to end.

(Split from test_hardening_rmq.py, which holds the attacks of an agent and of a linked platform.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from volttron.client.testing.waiting import wait_until as eventually

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def test_tls_is_the_default_of_vcfg_rabbitmq_single(tmp_path: Path) -> None:
    from volttron.client.messagebus.rmq_setup import merge_setup

    setup = merge_setup(tmp_path, "tlsdefault", {}, {})
    assert setup.ssl, "vcfg rabbitmq single sets up plain AMQP unless asked"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_tls_default_of_vcfg_runs_a_platform_over_tls(platform_factory: Any, tmp_path: Path) -> None:
    """``vcfg rabbitmq single`` as given no TLS flag, a broker node of the test's own configured with the
    file it wrote (the shared broker has no TLS listener), and the platform joining it over TLS with
    its certificate, making its agents' users and certificates there. (Found: the platform presented
    no certificate when its configuration also held a password, as vcfg writes it.)"""
    import os
    import pwd
    import shutil
    import subprocess
    import tempfile

    from volttron.client.messagebus.rmq_admin import CtlAdmin, port_open
    from volttron.client.messagebus.rmq_setup import SetupReport, SingleSetup, _setup_tls, setup_single
    from volttron.client.messagebus.rmq_testing import broker_required
    from volttron.client.testing.plugin import root_required, skip_or_fail

    if os.geteuid() != 0:
        skip_or_fail("not root: a broker node of the test's own runs as the rabbitmq user", root_required())
    if not shutil.which("rabbitmq-server"):
        skip_or_fail("no rabbitmq-server to run a broker node of the test's own", broker_required())
    try:
        broker_user = pwd.getpwnam("rabbitmq")
    except KeyError:
        pytest.skip(reason="no rabbitmq user to run a broker node as")
    instance = f"hardtls-{os.urandom(4).hex()}"
    node = f"{instance}@localhost"
    amqps, plain, dist = free_port(), free_port(), free_port()
    platform = platform_factory(args=["--message-bus", "rmq"], env={"RABBITMQ_NODENAME": node}, name="tls")
    home = platform.home
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    setup = SingleSetup(home=home, instance_name=instance, host="127.0.0.1", vhost="volttron",
                        amqp_port=plain, amqps_port=amqps, mgmts_port=free_port(),
                        broker_config_dir=tmp_path / "broker")
    assert setup.ssl, "TLS is not the default"
    _setup_tls(setup, SetupReport(admin=f"{instance}-admin"))  # first: the broker needs the certificates
    # the node runs as the rabbitmq user, which cannot enter pytest's (0700) folders: its files, the
    # configuration vcfg wrote with the certificate paths made its own, go to a folder of its own
    data = Path(tempfile.mkdtemp(prefix="volttron-tls-node-"))
    os.chown(data, broker_user.pw_uid, broker_user.pw_gid)
    text = (tmp_path / "broker" / "rabbitmq.conf").read_text()
    for line in text.splitlines():
        key, _, value = line.partition(" = ")
        if key.endswith(("cacertfile", "certfile", "keyfile")) and not (data / Path(value).name).exists():
            shutil.copy(value, data / Path(value).name)
            os.chown(data / Path(value).name, broker_user.pw_uid, broker_user.pw_gid)
        if key.endswith(("cacertfile", "certfile", "keyfile")) or key == "trust_store.directory":
            text = text.replace(value, str(data / Path(value).name) if "file" in key else str(data))
    conf = data / "rabbitmq.conf"
    conf.write_text(text + f"listeners.tcp.default = 127.0.0.1:{plain}\n")
    (data / "enabled_plugins").write_text("[rabbitmq_auth_mechanism_ssl].\n")
    env = {**os.environ, "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_PORT": str(plain),
           "RABBITMQ_DIST_PORT": str(dist), "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
           "RABBITMQ_LOG_BASE": str(data / "log"), "RABBITMQ_CONFIG_FILE": str(conf.with_suffix("")),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
           "RABBITMQ_PID_FILE": str(data / "pid")}
    with open(data / "node.out", "wb") as out:
        server = subprocess.Popen(["rabbitmq-server"], env=env, stdout=out, stderr=subprocess.STDOUT)
    admin = CtlAdmin(node=node)
    try:
        eventually(lambda: port_open("127.0.0.1", amqps) or server.poll() is not None, 120, "the TLS node")
        assert server.poll() is None, (data / "node.out").read_text()[-2000:]
        report = setup_single(setup, admin)  # what vcfg rabbitmq single does, TLS being the default
        assert any("EXTERNAL" in line for line in report.done), report.done
        platform.start(timeout=90)
        platform.add_allow_entry("tls.agent")
        user = f"{instance}.tls.agent"
        eventually(lambda: user in admin.users(), 60, f"the broker user {user} on the TLS node")
        certificate = home / "certificates" / "certs" / f"{user}.crt"
        eventually(certificate.is_file, 60, f"the client certificate of {user}")
        rows = admin._json("list_connections", "user", "ssl", "auth_mechanism")  # noqa: SLF001
        router = [row for row in rows if row.get("user") == f"{instance}-admin"]
        assert router, rows
        assert all(row.get("ssl") for row in router), rows  # its certificate, and PLAIN inside TLS
    finally:
        platform.stop()
        subprocess.run(["rabbitmqctl", "-n", node, "stop"], capture_output=True, timeout=120, check=False)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)
