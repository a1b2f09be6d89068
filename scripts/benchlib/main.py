"""``scripts/bench``: the platform's message buses against raw pyzmq and raw pika, in one run.

Measures (see docs/performance.md for the targets and how to read the tables):
(a) pub/sub throughput, one publisher agent to one subscriber agent in another process;
(b) fan-out to several subscriber processes; (c) one-way pub/sub latency, one message at a time;
(d) sequential RPC round trips; (e) the server's RSS idle and with many connected peers, and one
agent process's RSS; (f) the raw forwarder doing (a) and (d).
On RabbitMQ (``--bus rmq`` or ``both``): (a), (c), (d) and one agent's RSS with the platform run
with ``--message-bus rmq``, and raw pika clients doing (a), (c) and (d) through a topic exchange,
in a vhost made for the run and deleted afterwards.

This process only orchestrates: every ZeroMQ and pika endpoint lives in a child process (forked
before this one has a ZeroMQ context, a broker connection or a gevent hub) or in the ``volttron``
subprocess. Every wait has a deadline; every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import queue
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ladder
import raw
import raw_pika
import report
import rmq_broker
import rounds
import vip_workers
from common import FORK, BenchError, progress
from memory import agent_rss, server_rss, wait_cpu_idle
from platform_process import BenchPlatform, BenchPlatformError
from stats import LatencyStats, Throughput, cpu_by_thread, median_run
from vip_workers import Peer

from volttron.client.messagebus.rmq_admin import BrokerAdminError
from volttron.client.messagebus.rmq_testing import BrokerInstance

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "performance.md"


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
    broker_host: str = "127.0.0.1"
    broker_port: int = 5672


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
    parser.add_argument("--bus", choices=("zmq", "rmq", "both"), default=None,
                        help="message buses to measure (default: both when a RabbitMQ broker answers at "
                             "--broker, else zmq)")
    parser.add_argument("--broker", default="127.0.0.1:5672", metavar="HOST:PORT",
                        help="the local RabbitMQ broker (managed with rabbitmqctl; default 127.0.0.1:5672)")
    parser.add_argument("--record", action="store_true", help="write the table into docs/performance.md")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--ladder", action="store_true",
                        help="instead: climb from the raw echo to (d) one part at a time, in alternating "
                             "rounds (ZeroMQ; uses --samples, --repeat and --timeout)")
    parser.add_argument("--note", action="append", default=[],
                        help="a line about the conditions of the run for the recorded block (repeatable)")
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
    if args.ladder and (args.record or args.bus not in (None, "zmq")):
        parser.error("--ladder measures ZeroMQ only and prints its table (no --record)")
    if any(c < 1 for c in conns):
        parser.error("--connections must be positive")
    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        parser.error(f"--broker must be HOST:PORT, not {args.broker!r}")
    fanout = args.fanout_messages if args.fanout_messages is not None else max(1, args.messages // 4)
    settings = Settings(messages=args.messages, fanout_messages=fanout, subscribers=subscribers,
                        samples=samples, repeat=repeat, connections=tuple(sorted(set(conns))),
                        helpers=args.helpers,
                        auth_disabled_column=not (skip or args.skip_auth_disabled), timeout=args.timeout,
                        broker_host=host, broker_port=int(port))
    return args, settings


def choose_buses(requested: str | None, settings: Settings) -> tuple[str, ...]:
    """The buses to measure; BenchError when RabbitMQ is asked for and no broker answers."""
    where = f"{settings.broker_host}:{settings.broker_port}"
    answers = rmq_broker.broker_answers(settings.broker_host, settings.broker_port)
    if requested is None:
        if answers:
            return ("zmq", "rmq")
        progress(f"no RabbitMQ broker answers on {where}: measuring ZeroMQ only (--bus zmq)")
        return ("zmq",)
    if requested != "zmq" and not answers:
        raise BenchError(f"--bus {requested}: no RabbitMQ broker answers on {where}")
    return {"zmq": ("zmq",), "rmq": ("rmq",), "both": ("zmq", "rmq")}[requested]


# -- processes ------------------------------------------------------------------------------------

class Workers:
    """Child processes of one phase and their one result queue; all are ended on exit."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.out: mp.Queue = FORK.Queue()
        self.processes: list[mp.Process] = []

    def start(self, target: Any, *args: Any) -> None:
        process = FORK.Process(target=_child, args=(target, *args), daemon=True)
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

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        deadline = time.monotonic() + (15 if exc_type is None else 0)  # on failure: end them now
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def _child(target: Any, *args: Any) -> None:
    """Run a worker with Ctrl-C left to the orchestrator, which ends the workers (SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target(*args)


def peer(platform: BenchPlatform, identity: str) -> Peer:
    keys = platform.authorize(identity)
    return Peer(platform.agent_address, identity, str(platform.home), keys.public if keys else None,
                keys.secret if keys else None, platform.serverkey,
                "zmq" if platform.broker is None else "rmq")


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
        if platform.broker is None:
            return _throughput(workers, messages, subscribers, go, {"platform": platform.pid})
        return _throughput(workers, messages, subscribers, go,
                           {"broker": rmq_broker.broker_pid(), "platform": platform.pid})


def _throughput(workers: Workers, messages: int, subscribers: int, go: Any,
                watched: dict[str, int | None]) -> Throughput:
    """Start the started publisher and subscribers of (a)/(b) and add up their reports.

    ``watched``: other processes whose CPU is reported too (the platform, the broker). With ZeroMQ
    (no broker) the platform's and the agents' threads other than the main one are libzmq's.
    """
    workers.collect(time.monotonic() + 60, ready=subscribers + 1)
    zmq = "broker" not in watched
    before = {name: cpu_by_thread(pid) for name, pid in watched.items() if pid}
    go.set()
    reports = workers.collect(time.monotonic() + workers.timeout + 30, pub=1, sub=subscribers)
    used = {name: [a - b for a, b in zip(cpu_by_thread(watched[name]), was)] for name, was in before.items()}
    (_, _, start, _sent, unacknowledged, short, pub_cpu), = reports["pub"]
    subs = reports["sub"]
    if short:
        raise BenchError(f"{short} publishes were acknowledged with fewer than {subscribers} subscribers")
    received = sum(r[2] for r in subs)
    last = max((r[4] for r in subs if r[2]), default=start)
    per = 1e6 / messages
    cpu: dict[str, float] = {}
    for name, (main_thread, other_threads) in used.items():
        if zmq:
            cpu[f"{name} main thread"] = main_thread * per
            cpu[f"{name} libzmq threads"] = other_threads * per
        else:
            cpu[f"{name} (all threads)"] = (main_thread + other_threads) * per
    others = "libzmq threads" if zmq else "other threads"
    cpu.update({"publisher main thread": pub_cpu[0] * per, f"publisher {others}": pub_cpu[1] * per,
                "subscribers main threads": sum(r[5][0] for r in subs) * per,
                f"subscribers {others}": sum(r[5][1] for r in subs) * per})
    return Throughput(sent=messages * subscribers, received=received, seconds=last - start,
                      unacknowledged=unacknowledged, cpu_us=cpu)


def latency_and_rpc(platform: BenchPlatform, samples: int, timeout: float) -> rounds.Samples:
    """(c) and (d): a responder agent and a driver agent in two processes."""
    return responder_and_driver(vip_workers.responder, peer(platform, vip_workers.ECHO_IDENTITY),
                                vip_workers.driver, peer(platform, "bench.driver"), samples, timeout,
                                "", "RPC")


def responder_and_driver(responder: Any, responder_arg: Any, driver: Any, driver_arg: Any, samples: int,
                         timeout: float, label: str, round_trips: str) -> rounds.Samples:
    """(c) and (d) between a ``responder`` and a ``driver`` process (a bus's or raw pika's workers).

    ``label`` and ``round_trips`` name the client and its round trips in the error when samples are missing.
    """
    go, stop = FORK.Event(), FORK.Event()
    with Workers(timeout) as workers:
        workers.start(responder, responder_arg, stop, workers.out, timeout + 60)
        workers.collect(time.monotonic() + 60, ready=1)
        workers.start(driver, driver_arg, samples, go, workers.out, timeout)
        workers.collect(time.monotonic() + 60, ready=1)
        go.set()
        try:
            reports = workers.collect(time.monotonic() + timeout + 30, driver=1)
            (_, _, one_way, round_trip), = reports["driver"]
        finally:
            stop.set()
    if len(one_way) < samples or len(round_trip) < samples:
        raise BenchError(f"{label}only {len(one_way)} latency and {len(round_trip)} {round_trips} samples "
                         f"of {samples} within {timeout:.0f} s")
    return one_way, round_trip


def platform_column(root: Path, settings: Settings, auth: bool, memory: bool
                    ) -> tuple[report.SuiteResult, BenchPlatform]:
    """(e) against a fresh platform, (a) and (b) against another, which is returned still running.

    (c) and (d) are measured on that platform later, in rounds alternating with the baselines
    (:func:`zmq_latency_rounds`); the caller stops it.
    """
    result = report.SuiteResult()
    label = "CURVE" if auth else "auth disabled"
    if memory:
        mem = BenchPlatform(root / "memory", auth=auth).start()
        try:
            wait_cpu_idle(mem, time.monotonic() + 10)
            result.rss_idle = mem.rss()
            progress(f"{label}: server RSS idle {result.rss_idle / report.MB:.1f} MB")
            result.agent_rss = agent_rss(mem, settings.timeout)
            progress(f"{label}: agent process RSS {result.agent_rss / report.MB:.1f} MB")
            result.rss_connected, result.connect_seconds, result.rss_disconnected = server_rss(
                mem, settings.connections, settings.helpers, settings.timeout)
            after = "not settled" if result.rss_disconnected is None else \
                f"{result.rss_disconnected / report.MB:.1f} MB"
            progress(f"{label}: server RSS connected " + ", ".join(
                f"{k}: {v / report.MB:.1f} MB" for k, v in result.rss_connected.items()) +
                f"; all disconnected: {after}")
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
    except BaseException:
        traffic.stop()
        raise
    return result, traffic


def raw_column(settings: Settings, curve: bool) -> report.SuiteResult:
    """(f): the raw forwarder doing (a), plain or with every connection CURVE-encrypted ((d) is in
    :func:`zmq_latency_rounds`)."""
    keys = raw.Curve.generate() if curve else None
    label = "raw forwarder, CURVE" if curve else "raw forwarder"
    result = report.SuiteResult()
    result.throughput = median_run([raw.throughput(settings.messages, settings.timeout, keys)
                                    for _ in range(settings.repeat)])
    result.vip_shaped = median_run([raw.throughput(settings.messages, settings.timeout, keys, vip_shaped=True)
                                    for _ in range(settings.repeat)])
    result.vip_acknowledged = median_run([raw.throughput(settings.messages, settings.timeout, keys,
                                                         acknowledged=True) for _ in range(settings.repeat)])
    progress(f"{label}: (a) {result.throughput.rate:,.0f} msg/s, with 8 frames {result.vip_shaped.rate:,.0f} "
             f"msg/s, acknowledged {result.vip_acknowledged.rate:,.0f} msg/s")
    result.notes.append(report.cpu_note(label, "(a)", result.throughput))
    return result


def zmq_latency_rounds(settings: Settings, traffic: dict[str, BenchPlatform],
                       results: dict[str, report.SuiteResult]) -> None:
    """(c) and (d) of every ZeroMQ column in ``settings.repeat`` alternating rounds (:mod:`rounds`).

    ``traffic`` holds the running platforms by column name; ``results`` every column by name, raw ones
    included, whose ``latency`` and ``rpc`` are set from the pooled samples.
    """
    keys = raw.Curve.generate()
    measures: dict[str, Any] = {
        name: (lambda p=platform: latency_and_rpc(p, settings.samples, settings.timeout))
        for name, platform in traffic.items()}
    for column, curve in (("raw", None), ("raw_curve", keys)):
        for suffix, shaped in (("", False), (" vip", True)):  # " vip": the diagnostic row's figure
            measures[column + suffix] = (lambda c=curve, v=shaped:
                                         ([], raw.rpc_round_trip(settings.samples, settings.timeout, c, v)))
    for name, (one_way, round_trip) in rounds.alternate(settings.repeat, measures).items():
        column, _, shape = name.partition(" ")
        if shape:
            results[column].vip_rpc = round_trip
        else:
            results[name].latency, results[name].rpc = one_way, round_trip
        progress(f"{name}: (d) p50 {_p50(round_trip):.3f} ms "
                 f"over {settings.repeat} alternating rounds")


RMQ_IDENTITIES = ("bench.pub", "bench.sub.0", vip_workers.ECHO_IDENTITY, "bench.driver", "bench.idle")
"""Every agent of the RabbitMQ column, authorised before the platform starts so that it makes their
broker users in one go."""


def rmq_platform_column(root: Path, settings: Settings, instance: BrokerInstance
                        ) -> tuple[report.SuiteResult, BenchPlatform]:
    """(a) and one agent's RSS with ``volttron --message-bus rmq`` in the run's vhost; the platform is
    returned running for (c) and (d), which alternate with raw pika's (:func:`rmq_columns`)."""
    result = report.SuiteResult()
    label = "RabbitMQ"
    platform = BenchPlatform(root, broker=instance)
    for identity in RMQ_IDENTITIES:
        platform.authorize(identity)
    platform.start()
    try:
        platform.wait_broker_users(list(RMQ_IDENTITIES), 60)
        result.agent_rss = agent_rss(platform, settings.timeout)
        progress(f"{label}: agent process RSS {result.agent_rss / report.MB:.1f} MB")
        result.throughput = median_run([pubsub_throughput(platform, 1, settings.messages, settings.timeout)
                                        for _ in range(settings.repeat)])
        progress(f"{label}: (a) median {result.throughput.rate:,.0f} msg/s of "
                 f"{', '.join(f'{r:,.0f}' for r in result.throughput.rates)}; "
                 f"{result.throughput.lost_in_runs} lost")
        result.notes.append(report.cpu_note("platform on RabbitMQ", "(a)", result.throughput))
    except BaseException:
        platform.stop()
        raise
    return result, platform


def raw_pika_throughput(broker: raw_pika.Broker, messages: int, timeout: float,
                        vip_shaped: bool = False) -> Throughput:
    """(a) with raw pika: one confirmed publisher process, one consumer process."""
    go, published = FORK.Event(), FORK.Event()
    with Workers(timeout) as workers:
        workers.start(raw_pika.subscriber, broker, messages, published, workers.out, timeout)
        workers.start(raw_pika.publisher, broker, messages, go, published, workers.out, timeout, vip_shaped)
        return _throughput(workers, messages, 1, go, {"broker": rmq_broker.broker_pid()})


def raw_pika_latency_and_rpc(broker: raw_pika.Broker, samples: int, timeout: float) -> rounds.Samples:
    """(c) and (d) with raw pika: a responder and a driver process."""
    return responder_and_driver(raw_pika.responder, broker, raw_pika.driver, broker, samples, timeout,
                                "raw pika: ", "request/reply")


def raw_pika_column(settings: Settings, broker: raw_pika.Broker) -> report.SuiteResult:
    """The raw pika baseline doing (a) in the run's vhost ((c) and (d) are in :func:`rmq_columns`)."""
    result = report.SuiteResult()
    result.throughput = median_run([raw_pika_throughput(broker, settings.messages, settings.timeout)
                                    for _ in range(settings.repeat)])
    result.vip_shaped = median_run([raw_pika_throughput(broker, settings.messages, settings.timeout, True)
                                    for _ in range(settings.repeat)])
    progress(f"raw pika: (a) {result.throughput.rate:,.0f} msg/s, with VIP's properties "
             f"{result.vip_shaped.rate:,.0f} msg/s")
    result.notes.append(report.cpu_note("raw pika", "(a)", result.throughput))
    return result


def rmq_columns(root: Path, settings: Settings) -> tuple[report.SuiteResult, report.SuiteResult]:
    """The platform on RabbitMQ and the raw pika baseline, in one vhost made for them and removed after."""
    try:
        with rmq_broker.run_instance(settings.broker_host, settings.broker_port) as (instance, login):
            progress(f"RabbitMQ: vhost {instance.vhost} (removed at the end)")
            platform, running = rmq_platform_column(root, settings, instance)
            try:
                baseline = raw_pika_column(settings, login)
                measures = {
                    "platform": lambda: latency_and_rpc(running, settings.samples, settings.timeout),
                    "raw": lambda: raw_pika_latency_and_rpc(login, settings.samples, settings.timeout)}
                pooled = rounds.alternate(settings.repeat, measures)
                platform.latency, platform.rpc = pooled["platform"]
                baseline.latency, baseline.rpc = pooled["raw"]
            finally:
                running.stop()
            progress(f"RabbitMQ: (d) p50 {_p50(platform.rpc):.3f} ms, raw pika {_p50(baseline.rpc):.3f} ms "
                     f"over {settings.repeat} alternating rounds")
    except (BrokerAdminError, BenchPlatformError, TimeoutError) as exc:
        raise BenchError(f"RabbitMQ: {exc}") from exc
    return platform, baseline


def _p50(stats: LatencyStats | None) -> float:
    return stats.p50_ms if stats is not None else float("nan")


def _reproducible(argv: list[str]) -> list[str]:
    """The arguments that shape the measurements: without ``--json``/``--note`` and their values."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--json", "--note"):
            skip = True
        elif not arg.startswith(("--json=", "--note=")):
            kept.append(arg)
    return kept


def _interrupt_on_sigterm() -> None:
    """SIGTERM ends this process as Ctrl-C does (so cleanups run); forked children keep the default."""
    orchestrator = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != orchestrator:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _show_ladder(args: argparse.Namespace, settings: Settings, figures: list[tuple[str, float]]) -> int:
    print(ladder.render(figures))
    if args.json:
        args.json.write_text(json.dumps({"settings": settings.__dict__,
                                         "ladder": [{"step": s, "p50_ms": p} for s, p in figures]}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(argv)
    command = "scripts/bench " + shlex.join(_reproducible(argv if argv is not None else sys.argv[1:]))
    _interrupt_on_sigterm()
    zmq: dict[str, report.SuiteResult | None] = {}
    rmq: dict[str, report.SuiteResult] = {}
    try:
        if args.ladder:
            figures = ladder.run(settings.samples, settings.repeat, settings.timeout)
            return _show_ladder(args, settings, figures)
        buses = choose_buses(args.bus, settings)
        with tempfile.TemporaryDirectory(prefix="volttron-bench-") as tmp:
            if "zmq" in buses:
                with contextlib.ExitStack() as running:
                    traffic: dict[str, BenchPlatform] = {}
                    for name, auth in (("curve", True), ("noauth", False)):
                        if auth or settings.auth_disabled_column:
                            zmq[name], traffic[name] = platform_column(Path(tmp) / name, settings, auth=auth,
                                                                       memory=True)
                            running.callback(traffic[name].stop)
                    zmq.setdefault("noauth", None)
                    zmq["raw"] = raw_column(settings, curve=False)
                    zmq["raw_curve"] = raw_column(settings, curve=True)
                    zmq_latency_rounds(settings, traffic, {k: v for k, v in zmq.items() if v is not None})
            if "rmq" in buses:
                rmq["platform"], rmq["raw"] = rmq_columns(Path(tmp) / "rmq", settings)
    except BenchError as exc:
        sys.stderr.write(f"bench: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted\n")
        return 130
    tables = []
    if zmq:
        tables.append(("ZeroMQ", report.render(report.rows(
            zmq["curve"], zmq["noauth"], zmq["raw"], zmq["raw_curve"], settings.messages,
            list(settings.connections)))))
    if rmq:
        tables.append(("RabbitMQ", report.render_rmq(report.rmq_rows(
            rmq["platform"], rmq["raw"], zmq.get("curve"), settings.messages))))
    columns = [c for c in (*zmq.values(), *rmq.values()) if c]
    notes = [n for column in columns for n in column.notes if n]
    text = report.tables_text(tables)
    print(text)
    for note in notes:
        print(note)
    if args.json:
        figures: dict[str, Any] = {"settings": settings.__dict__, "buses": list(buses)}
        if zmq:
            figures.update({"curve": zmq["curve"].as_json(),
                            "auth_disabled": zmq["noauth"].as_json() if zmq["noauth"] else None,
                            "raw": zmq["raw"].as_json(), "raw_curve": zmq["raw_curve"].as_json()})
        if rmq:
            figures.update({"rmq": rmq["platform"].as_json(), "raw_pika": rmq["raw"].as_json()})
        args.json.write_text(json.dumps(figures, indent=2, default=list))
    if args.record:
        report.record(DOC, report.recorded_block(text, command.strip(), notes, buses, args.note))
        progress(f"recorded in {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
