"""``scripts/bench`` in its tiny mode, so the benchmark cannot rot: every column is measured end to end.

It checks that the run completes and that the figures are sane (nothing lost at 200 messages, every
sample taken, memory read), not how fast anything is: timings belong to the benchmark, not to tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "scripts" / "benchlib" / "main.py"


def test_bench_quick_run_measures_every_column(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(MAIN), "--messages", "200", "--quick", "--timeout", "30",
                          "--json", str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    for label in ("(a) pub/sub throughput", "(b) fan-out 1 -> 3", "(c) one-way pub/sub latency",
                  "(d) RPC round trip", "(e) server RSS, idle", "(e) server RSS, 20 connected agents",
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
    assert raw["throughput"]["lost"] == 0 and raw["rpc"]["count"] == 200
    assert figures["auth_disabled"] is None, "--quick leaves out the auth-disabled column"


def test_bench_refuses_bad_arguments(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(MAIN), "--messages", "0"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert run.returncode == 2 and "--messages must be at least 1" in run.stderr
