"""(e): the platform's resident memory idle and with many connected peers, and one agent process's."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import select
import subprocess
import sys
import time
from pathlib import Path

import connections
from common import FORK, BenchError
from platform_process import BenchPlatform


def agent_rss(platform: BenchPlatform, timeout: float) -> int:
    """RSS of one minimal agent process run through ``vip_main``, once it has started."""
    import psutil

    identity = "bench.idle"
    keys = platform.authorize(identity)
    env = {**os.environ, "VOLTTRON_HOME": str(platform.home), "AGENT_VIP_IDENTITY": identity,
           "VOLTTRON_VIP_ADDR": platform.address}
    for name in ("_LAUNCHED_BY_PLATFORM", "AGENT_CONFIG", "AGENT_UUID", "MESSAGEBUS"):
        env.pop(name, None)
    if platform.broker is not None:  # the broker's address comes from the home's rabbitmq_config.yml
        del env["VOLTTRON_VIP_ADDR"]
        env["MESSAGEBUS"] = "rmq"
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
               timeout: float) -> tuple[dict[int, int], dict[int, float], int | None]:
    """(e): the platform's RSS once ``count`` raw peers are connected, for each count (ascending),
    and once they have all disconnected (None if it did not settle within ``timeout``)."""
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
            wait_cpu_idle(platform, deadline)
            rss[count] = platform.rss()
    finally:
        stop.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
    return rss, seconds, settled_rss(platform, time.monotonic() + timeout)


def settled_rss(platform: BenchPlatform, deadline: float, quiet: float = 5.0,
                step: float = 0.25) -> int | None:
    """The platform's RSS once it has stayed within 1% for ``quiet`` s; None if not by ``deadline``."""
    since = time.monotonic()
    low = high = platform.rss()
    while time.monotonic() < deadline:
        time.sleep(step)
        now, rss = time.monotonic(), platform.rss()
        if max(high, rss) > 1.01 * min(low, rss):
            since, low, high = now, rss, rss  # it moved: start the quiet period again
            continue
        low, high = min(low, rss), max(high, rss)
        if now - since >= quiet:
            return rss
    return None


def wait_cpu_idle(platform: BenchPlatform, deadline: float, window: float = 0.3) -> None:
    """Wait until the platform used under 5% of a CPU over ``window`` (its broadcasts are done)."""
    while time.monotonic() < deadline:
        before = platform.cpu_seconds()
        time.sleep(window)
        if platform.cpu_seconds() - before < 0.05 * window:
            return
