"""``scripts/profile``: where the platform's and the client's Python time goes, per message.

Runs the benchmark's (a) (one publisher agent to one subscriber agent) and (d) (sequential RPC
calls) on a ZeroMQ platform with CURVE, or with ``--bus rmq`` on RabbitMQ, while py-spy samples the
main thread of every process taking part (the platform, the publisher, the subscriber; the RPC
caller and the echo agent). It prints, per process, the functions with the most samples of their
own ("self") and, for the named areas of the hot path, the samples spent in or below them
("inclusive"), as shares of that process's samples and as microseconds per message.

py-spy is not a dependency of the project: ``pip install py-spy`` (any environment; it is one
binary) and put it on ``PATH`` or pass ``--py-spy``. It attaches with ptrace, which needs root or
``kernel.yama.ptrace_scope=0``. Sampling costs the sampled process a little time, so the absolute
microseconds are somewhat higher than the benchmark's CPU lines; the shares are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from platform_process import BenchPlatform
# The benchmark's modules (main, vip_workers, ...) are imported where a run needs them: reading
# and printing profiles needs none of them.

AREAS = {
    "router: receive loop": ("zmq_router.py:_run",),
    "router: VIP routing": ("routing.py:route",),
    "router: pub/sub publish": ("service.py:_publish",),
    "router: deliveries (send)": ("service.py:_send_to",),
    "router: acknowledgement": ("service.py:_respond",),
    "router: RabbitMQ consumer": ("router.py:_publication", "router.py:_run"),
    "client: publish()": ("pubsub.py:publish",),
    "client: result bookkeeping": ("results.py:next", "results.py:pop"),
    "client: JSON": ("__init__.py:dumps", "__init__.py:loads", "encoder.py:encode", "decoder.py:decode"),
    "client: connection send": ("zmq.py:send", "rmq.py:send"),
    "client: connection receive": ("zmq.py:recv", "rmq.py:recv"),
    "client: delivery to callbacks": ("pubsub.py:_deliver",),
    "client: RPC call": ("rpc.py:call",),
    "client: RPC serving": ("rpc.py:_serve", "rpc.py:_handle"),
    "gevent switches": ("hub.py:switch", "greenlet.py:run"),
}
"""Named areas: ``file:function`` frames whose inclusive samples are reported."""


@dataclass
class Profile:
    """Samples of one process: stacks as tuples of ``file:function`` frames, outermost first."""

    name: str
    stacks: Counter[tuple[str, ...]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.stacks.values())

    @classmethod
    def read(cls, name: str, path: Path) -> Profile:
        """Parse py-spy's ``--format raw`` output (collapsed stacks, one per line, count last)."""
        profile = cls(name)
        if not path.exists():
            return profile
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = tuple(_frame(f) for f in stack.split(";") if f)
            profile.stacks[frames] += int(count)
        return profile

    def self_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for stack, n in self.stacks.items():
            if stack:
                counts[stack[-1]] += n
        return counts

    def inclusive(self, names: tuple[str, ...]) -> int:
        """Samples with any of ``names`` (``file:function``, the class left out) on the stack."""
        return sum(n for stack, n in self.stacks.items() if any(_named(f, names) for f in stack))

    @property
    def idle(self) -> int:
        """Samples in the gevent hub's own loop: waiting in epoll, mostly (libev is C below it)."""
        return self.self_counts().get(HUB_LOOP, 0)


HUB_LOOP = "hub.py:Hub.run"


def _named(frame: str, names: tuple[str, ...]) -> bool:
    file, _, function = frame.partition(":")
    short = f"{file}:{function.rpartition('.')[2]}"
    return short in names or frame in names


def _frame(text: str) -> str:
    """``function (path/to/file.py:123)`` -> ``file.py:function``."""
    function, _, where = text.partition(" (")
    file = where.rstrip(")").rpartition(":")[0].rsplit("/", 1)[-1]
    return f"{file}:{function}" if file else function


def spy(py_spy: str, pid: int, out: Path, rate: int, seconds: float) -> subprocess.Popen[bytes]:
    """Start py-spy on ``pid`` for at most ``seconds``, writing collapsed stacks to ``out``."""
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                             "--duration", str(max(1, int(seconds))), "--nonblocking", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(spies: list[subprocess.Popen[bytes]]) -> None:
    for process in spies:
        if process.poll() is None:
            process.send_signal(2)  # SIGINT: py-spy writes what it has and exits
    for process in spies:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def profile_pubsub(platform: BenchPlatform, messages: int, work: Path, args: argparse.Namespace
                   ) -> tuple[list[Profile], float]:
    """(a) under py-spy; returns the profiles and the message rate reached."""
    import main as bench
    import vip_workers
    from common import FORK
    go, published = FORK.Event(), FORK.Event()
    with bench.Workers(args.timeout) as workers:
        workers.start(vip_workers.subscriber, bench.peer(platform, "bench.sub.0"), messages, published,
                      workers.out, args.timeout)
        workers.start(vip_workers.publisher, bench.peer(platform, "bench.pub"), messages, 1, go, published,
                      workers.out, args.timeout)
        workers.collect(time.monotonic() + 60, ready=2)
        pids = {"platform": platform.pid, "subscriber": workers.processes[0].pid,
                "publisher": workers.processes[1].pid}
        spies = [spy(args.py_spy, pid, work / f"{name}.txt", args.rate, args.timeout)
                 for name, pid in pids.items() if pid]
        time.sleep(1.0)  # py-spy attaches asynchronously; the only fixed wait, outside any test
        go.set()
        try:
            reports = workers.collect(time.monotonic() + args.timeout + 30, pub=1, sub=1)
        finally:
            _stop(spies)
    (_, _, start, *_), = reports["pub"]
    (_, _, received, _first, last, _cpu), = reports["sub"]
    rate = received / (last - start) if last > start else 0.0
    return [Profile.read(name, work / f"{name}.txt") for name in pids], rate


def profile_rpc(platform: BenchPlatform, samples: int, work: Path, args: argparse.Namespace
                ) -> tuple[list[Profile], float]:
    """(c)+(d) under py-spy (the driver does both); returns the profiles and the RPC p50 in ms."""
    import main as bench
    import vip_workers
    from common import FORK
    go, stop = FORK.Event(), FORK.Event()
    with bench.Workers(args.timeout) as workers:
        workers.start(vip_workers.responder, bench.peer(platform, vip_workers.ECHO_IDENTITY), stop,
                      workers.out, args.timeout + 60)
        workers.collect(time.monotonic() + 60, ready=1)
        workers.start(vip_workers.driver, bench.peer(platform, "bench.driver"), samples, go, workers.out,
                      args.timeout)
        workers.collect(time.monotonic() + 60, ready=1)
        pids = {"platform (RPC)": platform.pid, "echo agent": workers.processes[0].pid,
                "caller": workers.processes[1].pid}
        spies = [spy(args.py_spy, pid, work / f"rpc-{i}.txt", args.rate, args.timeout)
                 for i, pid in enumerate(pids.values()) if pid]
        time.sleep(1.0)
        go.set()
        try:
            reports = workers.collect(time.monotonic() + args.timeout + 30, driver=1)
        finally:
            stop.set()
            _stop(spies)
    (_, _, _one_way, round_trip), = reports["driver"]
    p50 = sorted(round_trip)[len(round_trip) // 2] * 1e3 if round_trip else 0.0
    return [Profile.read(name, work / f"rpc-{i}.txt") for i, name in enumerate(pids)], p50


def report(profiles: list[Profile], per: int, unit: str, rate: int, top: int) -> None:
    """Print each profile's top functions (self) and named areas (inclusive)."""
    for profile in profiles:
        total = profile.total
        if not total:
            print(f"\n{profile.name}: no samples")
            continue
        us = 1e6 / rate / per
        busy = total - profile.idle
        print(f"\n{profile.name}: {total} samples; {busy} outside the hub's loop = {busy * us:.1f} us per "
              f"{unit} ({HUB_LOOP}, mostly waiting, is listed but not counted there)")
        print(f"  {'self':>6} {'us':>6}  function")
        for name, n in profile.self_counts().most_common(top):
            print(f"  {100 * n / total:5.1f}% {n * us:6.2f}  {name}")
        rows = [(label, profile.inclusive(frames)) for label, frames in AREAS.items()]
        rows = [(label, n) for label, n in rows if n]
        if rows:
            print(f"  {'incl':>6} {'us':>6}  area")
            for label, n in rows:
                print(f"  {100 * n / total:5.1f}% {n * us:6.2f}  {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bus", choices=("zmq", "rmq"), default="zmq")
    parser.add_argument("--messages", type=int, default=60_000, help="messages in (a)")
    parser.add_argument("--samples", type=int, default=5_000, help="RPC calls in (d)")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15, help="functions listed per process")
    parser.add_argument("--timeout", type=float, default=180.0, help="deadline of each phase, seconds")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "", help="the py-spy binary")
    parser.add_argument("--broker", default="127.0.0.1:5672", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    if not args.py_spy or not os.access(args.py_spy, os.X_OK):
        print("profile: py-spy not found: pip install py-spy, or pass --py-spy PATH", file=sys.stderr)
        return 1
    import main as bench
    import rmq_broker
    from platform_process import BenchPlatform

    with tempfile.TemporaryDirectory(prefix="volttron-profile-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        instance = None
        if args.bus == "rmq":
            host, _, port = args.broker.partition(":")
            if not rmq_broker.broker_answers(host, int(port or 5672)):
                print(f"profile: no RabbitMQ broker answers at {args.broker}", file=sys.stderr)
                return 1
            instance, _login = stack.enter_context(rmq_broker.run_instance(host, int(port or 5672)))
        platform = BenchPlatform(work / "platform", broker=instance)
        if instance is not None:
            for identity in bench.RMQ_IDENTITIES:
                platform.authorize(identity)
        platform.start()
        try:
            if instance is not None:
                platform.wait_broker_users(list(bench.RMQ_IDENTITIES), 60)
            profiles, rate = profile_pubsub(platform, args.messages, work, args)
            print(f"(a) {args.messages:,} messages, {rate:,.0f} msg/s under sampling")
            report(profiles, args.messages, "message", args.rate, args.top)
            profiles, p50 = profile_rpc(platform, args.samples, work, args)
            print(f"\n(d) {args.samples:,} RPC calls (and as many one-way pings), p50 {p50:.3f} ms "
                  "under sampling")
            report(profiles, args.samples * 2, "round trip (ping or call)", args.rate, args.top)
        finally:
            platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
