"""``scripts/bench``: the platform's message bus against a raw pyzmq forwarder, in one run.

Measures (see docs/performance.md for the targets and how to read the table):
(a) pub/sub throughput, one publisher agent to one subscriber agent in another process;
(b) fan-out to several subscriber processes; (c) one-way pub/sub latency, one message at a time;
(d) sequential RPC round trips; (e) the server's RSS idle and with many connected peers, and one
agent process's RSS; (f) the raw forwarder doing (a) and (d).

This process only orchestrates: every ZeroMQ endpoint lives in a child process (forked before this
one has a ZeroMQ context or a gevent hub) or in the ``volttron`` subprocess. Every wait has a
deadline; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import select
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import connections
import raw
import report
import vip_workers
from platform_process import BenchPlatform
from stats import LatencyStats, Throughput, cpu_by_thread, median_run
from vip_workers import Peer

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "performance.md"
FORK = mp.get_context("fork")


class BenchError(RuntimeError):
    """A measurement could not be made (the message says which and why)."""


@dataclass(frozen=True)
class Settings:
    """What to measure and how much."""

    messages: int
    fanout_messages: int
    subscribers: int
    samples: int
    repeat: int
    connections: tuple[int, ...]
    helpers: int
    auth_disabled_column: bool
    timeout: float


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages in (a) (default 20,000)")
    parser.add_argument("--fanout-messages", type=int, default=None,
                        help="messages per subscriber in (b) (default: --messages / 4)")
    parser.add_argument("--subscribers", type=int, default=10, help="subscriber processes in (b)")
    parser.add_argument("--samples", type=int, default=2_000, help="samples in (c) and (d)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a), the median is reported")
    parser.add_argument("--connections", type=int, nargs="+", default=[100, 1_000],
                        help="connected-peer counts at which (e) measures the server's RSS")
    parser.add_argument("--helpers", type=int, default=4, help="helper processes holding the connections")
    parser.add_argument("--skip-auth-disabled", action="store_true",
                        help="do not run the --auth-disabled column")
    parser.add_argument("--quick", action="store_true",
                        help="small run for smoke tests: 3 subscribers, 200 samples, 20 connections, "
                             "no auth-disabled column")
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline of each phase, seconds")
    parser.add_argument("--record", action="store_true", help="write the table into docs/performance.md")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.quick:
        subscribers, samples, conns, skip = min(args.subscribers, 3), min(args.samples, 200), [10, 20], True
        repeat = 1
    else:
        subscribers, samples, conns, skip = args.subscribers, args.samples, args.connections, False
        repeat = args.repeat
    for name, value in (("--messages", args.messages), ("--subscribers", subscribers),
                        ("--samples", samples), ("--helpers", args.helpers), ("--repeat", repeat)):
        if value < 1:
            parser.error(f"{name} must be at least 1")
    if any(c < 1 for c in conns):
        parser.error("--connections must be positive")
    fanout = args.fanout_messages if args.fanout_messages is not None else max(1, args.messages // 4)
    settings = Settings(messages=args.messages, fanout_messages=fanout, subscribers=subscribers,
                        samples=samples, repeat=repeat, connections=tuple(sorted(set(conns))),
                        helpers=args.helpers,
                        auth_disabled_column=not (skip or args.skip_auth_disabled), timeout=args.timeout)
    return args, settings


# -- processes ------------------------------------------------------------------------------------

class Workers:
    """Child processes of one phase and their one result queue; all are ended on exit."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.out: mp.Queue = FORK.Queue()
        self.processes: list[mp.Process] = []

    def start(self, target: Any, *args: Any) -> None:
        process = FORK.Process(target=target, args=(*args,), daemon=True)
        process.start()
        self.processes.append(process)

    def collect(self, deadline: float, **wanted: int) -> dict[str, list[tuple]]:
        """Reports by kind, ``wanted[kind]`` of each, in any order; a worker's error raises BenchError."""
        got: dict[str, list[tuple]] = {kind: [] for kind in wanted}
        while any(len(got[kind]) < n for kind, n in wanted.items()):
            left = deadline - time.monotonic()
            if left <= 0:
                counts = ", ".join(f"{len(got[k])} of {n} {k!r}" for k, n in wanted.items())
                raise BenchError(f"workers did not report in time: {counts}")
            try:
                item = self.out.get(timeout=min(left, 1.0))
            except queue.Empty:
                dead = [p for p in self.processes if p.exitcode not in (None, 0)]
                if dead:
                    raise BenchError(f"a worker died with exit code {dead[0].exitcode}") from None
                continue
            if item[0] == "error":
                raise BenchError(f"worker {item[1]}: {item[2]}")
            if item[0] not in got:
                raise BenchError(f"unexpected report {item[0]!r} from {item[1]}")
            got[item[0]].append(item)
        return got

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: Any) -> None:
        deadline = time.monotonic() + 15
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def peer(platform: BenchPlatform, identity: str) -> Peer:
    keys = platform.authorize(identity)
    return Peer(platform.address, identity, str(platform.home), keys.public if keys else None,
                keys.secret if keys else None, platform.serverkey)


# -- measurements ---------------------------------------------------------------------------------

def pubsub_throughput(platform: BenchPlatform, subscribers: int, messages: int,
                      timeout: float) -> Throughput:
    """(a)/(b): one publisher, ``subscribers`` subscriber processes; deliveries per second."""
    go, published = FORK.Event(), FORK.Event()
    with Workers(timeout) as workers:
        for i in range(subscribers):
            workers.start(vip_workers.subscriber, peer(platform, f"bench.sub.{i}"), messages, published,
                          workers.out, timeout)
        workers.start(vip_workers.publisher, peer(platform, "bench.pub"), messages, subscribers, go,
                      published, workers.out, timeout)
        workers.collect(time.monotonic() + 60, ready=subscribers + 1)
        router_before = cpu_by_thread(platform.pid)
        go.set()
        reports = workers.collect(time.monotonic() + timeout + 30, pub=1, sub=subscribers)
        router = [a - b for a, b in zip(cpu_by_thread(platform.pid), router_before)]
        (_, _, start, _sent, unacknowledged, short, pub_cpu), = reports["pub"]
        subs = reports["sub"]
    if short:
        raise BenchError(f"{short} publishes were acknowledged with fewer than {subscribers} subscribers")
    received = sum(r[2] for r in subs)
    last = max((r[4] for r in subs if r[2]), default=start)
    per = 1e6 / messages
    cpu = {"platform main thread": router[0] * per, "platform libzmq threads": router[1] * per,
           "publisher main thread": pub_cpu[0] * per, "publisher libzmq threads": pub_cpu[1] * per,
           "subscribers main threads": sum(r[5][0] for r in subs) * per,
           "subscribers libzmq threads": sum(r[5][1] for r in subs) * per}
    return Throughput(sent=messages * subscribers, received=received, seconds=last - start,
                      unacknowledged=unacknowledged, cpu_us=cpu)


def latency_and_rpc(platform: BenchPlatform, samples: int,
                    timeout: float) -> tuple[LatencyStats, LatencyStats]:
    """(c) and (d): a responder agent and a driver agent in two processes."""
    go, stop = FORK.Event(), FORK.Event()
    with Workers(timeout) as workers:
        workers.start(vip_workers.responder, peer(platform, vip_workers.ECHO_IDENTITY), stop, workers.out,
                      timeout + 60)
        workers.collect(time.monotonic() + 60, ready=1)
        workers.start(vip_workers.driver, peer(platform, "bench.driver"), samples, go, workers.out, timeout)
        workers.collect(time.monotonic() + 60, ready=1)
        go.set()
        try:
            reports = workers.collect(time.monotonic() + timeout + 30, driver=1)
            (_, _, one_way, round_trip), = reports["driver"]
        finally:
            stop.set()
    if len(one_way) < samples or len(round_trip) < samples:
        raise BenchError(f"only {len(one_way)} latency and {len(round_trip)} RPC samples of {samples} "
                         f"within {timeout:.0f} s")
    return LatencyStats.of(one_way), LatencyStats.of(round_trip)


def agent_rss(platform: BenchPlatform, timeout: float) -> int:
    """RSS of one minimal agent process run through ``vip_main``, once it has started."""
    import os

    import psutil

    identity = "bench.idle"
    keys = platform.authorize(identity)
    env = {**os.environ, "VOLTTRON_HOME": str(platform.home), "AGENT_VIP_IDENTITY": identity,
           "VOLTTRON_VIP_ADDR": platform.address}
    for name in ("_LAUNCHED_BY_PLATFORM", "AGENT_CONFIG", "AGENT_UUID", "MESSAGEBUS"):
        env.pop(name, None)
    if keys is not None:
        env.update(AGENT_PUBLICKEY=keys.public, AGENT_SECRETKEY=keys.secret,
                   VOLTTRON_SERVERKEY=platform.serverkey or "")
    else:
        env["AUTH_ENABLED"] = "false"
    script = Path(__file__).with_name("agent_proc.py")
    process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            process.kill()
            _, err = process.communicate(timeout=5)
            raise BenchError(f"the agent process did not start: {err.decode(errors='replace')[-500:]}")
        return psutil.Process(process.pid).memory_info().rss
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def server_rss(platform: BenchPlatform, counts: tuple[int, ...], helpers: int,
               timeout: float) -> tuple[dict[int, int], dict[int, float]]:
    """(e): the platform's RSS once ``count`` raw peers are connected, for each count (ascending)."""
    rss: dict[int, int] = {}
    seconds: dict[int, float] = {}
    welcomed, handshakes = FORK.Value("i", 0), FORK.Value("i", 0)
    stop = FORK.Event()
    errors: mp.Queue = FORK.Queue()
    processes: list[mp.Process] = []
    held = 0
    try:
        for count in counts:
            started = time.monotonic()
            more = count - held
            share, extra = divmod(more, helpers)
            for h in range(helpers):
                n = share + (1 if h < extra else 0)
                if not n:
                    continue
                user = f"bench.conn.{len(processes)}"
                keys = platform.authorize(user)
                spec = connections.Connector(platform.address, user, n, keys.public if keys else None,
                                             keys.secret if keys else None, platform.serverkey)
                process = FORK.Process(target=connections.hold_connections,
                                       args=(spec, welcomed, handshakes, stop, errors, timeout * 4),
                                       daemon=True)
                process.start()
                processes.append(process)
            held = count
            deadline = time.monotonic() + timeout
            while welcomed.value < count:
                if time.monotonic() > deadline:
                    alive = sum(p.is_alive() for p in processes)
                    raise BenchError(f"only {welcomed.value} of {count} connections welcomed in "
                                     f"{timeout:.0f} s ({handshakes.value} handshakes succeeded; "
                                     f"{alive} of {len(processes)} helpers alive); platform log:\n"
                                     f"{platform.log_text()[-2000:]}")
                try:
                    raise BenchError(f"connection helper failed: {errors.get_nowait()}")
                except queue.Empty:
                    pass
                time.sleep(0.05)
            seconds[count] = time.monotonic() - started
            _wait_cpu_idle(platform, deadline)
            rss[count] = platform.rss()
    finally:
        stop.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
    return rss, seconds


def _wait_cpu_idle(platform: BenchPlatform, deadline: float, window: float = 0.3) -> None:
    """Wait until the platform used under 5% of a CPU over ``window`` (its broadcasts are done)."""
    while time.monotonic() < deadline:
        before = platform.cpu_seconds()
        time.sleep(window)
        if platform.cpu_seconds() - before < 0.05 * window:
            return


def platform_column(root: Path, settings: Settings, auth: bool, memory: bool) -> report.SuiteResult:
    """Every measurement against fresh platforms: one for memory (e), one for traffic (a)-(d)."""
    result = report.SuiteResult()
    label = "CURVE" if auth else "auth disabled"
    if memory:
        mem = BenchPlatform(root / "memory", auth=auth).start()
        try:
            _wait_cpu_idle(mem, time.monotonic() + 10)
            result.rss_idle = mem.rss()
            progress(f"{label}: server RSS idle {result.rss_idle / report.MB:.1f} MB")
            result.agent_rss = agent_rss(mem, settings.timeout)
            progress(f"{label}: agent process RSS {result.agent_rss / report.MB:.1f} MB")
            result.rss_connected, result.connect_seconds = server_rss(
                mem, settings.connections, settings.helpers, settings.timeout)
            progress(f"{label}: server RSS connected " + ", ".join(
                f"{k}: {v / report.MB:.1f} MB" for k, v in result.rss_connected.items()))
        finally:
            mem.stop()
    traffic = BenchPlatform(root / "traffic", auth=auth).start()
    try:
        result.throughput = median_run([pubsub_throughput(traffic, 1, settings.messages, settings.timeout)
                                        for _ in range(settings.repeat)])
        progress(f"{label}: (a) median {result.throughput.rate:,.0f} msg/s of "
                 f"{', '.join(f'{r:,.0f}' for r in result.throughput.rates)}; "
                 f"{result.throughput.lost_in_runs} lost")
        result.notes.append(report.cpu_note(label, "(a)", result.throughput))
        result.fanout_subscribers = settings.subscribers
        result.fanout = pubsub_throughput(traffic, settings.subscribers, settings.fanout_messages,
                                          settings.timeout)
        progress(f"{label}: (b) {result.fanout.rate:,.0f} deliveries/s, {result.fanout.lost} lost")
        result.latency, result.rpc = latency_and_rpc(traffic, settings.samples, settings.timeout)
        progress(f"{label}: (c) p50 {result.latency.p50_ms:.3f} ms; (d) p50 {result.rpc.p50_ms:.3f} ms")
    finally:
        traffic.stop()
    return result


def raw_column(settings: Settings, curve: bool) -> report.SuiteResult:
    """(f): the raw forwarder doing (a) and (d), plain or with every connection CURVE-encrypted."""
    keys = raw.Curve.generate() if curve else None
    label = "raw forwarder, CURVE" if curve else "raw forwarder"
    result = report.SuiteResult()
    result.throughput = median_run([raw.throughput(settings.messages, settings.timeout, keys)
                                    for _ in range(settings.repeat)])
    result.vip_shaped = median_run([raw.throughput(settings.messages, settings.timeout, keys, vip_shaped=True)
                                    for _ in range(settings.repeat)])
    result.rpc = raw.rpc_round_trip(settings.samples, settings.timeout, keys)
    progress(f"{label}: (a) {result.throughput.rate:,.0f} msg/s, with 8 frames {result.vip_shaped.rate:,.0f} "
             f"msg/s; (d) p50 {result.rpc.p50_ms:.3f} ms")
    result.notes.append(report.cpu_note(label, "(a)", result.throughput))
    return result


def progress(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(argv)
    command = "scripts/bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        with tempfile.TemporaryDirectory(prefix="volttron-bench-") as tmp:
            curve = platform_column(Path(tmp) / "curve", settings, auth=True, memory=True)
            noauth = (platform_column(Path(tmp) / "noauth", settings, auth=False, memory=True)
                      if settings.auth_disabled_column else None)
            baseline = raw_column(settings, curve=False)
            baseline_curve = raw_column(settings, curve=True)
    except BenchError as exc:
        sys.stderr.write(f"bench: error: {exc}\n")
        return 1
    table = report.render(report.rows(curve, noauth, baseline, baseline_curve, settings.messages,
                                      list(settings.connections)))
    print(table)
    for column in (curve, noauth, baseline, baseline_curve):
        for note in column.notes if column else ():
            if note:
                print(note)
    if args.json:
        args.json.write_text(json.dumps({"settings": settings.__dict__, "curve": curve.as_json(),
                                         "auth_disabled": noauth.as_json() if noauth else None,
                                         "raw": baseline.as_json(), "raw_curve": baseline_curve.as_json()},
                                        indent=2, default=list))
    if args.record:
        columns = (curve, noauth, baseline, baseline_curve)
        notes = [n for column in columns if column for n in column.notes if n]
        report.record(DOC, report.recorded_block(table, command.strip(), notes))
        progress(f"recorded in {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
