"""The benchmark's one table, its targets, and the recorded block of docs/performance.md."""

from __future__ import annotations

import datetime
import os
import platform as host
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stats import LatencyStats, Throughput

MB = 1_000_000
BEGIN = "<!-- BEGIN BENCH RESULTS: written by scripts/bench --record; edit outside this block -->"
END = "<!-- END BENCH RESULTS -->"

# The published modular platform, for scale (figures given with the task, same scenarios).
PUBLISHED = {
    "throughput": "~200 msg/s",
    "latency": "~5 ms",
    "rpc": "~2.2 ms",
    "agent_rss": "~47 MB",
}


@dataclass
class SuiteResult:
    """What one column measured; None where it was not measured."""

    throughput: Throughput | None = None
    vip_shaped: Throughput | None = None
    """Raw clients only: (a) with messages shaped as VIP's (as many frames; on AMQP its properties)."""
    vip_acknowledged: Throughput | None = None
    """Raw forwarder only: (a) VIP-shaped, each acknowledged as the platform acknowledges a publish."""
    fanout: Throughput | None = None
    fanout_subscribers: int = 0
    latency: LatencyStats | None = None
    rpc: LatencyStats | None = None
    vip_rpc: LatencyStats | None = None
    """Raw forwarder only: (d) with request and answer in VIP's frames."""
    rss_idle: int | None = None
    rss_connected: dict[int, int] = field(default_factory=dict)
    connect_seconds: dict[int, float] = field(default_factory=dict)
    rss_disconnected: int | None = None
    """(e): once every connection of ``rss_connected`` closed and the RSS settled."""
    agent_rss: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        def tp(t: Throughput | None) -> dict[str, Any] | None:
            return None if t is None else {"sent": t.sent, "received": t.received, "lost": t.lost,
                                           "seconds": t.seconds, "rate": t.rate,
                                           "unacknowledged": t.unacknowledged, "cpu_us": t.cpu_us,
                                           "rates": list(t.rates), "lost_in_runs": t.lost_in_runs,
                                           "unacknowledged_in_runs": t.unacknowledged_in_runs}

        def lat(s: LatencyStats | None) -> dict[str, Any] | None:
            return None if s is None else {"count": s.count, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
                                           "per_second": s.per_second}

        return {"throughput": tp(self.throughput), "vip_shaped": tp(self.vip_shaped),
                "vip_acknowledged": tp(self.vip_acknowledged),
                "fanout": tp(self.fanout),
                "fanout_subscribers": self.fanout_subscribers, "latency": lat(self.latency),
                "rpc": lat(self.rpc), "vip_rpc": lat(self.vip_rpc), "rss_idle": self.rss_idle,
                "rss_connected": {str(k): v for k, v in self.rss_connected.items()},
                "connect_seconds": {str(k): v for k, v in self.connect_seconds.items()},
                "rss_disconnected": self.rss_disconnected,
                "agent_rss": self.agent_rss, "notes": self.notes}


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    measure: str
    curve: str
    noauth: str
    raw: str
    raw_curve: str
    ratio: str
    target: str
    verdict: str
    published: str = ""


def _rate(t: Throughput | None) -> str:
    if t is None:
        return "-"
    if len(t.rates) > 1:
        acks = f", {t.unacknowledged_in_runs:,} acks dropped" if t.unacknowledged_in_runs else ""
        return (f"{t.rate:,.0f} msg/s ({min(t.rates):,.0f}-{max(t.rates):,.0f}), "
                f"{t.lost_in_runs:,} lost in {len(t.rates)} runs{acks}")
    acks = f", {t.unacknowledged:,} acks dropped" if t.unacknowledged else ""
    return f"{t.rate:,.0f} msg/s, {t.lost:,} lost{acks}"


def _lat(s: LatencyStats | None) -> str:
    return "-" if s is None or not s.count else f"{s.p50_ms:.3f} / {s.p99_ms:.3f} ms"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.1f} MB"


def cpu_note(column: str, what: str, t: Throughput | None) -> str | None:
    """One line: CPU microseconds per message by process and thread, for the analysis."""
    if t is None or not t.cpu_us:
        return None
    parts = ", ".join(f"{name} {us:.1f}" for name, us in t.cpu_us.items())
    return f"CPU per message in {what}, {column} (us): {parts}; total {sum(t.cpu_us.values()):.1f}."


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def rows(curve: SuiteResult, noauth: SuiteResult | None, raw: SuiteResult, raw_curve: SuiteResult,
         messages: int, connections: list[int]) -> list[Row]:
    """The table's rows, with targets checked on the CURVE column against the plain raw forwarder."""
    na, rc = noauth or SuiteResult(), raw_curve
    out = []
    tp, raw_tp = curve.throughput, raw.throughput
    share = tp.rate / raw_tp.rate if tp and raw_tp and raw_tp.rate else None
    out.append(Row(f"(a) pub/sub throughput, 1 -> 1, {messages:,} msgs", _rate(tp), _rate(na.throughput),
                   _rate(raw_tp), _rate(rc.throughput), "-" if share is None else f"{share:.0%} of raw",
                   ">= 50% of raw, 0 lost",
                   _verdict(None if share is None else share >= 0.5 and tp.lost_in_runs == 0),
                   PUBLISHED["throughput"]))
    shaped = rc.vip_shaped
    share_shaped = tp.rate / shaped.rate if tp and shaped and shaped.rate else None
    out.append(Row("(a) the same, raw with VIP-sized messages (8 frames)", "-", "-", _rate(raw.vip_shaped),
                   _rate(shaped), "-" if share_shaped is None else f"{share_shaped:.0%} of raw CURVE",
                   "(diagnostic)", "-"))
    acked = rc.vip_acknowledged
    share_acked = tp.rate / acked.rate if tp and acked and acked.rate else None
    out.append(Row("(a) the same, raw with VIP's frames and a VIP acknowledgement per message",
                   "-", "-", _rate(raw.vip_acknowledged), _rate(acked),
                   "-" if share_acked is None else f"{share_acked:.0%} of raw CURVE", "(diagnostic)", "-"))
    fan = curve.fanout
    out.append(Row(f"(b) fan-out 1 -> {curve.fanout_subscribers} (deliveries)", _rate(fan), _rate(na.fanout),
                   "-", "-", "-", "0 lost", _verdict(None if fan is None else fan.lost == 0)))
    lat = curve.latency
    out.append(Row("(c) one-way pub/sub latency p50 / p99", _lat(lat), _lat(na.latency), "-", "-", "-",
                   "p50 < 0.5 ms", _verdict(None if lat is None else lat.p50_ms < 0.5), PUBLISHED["latency"]))
    rpc, raw_rpc = curve.rpc, raw.rpc
    times = rpc.p50_ms / raw_rpc.p50_ms if rpc and raw_rpc and raw_rpc.p50_ms else None
    times99 = rpc.p99_ms / raw_rpc.p99_ms if rpc and raw_rpc and raw_rpc.p99_ms else None
    out.append(Row("(d) RPC round trip p50 / p99", _lat(rpc), _lat(na.rpc), _lat(raw_rpc), _lat(rc.rpc),
                   "-" if times is None or times99 is None else f"{times:.1f}x / {times99:.1f}x raw",
                   "p50 < 0.5 ms and <= 1.5x raw, p99 <= 3x raw",
                   _verdict(None if rpc is None or times is None or times99 is None
                            else rpc.p50_ms < 0.5 and times <= 1.5 and times99 <= 3), PUBLISHED["rpc"]))
    floor = rc.vip_rpc
    times_floor = rpc.p50_ms / floor.p50_ms if rpc and floor and floor.p50_ms else None
    out.append(Row("(d) the same, raw with VIP's frames (6 a message)", "-", "-", _lat(raw.vip_rpc),
                   _lat(floor), "-" if times_floor is None else f"{times_floor:.2f}x raw CURVE",
                   "(diagnostic)", "-"))
    calls = "-" if rpc is None else f"{rpc.per_second:,.0f} calls/s"
    calls_share = rpc.per_second / raw_rpc.per_second if rpc and raw_rpc and raw_rpc.per_second else None
    out.append(Row("(d) RPC calls/s, sequential", calls,
                   "-" if na.rpc is None else f"{na.rpc.per_second:,.0f} calls/s",
                   "-" if raw_rpc is None else f"{raw_rpc.per_second:,.0f} calls/s",
                   "-" if rc.rpc is None else f"{rc.rpc.per_second:,.0f} calls/s",
                   "-" if calls_share is None else f"{calls_share:.0%} of raw",
                   ">= 65% of raw", _verdict(None if calls_share is None else calls_share >= 0.65)))
    out.append(Row("(e) server RSS, idle", _mb(curve.rss_idle), _mb(na.rss_idle), "-", "-", "-", "-", "-"))
    for count in connections:
        rss = curve.rss_connected.get(count)
        seconds = curve.connect_seconds.get(count)
        label = f"(e) server RSS, {count:,} connected agents"
        value = _mb(rss) + ("" if seconds is None else f" ({seconds:.1f} s to connect)")
        target, verdict = "-", "-"
        if count == max(connections):
            target = "< 150 MB" if count >= 1000 else f"< 150 MB (at 1,000; {count} measured)"
            verdict = _verdict(None if rss is None or count < 1000 else rss < 150 * MB)
        out.append(Row(label, value, _mb(na.rss_connected.get(count)), "-", "-", "-", target,
                       verdict))
    if connections:
        out.append(Row(f"(e) server RSS once those {max(connections):,} disconnected",
                       _mb(curve.rss_disconnected), _mb(na.rss_disconnected), "-", "-", "-",
                       "(diagnostic: near idle)", "-"))
    out.append(Row("(e) one agent process RSS (vip_main)", _mb(curve.agent_rss), _mb(na.agent_rss), "-", "-",
                   "-", "< 35 MB", _verdict(None if curve.agent_rss is None else curve.agent_rss < 35 * MB),
                   PUBLISHED["agent_rss"]))
    return out


HEADER = ("Measure", "Platform, CURVE", "Platform, auth disabled", "Raw pyzmq forwarder",
          "Raw forwarder, CURVE", "CURVE vs raw", "Target", "Result", "Published platform")


def render(table: list[Row]) -> str:
    """The ZeroMQ table in Markdown (readable as plain text too)."""
    return _markdown(HEADER, [(r.measure, r.curve, r.noauth, r.raw, r.raw_curve, r.ratio, r.target, r.verdict,
                               r.published or "-") for r in table])


def _markdown(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    lines = [header, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(fmt(line) for line in lines[1:])])


@dataclass(frozen=True)
class RmqRow:
    """One line of the RabbitMQ table."""

    measure: str
    platform: str
    raw: str
    ratio: str
    zmq: str
    target: str = "-"
    verdict: str = "-"


RMQ_HEADER = ("Measure", "Platform, RabbitMQ", "Raw pika", "RabbitMQ vs raw pika", "Target", "Result",
              "Platform, ZeroMQ CURVE")


def _share(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.0%} of raw"


def _times(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.1f}x raw p50"


def rmq_rows(platform: SuiteResult, raw: SuiteResult, zmq: SuiteResult | None, messages: int) -> list[RmqRow]:
    """The RabbitMQ table: the platform on RabbitMQ, raw pika, their ratio, and ZeroMQ for comparison."""
    zmq = zmq or SuiteResult()
    tp, raw_tp = platform.throughput, raw.throughput
    lat, raw_lat = platform.latency, raw.latency
    rpc, raw_rpc = platform.rpc, raw.rpc

    def calls(s: LatencyStats | None) -> str:
        return "-" if s is None else f"{s.per_second:,.0f} calls/s"

    share = tp.rate / raw_tp.rate if tp and raw_tp and raw_tp.rate else None
    times = rpc.p50_ms / raw_rpc.p50_ms if rpc and raw_rpc and raw_rpc.p50_ms else None
    rss = platform.agent_rss
    return [
        RmqRow(f"(a) pub/sub throughput, 1 -> 1, {messages:,} msgs", _rate(tp), _rate(raw_tp),
               _share(tp.rate if tp else None, raw_tp.rate if raw_tp else None), _rate(zmq.throughput),
               ">= 60% of raw, 0 lost",
               _verdict(None if share is None or tp is None else share >= 0.6 and tp.lost_in_runs == 0)),
        RmqRow("(a) the same, raw pika with VIP's message properties", "-", _rate(raw.vip_shaped),
               "-" if not (tp and raw.vip_shaped and raw.vip_shaped.rate)
               else f"{tp.rate / raw.vip_shaped.rate:.0%} of raw with properties", "-"),
        RmqRow("(c) one-way pub/sub latency p50 / p99", _lat(lat), _lat(raw_lat),
               _times(lat.p50_ms if lat else None, raw_lat.p50_ms if raw_lat else None), _lat(zmq.latency)),
        RmqRow("(d) RPC round trip p50 / p99", _lat(rpc), _lat(raw_rpc),
               _times(rpc.p50_ms if rpc else None, raw_rpc.p50_ms if raw_rpc else None), _lat(zmq.rpc),
               "p50 <= 1.5x raw", _verdict(None if times is None else times <= 1.5)),
        RmqRow("(d) RPC calls/s, sequential", calls(rpc), calls(raw_rpc),
               _share(rpc.per_second if rpc else None, raw_rpc.per_second if raw_rpc else None),
               calls(zmq.rpc)),
        RmqRow("(e) one agent process RSS (vip_main)", _mb(rss), "-", "-", _mb(zmq.agent_rss),
               "<= 35 MB", _verdict(None if rss is None else rss <= 35 * MB)),
    ]


def render_rmq(table: list[RmqRow]) -> str:
    """The RabbitMQ table in Markdown."""
    return _markdown(RMQ_HEADER, [(r.measure, r.platform, r.raw, r.ratio, r.target, r.verdict, r.zmq)
                                  for r in table])


def tables_text(tables: list[tuple[str, str]]) -> str:
    """Each bus's table under its name."""
    return "\n\n".join(f"{title}:\n\n{table}" for title, table in tables)


def broker_version() -> str:
    """The local RabbitMQ's version, as ``rabbitmqctl`` reports it ("unknown" if it cannot)."""
    import subprocess

    try:
        done = subprocess.run(["rabbitmqctl", "-q", "version"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def machine(rabbitmq: bool = False) -> str:
    """CPU, cores, memory, OS, Python and library versions of this host (and the broker's)."""
    import gevent
    import psutil
    import zmq

    cpu = host.processor() or host.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    broker = ""
    if rabbitmq:
        import pika

        broker = f", pika {pika.__version__}, RabbitMQ {broker_version()}"
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
            f"{host.system()} {host.release()}; Python {host.python_version()}, pyzmq {zmq.__version__} "
            f"(libzmq {zmq.zmq_version()}), gevent {gevent.__version__}{broker}; load average at the end "
            f"{load} (1, 5, 15 min); bench niceness {os.nice(0)}")


ZMQ_READING = """\
- ZeroMQ: one run measures every column: the platform with CURVE and ZAP on (the default), the
  same with `--auth-disabled`, and a raw pyzmq ROUTER forwarder in Python (no VIP, no gevent),
  plain and with CURVE on every connection, as the floor any Python router pays. Every platform
  agent is the real client (`build_agent`, `vip.pubsub.publish`, `vip.rpc.call`) in its own
  process, over the platform's local ipc address. "Result" checks the targets on the CURVE column.
- (a) one publisher sends every message without waiting for its acknowledgement; the rate is
  messages received by the subscriber (another process) divided by the time from the first publish
  to the last delivery. Each (a) figure is the median of several runs, their range in brackets (rates
  on a shared host vary from run to run); "lost" counts the messages of all runs that never reached
  the subscriber (the router drops a delivery to a subscriber whose queue is full, high-water mark
  6,000, rather than block). "acks dropped": publish acknowledgements the router dropped because the
  publisher's own queue was full; `get()` on those results would time out.
- The raw forwarder's messages have 3 frames; a VIP publish has 8. The first diagnostic row runs
  the raw forwarder with 8-frame messages, to tell what the frame count costs from what the platform
  adds. The second also answers every message with a 7-frame VIP acknowledgement, which the
  publisher reads, as the protocol asks of every publish: the least a Python router of this
  protocol does per message.
- (b) one publisher, every message delivered to each subscriber process; the rate counts deliveries.
- (c) one message at a time: the subscriber notes when its callback ran; p50/p99 of that minus the
  publish time (one monotonic clock for all processes on the host).
- (d) sequential `vip.rpc.call(...).get()` to an `echo` method of an agent in another process;
  calls/s is the number of calls over the time they took. (c) and (d) run in alternating rounds
  (as many as (a)'s runs): each round measures every column once, the platforms and the raw echo
  in turn, a different one first each round, and each figure pools its column's samples of all
  rounds, so that a host whose speed drifts during the run moves the platform and its baseline
  alike. Its diagnostic row runs the same raw forwarder, echo and caller with request and answer
  in VIP's frames (6 from a peer, as an agent sends them, where the raw echo's have 2): what the
  protocol's frame count alone costs the raw baseline, with nothing of VIP done; "x raw CURVE" is
  the platform's p50 over it.
- (e) resident memory of the `volttron` process: idle, then with raw VIP DEALER connections (each
  a CURVE handshake, ZAP check, hello and welcome) held open by helper processes, then once they
  have all closed and the RSS has not moved by more than 1% for 5 s (the router hands freed memory
  back to the system a few seconds after connections stop coming and going); and the RSS of one
  minimal agent process started through `vip_main`.
- "CURVE vs raw": the platform's throughput as a share of the raw forwarder's, and its RPC p50 as
  a multiple of the raw echo round trip. "Published platform": figures of the published modular
  VOLTTRON for the same scenarios, for scale.
"""

RMQ_READING = """\
- RabbitMQ: `volttron --message-bus rmq` in a vhost made for the run (deleted afterwards), its
  agents the same real client on pika's gevent adapter, each in its own process; measured against
  raw pika clients (no VIP, no gevent) in the same vhost through a topic exchange of their own.
  Pub/sub and RPC messages go agent to agent through the broker, so the ratio is what the client
  side of the platform adds to the broker's own cost. (a): the raw publisher, like the platform's
  client, publishes asynchronously with publisher confirms, at most 10,000 unconfirmed; the rate
  is deliveries over first publish to last delivery, median of the runs; "acks dropped" here
  counts publishes the broker never confirmed. The raw messages carry a body only; the diagnostic
  row gives every raw publish the AMQP properties a VIP publish has (app and user id, message id,
  type, content type, a headers table of five entries), to tell what they cost from what the
  client adds. (c): one message at a time, raw: a publish through the exchange to the responder's
  queue. (d): raw request/reply: the request through the exchange to the responder's queue, the
  reply to the caller's exclusive reply queue (correlation id), sequential. (c) and (d) alternate
  between the platform and raw pika in rounds, as on ZeroMQ. "RabbitMQ vs raw
  pika": throughput and calls/s as a share of raw pika's, latencies as a multiple of raw pika's
  p50. The last column repeats the ZeroMQ platform's figures of the same run. The broker's CPU in
  the lines below is all it did meanwhile, also for other users of the broker.
"""


def recorded_block(text: str, command: str, notes: list[str], buses: tuple[str, ...] = ("zmq",),
                   conditions: list[str] | None = None) -> str:
    """The block ``--record`` writes: machine, date, command, conditions, tables, how to read them."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    note_lines = "".join(f"- {n}\n" for n in notes)
    reading = (ZMQ_READING if "zmq" in buses else "") + (RMQ_READING if "rmq" in buses else "")
    said = "".join(f"\nConditions: {c}\n" for c in conditions or [])
    return f"""{BEGIN}
Recorded {now} on: {machine("rmq" in buses)}.

Command: `{command}`
{said}
{text}

How to read it:
{reading}- The lines below give the CPU each process and thread spent per message in (a) (from the kernel's
  per-thread counters): where the time goes.
{note_lines}{END}"""


TEMPLATE = f"""# Performance

Measured by `scripts/bench` (see the block below for how to read it).

## Results

{BEGIN}
{END}
"""


def record(doc: Path, block: str) -> None:
    """Replace the recorded block of ``doc``; a document without one gets it appended."""
    text = doc.read_text() if doc.exists() else TEMPLATE
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    doc.write_text(pattern.sub(lambda _m: block, text, count=1))
