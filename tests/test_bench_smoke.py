"""``scripts/bench`` in its tiny mode, so the benchmark cannot rot: every column is measured end to end.

It checks that the run completes and that the figures are sane (nothing lost at 200 messages, every
sample taken, memory read), not how fast anything is: timings belong to the benchmark, not to tests.
The RabbitMQ run needs the local broker (skipped without one, failed under
``VOLTTRON_TEST_REQUIRE_RABBITMQ=1``).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from volttron.client.messagebus.rmq_admin import CtlAdmin
from volttron.client.messagebus.rmq_testing import require_broker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "scripts" / "benchlib" / "main.py"


def _bench(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``scripts/bench`` (its Python entry point) with ``args``, its output captured."""
    return subprocess.run([sys.executable, str(MAIN), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def test_bench_quick_run_measures_every_column(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = _bench(tmp_path, "--messages", "200", "--quick", "--timeout", "30", "--bus", "zmq",
                 "--json", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    for label in ("(a) pub/sub throughput", "(b) fan-out 1 -> 3", "(c) one-way pub/sub latency",
                  "(d) RPC round trip", "(e) server RSS, idle", "(e) server RSS, 20 connected agents",
                  "(e) server RSS once those 20 disconnected",
                  "(e) one agent process RSS"):
        assert label in run.stdout, run.stdout
    figures = json.loads(out.read_text())
    curve, raw = figures["curve"], figures["raw"]
    assert curve["throughput"]["sent"] == 200 and curve["throughput"]["lost"] == 0
    assert curve["fanout"]["sent"] == 3 * 50 and curve["fanout"]["lost"] == 0
    assert curve["latency"]["count"] == 200 and curve["rpc"]["count"] == 200
    assert 0 < curve["latency"]["p50_ms"] <= curve["latency"]["p99_ms"]
    assert curve["rss_idle"] > 0 and curve["agent_rss"] > 0
    assert set(curve["rss_connected"]) == {"10", "20"}
    assert curve["rss_disconnected"] > 0, "the RSS settles once the connections are gone"
    assert raw["throughput"]["lost"] == 0 and raw["rpc"]["count"] == 200
    assert raw["vip_rpc"]["count"] == 200 and figures["raw_curve"]["vip_rpc"]["count"] == 200
    assert "(d) the same, raw with VIP's frames" in run.stdout
    assert figures["auth_disabled"] is None, "--quick leaves out the auth-disabled column"
    assert "RabbitMQ:" not in run.stdout and "rmq" not in figures


NUMBER = r"[0-9][0-9,.]*"


@pytest.mark.rabbitmq
def test_bench_quick_run_on_rabbitmq_measures_the_platform_and_raw_pika(tmp_path: Path) -> None:
    require_broker()
    out = tmp_path / "bench.json"
    run = _bench(tmp_path, "--messages", "200", "--quick", "--timeout", "30", "--bus", "rmq",
                 "--json", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RabbitMQ:" in run.stdout and "ZeroMQ:" not in run.stdout, run.stdout
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in run.stdout.splitlines() if line.startswith("| (")}
    expected = {  # platform, raw pika, ratio
        "(a) pub/sub throughput, 1 -> 1, 200 msgs": (f"{NUMBER} msg/s, 0 lost",) * 2 + (r"\d+% of raw",),
        "(c) one-way pub/sub latency p50 / p99": (f"{NUMBER} / {NUMBER} ms",) * 2 + (f"{NUMBER}x raw p50",),
        "(d) RPC round trip p50 / p99": (f"{NUMBER} / {NUMBER} ms",) * 2 + (f"{NUMBER}x raw p50",),
        "(d) RPC calls/s, sequential": (f"{NUMBER} calls/s",) * 2 + (r"\d+% of raw",),
        "(a) the same, raw pika with VIP's message properties": (
            "-", f"{NUMBER} msg/s, 0 lost", r"\d+% of raw with properties"),
    }
    for label, patterns in expected.items():
        assert all(re.fullmatch(p, cell) for p, cell in zip(patterns, rows[label])), (label, rows[label])
    assert re.fullmatch(f"{NUMBER} MB", rows["(e) one agent process RSS (vip_main)"][0])
    figures = json.loads(out.read_text())
    platform, raw = figures["rmq"], figures["raw_pika"]
    assert platform["throughput"]["sent"] == 200 and platform["throughput"]["lost"] == 0
    assert raw["throughput"]["sent"] == 200 and raw["throughput"]["lost"] == 0
    assert platform["throughput"]["unacknowledged"] == 0 and raw["throughput"]["unacknowledged"] == 0
    for column in (platform, raw):
        assert column["latency"]["count"] == 200 and column["rpc"]["count"] == 200
    assert platform["agent_rss"] > 0 and "curve" not in figures
    vhost = re.search(r"vhost (\S+) \(removed at the end\)", run.stderr)
    assert vhost and vhost.group(1) not in CtlAdmin().vhosts(), "the run's vhost is deleted afterwards"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_bench_on_rabbitmq_without_a_broker_says_so_in_one_line(tmp_path: Path) -> None:
    broker = f"127.0.0.1:{_closed_port()}"
    run = _bench(tmp_path, "--bus", "rmq", "--broker", broker, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0 and "no RabbitMQ broker answers on 127.0.0.1:" in run.stderr


def test_bench_refuses_bad_arguments(tmp_path: Path) -> None:
    run = _bench(tmp_path, "--messages", "0", timeout=60)
    assert run.returncode == 2 and "--messages must be at least 1" in run.stderr


def test_bench_ladder_measures_every_step(tmp_path: Path) -> None:
    out = tmp_path / "ladder.json"
    run = _bench(tmp_path, "--ladder", "--samples", "50", "--repeat", "1", "--timeout", "30",
                 "--json", str(out), timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    steps = json.loads(out.read_text())["ladder"]
    assert [s["step"][:2] for s in steps] == [f"{n}." for n in range(1, 9)]
    assert all(s["p50_ms"] > 0 for s in steps)
    rows = [line for line in run.stdout.splitlines() if re.match(r"\| \d\. ", line)]
    assert len(rows) == 8 and "over step 5" in rows[-1], run.stdout


def test_bench_ladder_refuses_to_record(tmp_path: Path) -> None:
    run = _bench(tmp_path, "--ladder", "--record", timeout=60)
    assert run.returncode == 2 and "--ladder measures ZeroMQ only" in run.stderr
