"""What an agent process on RabbitMQ loads: only the pika it uses, no asyncio, no cryptography.

Each check runs in a fresh interpreter (``sys.modules`` of this one holds whatever other tests
imported). The memory this saves is measured by ``scripts/bench`` ("one agent process RSS"), not
asserted here.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

from volttron.client.messagebus.rmq_ioloop import hub_io_services
from volttron.client.testing.waiting import wait_until
from volttron.utils.keys import generate_keypair

NOT_LOADED = (
    "asyncio",
    "cryptography",
    "pika.adapters.asyncio_connection",
    "pika.adapters.blocking_connection",
    "pika.adapters.select_connection",
    "gevent.resolver.thread",
    "gevent.threadpool",
    "encodings.idna",
    "tempfile",
)


def _run(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_rmq_connection_loads_neither_asyncio_nor_other_adapters_nor_cryptography() -> None:
    agent, platform = generate_keypair(), generate_keypair()
    loaded = _run("""
        import json, sys
        import gevent
        import gevent.event
        from volttron.client.messagebus.base import ConnectionParams
        from volttron.client.messagebus.rmq import RmqConnection
        from volttron.client.messagebus.rmq_amqp import connection_parameters
        from volttron.client.messagebus.rmq_ioloop import hub_io_services
        from volttron.client.messagebus.rmq_login import resolve_login

        public, secret, serverkey = sys.argv[1:4]
        params = ConnectionParams("amqp://127.0.0.1:5672/v?instance=inst", "alice", public, secret, serverkey)
        connection = RmqConnection(params)
        settings = resolve_login(params)  # the derived password
        parameters = connection_parameters(settings, "inst.alice")
        services, loop = hub_io_services()
        answers = []
        answered = gevent.event.Event()
        services.getaddrinfo(settings.host, settings.port,
                             lambda found: (answers.append(found), answered.set()))
        answered.wait(5)
        assert answers and not isinstance(answers[0], Exception), answers
        print(json.dumps(sorted(sys.modules)))
    """, agent.public, agent.secret, platform.public)
    assert "pika.adapters.gevent_connection" in loaded
    assert [name for name in loaded if name.startswith(NOT_LOADED)] == []


def test_the_rest_of_pika_is_there_for_whoever_asks_for_it() -> None:
    found = _run("""
        import json, sys
        import volttron.client.messagebus.rmq
        from volttron.client.messagebus import rmq_pika
        import pika
        hollow = rmq_pika.load() and "asyncio" not in sys.modules
        from pika import URLParameters
        import pika.adapters
        names = [pika.BlockingConnection.__name__, URLParameters.__name__, pika.BasicProperties.__name__,
                 pika.adapters.SelectConnection.__name__, pika.adapters.AsyncioConnection.__name__]
        from importlib.metadata import version
        same = pika.spec.BasicProperties is rmq_pika.BasicProperties
        adapter = pika.adapters.gevent_connection.GeventConnection is rmq_pika.GeventConnection
        print(json.dumps({"hollow": hollow, "names": names, "version": pika.__version__ == version("pika"),
                          "all": sorted(pika.__all__), "same": same, "adapter": adapter}))
    """)
    assert found["hollow"] and found["version"] and found["same"] and found["adapter"]
    assert found["names"] == ["BlockingConnection", "URLParameters", "BasicProperties", "SelectConnection",
                              "AsyncioConnection"]
    assert "BlockingConnection" in found["all"]


def test_a_pika_imported_before_is_used_as_it_is() -> None:
    found = _run("""
        import json, sys
        import pika
        from volttron.client.messagebus import rmq_pika
        print(json.dumps({"hollow": rmq_pika.load(), "same": rmq_pika.GeventConnection is
                          sys.modules["pika.adapters.gevent_connection"].GeventConnection}))
    """)
    assert found == {"hollow": False, "same": True}


def test_pika_is_imported_whole_when_it_cannot_be_loaded_piecemeal() -> None:
    found = _run("""
        import importlib.util, json, logging, sys
        lines = []
        handler = logging.Handler()
        handler.emit = lambda record: lines.append(record.getMessage())
        logging.getLogger("volttron.client.messagebus.rmq_pika").addHandler(handler)
        logging.getLogger().setLevel(logging.DEBUG)
        real = importlib.util.find_spec
        surprise = lambda name, package=None: None if name == "pika.adapters" else real(name, package)
        importlib.util.find_spec = surprise
        from volttron.client.messagebus import rmq_pika
        importlib.util.find_spec = real
        import pika
        whole = "pika.adapters.blocking_connection" in sys.modules
        print(json.dumps({"hollow": rmq_pika.load(), "whole": whole, "log": lines,
                          "works": pika.BlockingConnection.__name__}))
    """)
    assert found == {"hollow": False, "whole": True, "works": "BlockingConnection",
                     "log": ["pika is imported whole (HollowPackageError: pika.adapters is not a package "
                             "found on the path)"]}


def test_an_ip_address_is_answered_in_the_loop_and_a_host_name_through_gevent() -> None:
    services, loop = hub_io_services()
    try:
        answers: list = []
        services.getaddrinfo("127.0.0.1", 5672, answers.append, socktype=socket.SOCK_STREAM)
        assert answers == []  # pika expects the answer from its loop, never during the call
        wait_until(lambda: answers, 5, "the answer")
        assert answers[0][0][4] == ("127.0.0.1", 5672)
        cancelled: list = []
        reference = services.getaddrinfo("127.0.0.1", 5672, cancelled.append)
        assert reference.cancel() and not reference.cancel()
        services.getaddrinfo("localhost", 5672, answers.append, socktype=socket.SOCK_STREAM)
        wait_until(lambda: len(answers) == 2, 10, "the host name's answer")
        assert not isinstance(answers[1], Exception), answers[1]
        # answers of IP addresses come from the loop in order: once a later one is here, the
        # cancelled one would have come before it
        services.getaddrinfo("127.0.0.1", 5672, answers.append)
        wait_until(lambda: len(answers) == 3, 5, "an answer asked for after the cancelled one")
        assert cancelled == []
    finally:
        loop.close()
