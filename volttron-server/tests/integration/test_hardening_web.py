"""Hardening battery, web side: what an agent may publish over HTTP, and what anonymous clients cost.

A real ``volttron`` process serves ``--bind-web-address http://127.0.0.1:<port>`` (plain HTTP keeps
the raw-socket attacks simple; TLS goes through the same handlers). Agents run in this (gevent,
not monkey-patched) process and talk to ``platform.web`` over RPC exactly as ``vip.web`` does;
HTTP requests run in worker threads (``threadpool``) so the agents keep being served meanwhile.

The route capability and the request-time path check are enforcement checks: their refusals go
through assertions starting with ``NOT ENFORCED:``, and ``tests/test_enforcement_switches.py``
runs :func:`test_path_route_needs_the_capability` and :func:`test_symlink_swap_is_refused_at_request_time`
with the check switched off in the platform. Those two take an ``EnforcedPlatform``-like object
(``.process`` not yet started, ``.agent(identity, capabilities=...)``, ``.stop_agent(identity)``).

Figures go out through the ``report`` fixture (see ``volttron-server/tests/conftest.py``).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until
from volttron.client.vip.agent import Agent
from volttron.server.services.web.users import add_web_user
from volttron.utils.jsonrpc import Error

pytestmark = pytest.mark.integration

NOT_ENFORCED = "NOT ENFORCED: "
SERVE_PATH = "web.serve_path"
CALL_TIMEOUT = 10.0


# -- helpers --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Reply:
    """Status, lower-case headers, body and how long the request took."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, seconds: float) -> None:
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds


def _http(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str],
          source: str, timeout: float) -> Reply:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data,
                     time.monotonic() - started)
    finally:
        conn.close()


def http_request(port: int, method: str, path: str, body: Any = None, *, source: str = "127.0.0.1",
                 timeout: float = 10.0, headers: dict[str, str] | None = None) -> Reply:
    """One request from ``source`` in a worker thread (the gevent hub keeps running)."""
    headers = dict(headers or {})
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    return gevent.get_hub().threadpool.apply(_http, (port, method, path, body, headers, source, timeout))


def poll(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """:func:`wait_until`, the condition retried when it raises (a server that is not up yet)."""
    return wait_until(condition, timeout, what, interval=0.05, retry=(Exception,))


def register_path(agent: Agent, pattern: str, root: Path | str) -> str | None:
    """None when ``platform.web`` accepted the route, else the refusal's text."""
    try:
        result = agent.vip.rpc.call("platform.web", "register_path_route", pattern, str(root))
        result.get(timeout=CALL_TIMEOUT)
    except Error as exc:
        return str(exc) or repr(exc)
    return None


def agent_data(home: Path, identity: str) -> Path:
    """``$VOLTTRON_HOME/agents/<identity>/data`` (made here; the tests' agents are not installed)."""
    data = home / "agents" / identity / "data"
    data.mkdir(parents=True, exist_ok=True)
    return data


def start_web(platform: Any) -> int:
    """Give the not-yet-started platform a plain-HTTP web address, start it; returns the port."""
    port = free_port()
    platform.process.args += ["--bind-web-address", f"http://127.0.0.1:{port}"]
    platform.start()
    return port


class WebPlatform:
    """The part of ``EnforcedPlatform`` these tests use, over ``platform_factory``."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.agents: dict[str, Agent] = {}

    @property
    def home(self) -> Path:
        return self.process.home

    def start(self) -> WebPlatform:
        self.process.start()
        return self

    def agent(self, identity: str, agent_class: type[Agent] = Agent,
              capabilities: dict[str, Any] | None = None) -> Agent:
        keys = self.process.add_allow_entry(identity, None, capabilities or {})
        agent = build_agent(address=self.process.local_address, identity=identity, publickey=keys.public,
                            secretkey=keys.secret, serverkey=self.process.serverkey, timeout=10,
                            agent_class=agent_class, enable_auth=True, volttron_home=str(self.home))
        self.agents[identity] = agent
        return agent

    def stop_agent(self, identity: str) -> None:
        self.agents.pop(identity).core.stop(timeout=10)

    def restart(self) -> None:
        """Stop the platform process and start it again on the same home and addresses."""
        self.process.stop()
        self.process.process = None
        self.process.start()


@pytest.fixture
def web_platform(platform_factory) -> Iterator[WebPlatform]:
    platform = WebPlatform(platform_factory())
    try:
        yield platform
    finally:
        for identity in list(platform.agents):
            platform.stop_agent(identity)


# -- 1. static folders: capability, allowed roots, request-time containment ----------------------

def test_path_route_needs_the_capability(web_platform: Any) -> None:
    """An agent without ``web.serve_path`` cannot publish even its own data folder."""
    port = start_web(web_platform)
    home = web_platform.process.home
    www = agent_data(home, "plain.agent") / "www"
    (www / "plain").mkdir(parents=True)
    (www / "plain" / "index.html").write_text("plain agent page")
    plain = web_platform.agent("plain.agent")
    refusal = register_path(plain, "^/plain/", www)
    served = http_request(port, "GET", "/plain/index.html")
    assert refusal is not None and served.status == 404, (
        f"{NOT_ENFORCED}register_path_route without {SERVE_PATH} was allowed "
        f"(GET /plain/index.html: {served.status})")
    assert SERVE_PATH in refusal, refusal


def test_agents_serve_only_below_their_own_directory(web_platform: Any, report) -> None:
    """/etc, the home and other agents' folders are refused at registration, even with the capability."""
    port = start_web(web_platform)
    home = web_platform.process.home
    agent_data(home, "other.agent")
    www = agent_data(home, "webber") / "www"
    (www / "webber").mkdir(parents=True)
    (www / "webber" / "index.html").write_text("webber page")
    webber = web_platform.agent("webber", capabilities={SERVE_PATH: None})
    attempts = {"/etc": "/etc", "home": home, "keystores": home / "keystores",
                "other agent": home / "agents" / "other.agent" / "data", "/": "/", "/tmp": "/tmp"}
    accepted = []
    for name, root in attempts.items():
        if register_path(webber, "^/", root) is None:
            accepted.append(name)
    etc_passwd = http_request(port, "GET", "/passwd")
    keystore = http_request(port, "GET", "/keystore")
    leaked = [r.body for r in (etc_passwd, keystore) if r.status == 200]
    report("foreign_roots_accepted", len(accepted))
    report("bytes_served_from_outside", sum(len(b) for b in leaked))
    assert accepted == [] and leaked == [], f"roots accepted: {accepted}; bytes leaked: {leaked[:1]}"
    assert register_path(webber, "^/webber/", www) is None  # its own data folder is fine
    page = http_request(port, "GET", "/webber/index.html")
    assert (page.status, page.body) == (200, b"webber page")


def test_symlink_swap_is_refused_at_request_time(web_platform: Any) -> None:
    """Register the own data folder, then swap it (or files in it) for symlinks to the keystore and /etc."""
    port = start_web(web_platform)
    home = web_platform.process.home
    data = agent_data(home, "swapper")
    www = data / "www"
    (www / "swap").mkdir(parents=True)
    (www / "swap" / "index.html").write_text("swapper page")
    swapper = web_platform.agent("swapper", capabilities={SERVE_PATH: None})
    assert register_path(swapper, "^/", www) is None
    assert http_request(port, "GET", "/swap/index.html").body == b"swapper page"
    secret = (home / "keystore").read_bytes()

    (www / "swap" / "key.json").symlink_to(home / "keystore")          # a file swapped for a link
    (www / "etc").symlink_to("/etc")                                     # a folder inside
    leaks = {path: http_request(port, "GET", path) for path in ("/swap/key.json", "/etc/passwd")}
    os.rename(www, data / "www.old")                                     # the registered folder itself
    www.symlink_to(home)
    leaks["/keystore (folder swapped)"] = http_request(port, "GET", "/keystore")
    www.unlink()
    www.symlink_to("/etc")
    leaks["/passwd (folder swapped)"] = http_request(port, "GET", "/passwd")
    served = {path: reply.status for path, reply in leaks.items() if reply.status == 200}
    assert not served, f"{NOT_ENFORCED}files outside the registered folder were served: {served}"
    assert all(secret not in reply.body for reply in leaks.values())


# -- 2. route patterns: no catastrophic backtracking, no takeover ----------------------------------

def test_route_patterns_cannot_stall_the_platform(web_platform: Any, report) -> None:
    """``^/(a+)+$`` and 27..40-character GETs: another request and a VIP ping answered within 0.5 s."""
    port = start_web(web_platform)
    home = web_platform.process.home
    redos = web_platform.agent("redos", capabilities={SERVE_PATH: None})
    prober = web_platform.agent("prober")
    refusal = register_path(redos, "^/(a+)+$", agent_data(home, "redos"))
    report("evil_pattern_refused", refusal is not None)
    threadpool = gevent.get_hub().threadpool
    worst_http = worst_ping = 0.0
    for length in (27, 30, 35, 40):
        attack = threadpool.spawn(_http, port, "GET", "/" + "a" * length + "!", None, {}, "127.0.0.1", 60)
        probes = 0
        deadline = time.monotonic() + 1.5
        while probes < 5 or (not attack.ready() and time.monotonic() < deadline):
            probes += 1
            worst_http = max(worst_http, http_request(port, "GET", "/discovery/", timeout=30).seconds)
            started = time.monotonic()
            prober.vip.ping("", "x").get(timeout=30)
            worst_ping = max(worst_ping, time.monotonic() - started)
            if worst_http >= 0.5 or worst_ping >= 0.5:
                break
        report(f"attack_{length}_answer_s", round(attack.get(timeout=120).seconds, 3))
        assert worst_http < 0.5 and worst_ping < 0.5, (
            f"a {length}-character GET stalled the platform: http {worst_http:.2f} s, "
            f"ping {worst_ping:.2f} s")
    report("worst_http_s", round(worst_http, 3))
    report("worst_ping_s", round(worst_ping, 3))


def test_an_agent_cannot_take_over_another_agents_url(web_platform: Any, report) -> None:
    """The intruder registers the victim's URL before, during and after the victim's restart."""
    port = start_web(web_platform)
    home = web_platform.process.home
    for identity, text in (("victim", "victim script"), ("intruder", "intruder script")):
        folder = agent_data(home, identity) / "www" / "victim"
        folder.mkdir(parents=True)
        (folder / "app.js").write_text(text)
    victim = web_platform.agent("victim", capabilities={SERVE_PATH: None})
    intruder = web_platform.agent("intruder", capabilities={SERVE_PATH: None})
    victim_www, intruder_www = (agent_data(home, i) / "www" for i in ("victim", "intruder"))
    assert register_path(victim, "^/victim/", victim_www) is None
    outcomes = {"while the victim runs": register_path(intruder, "^/victim/", intruder_www),
                "a longer prefix": register_path(intruder, "^/victim/app", intruder_www),
                "a covering prefix": register_path(intruder, "^/vic", intruder_www)}
    try:
        intruder.vip.rpc.call("platform.web", "register_endpoint", "/victim/app.js", "raw").get(
            timeout=CALL_TIMEOUT)
        outcomes["an endpoint"] = None
    except Error as exc:
        outcomes["an endpoint"] = str(exc)

    web_platform.stop_agent("victim")  # stops cleanly: unregisters its routes
    poll(lambda: "victim" not in intruder.vip.peerlist().get(timeout=2), 10, "the victim to leave")
    outcomes["while the victim restarts"] = register_path(intruder, "^/victim/", intruder_www)
    during = http_request(port, "GET", "/victim/app.js")
    victim = web_platform.agent("victim", capabilities={SERVE_PATH: None})
    back = register_path(victim, "^/victim/", victim_www)
    after = http_request(port, "GET", "/victim/app.js")
    taken = [what for what, refusal in outcomes.items() if refusal is None]
    report("takeovers_accepted", len(taken))
    report("intruder_served_victim_url", b"intruder" in during.body + after.body)
    assert taken == [], f"the intruder registered the victim's URL {taken}"
    assert all("victim" in refusal for refusal in outcomes.values()), outcomes  # says who owns it
    assert during.status != 200 and b"intruder" not in during.body
    assert back is None, f"the victim could not take its URL back: {back}"
    assert (after.status, after.body) == (200, b"victim script")


def test_route_owners_survive_a_platform_restart(web_platform: Any) -> None:
    """After a restart the intruder reconnects first; the victim still gets its URL back."""
    port = start_web(web_platform)
    home = web_platform.process.home
    for identity in ("victim", "intruder"):
        (agent_data(home, identity) / "www" / "victim").mkdir(parents=True)
        (agent_data(home, identity) / "www" / "victim" / "app.js").write_text(f"{identity} script")
    victim = web_platform.agent("victim", capabilities={SERVE_PATH: None})
    assert register_path(victim, "^/victim/", agent_data(home, "victim") / "www") is None
    web_platform.stop_agent("victim")
    web_platform.restart()
    intruder = web_platform.agent("intruder", capabilities={SERVE_PATH: None})
    refusal = register_path(intruder, "^/victim/", agent_data(home, "intruder") / "www")
    assert refusal is not None and "victim" in refusal, (
        f"the intruder took the URL after a restart: {refusal}")
    victim = web_platform.agent("victim", capabilities={SERVE_PATH: None})
    assert register_path(victim, "^/victim/", agent_data(home, "victim") / "www") is None
    assert http_request(port, "GET", "/victim/app.js").body == b"victim script"


# -- 3. anonymous clients: login guessing and slow connections --------------------------------------

def test_login_guessing_is_rate_limited(web_platform: Any, report) -> None:
    """50 wrong passwords for alice from one address: 429 with Retry-After; other clients unaffected."""
    add_web_user(web_platform.process.home / "web-users.json", "alice", "alice-password")
    add_web_user(web_platform.process.home / "web-users.json", "bob", "bob-password")
    port = start_web(web_platform)
    statuses = []
    retry_after = None
    for i in range(50):
        reply = http_request(port, "POST", "/authenticate", {"username": "alice", "password": f"guess{i}"},
                             source="127.0.0.2")
        statuses.append(reply.status)
        if reply.status == 429:
            retry_after = reply.headers.get("retry-after")
    checked = statuses.count(401)
    report("guesses_sent", len(statuses))
    report("guesses_checked", checked)
    report("guesses_refused_429", statuses.count(429))
    assert checked <= 20 and statuses[-1] == 429, f"{checked} of 50 guesses were checked: {statuses}"
    assert retry_after is not None and 0 < int(retry_after) <= 3600, retry_after
    # another user from another address is not slowed down
    other = http_request(port, "POST", "/authenticate", {"username": "bob", "password": "bob-password"},
                         source="127.0.0.3")
    assert other.status == 200, other.body
    # many user names from one address: refused as well (the address is limited)
    spread = [http_request(port, "POST", "/authenticate", {"username": f"user{i}", "password": "x"},
                           source="127.0.0.4").status for i in range(30)]
    report("spread_guesses_checked", spread.count(401))
    assert spread.count(401) <= 20 and spread[-1] == 429, spread


def _slow_clients(port: int, count: int, source: str, stop: threading.Event, connected: threading.Event,
                  closed: list[float]) -> None:
    """``count`` connections that send a request's headers one byte at a time, one byte a second."""
    request = b"GET /discovery/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
    socks = []
    started = time.monotonic()
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((source, 0))
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", port))
            except OSError:
                sock.close()
                closed.append(0.0)
                continue
            sock.setblocking(False)
            socks.append(sock)
        connected.set()
        for position in range(len(request)):
            if stop.is_set() or not socks:
                return
            for sock in list(socks):
                try:
                    sock.send(request[position:position + 1])
                    sock.recv(4096)  # an answer (503, 408) or the end: the server cut this one off
                    raise ConnectionResetError
                except BlockingIOError:
                    continue
                except OSError:
                    closed.append(time.monotonic() - started)
                    socks.remove(sock)
                    sock.close()
            stop.wait(1.0)
    finally:
        for sock in socks:
            sock.close()


def test_slow_connections_do_not_lock_out_other_clients(web_platform: Any, report) -> None:
    """270 connections dripping their headers: another client is answered at once; drippers are cut off."""
    port = start_web(web_platform)
    prober = web_platform.agent("prober")
    stop, connected = threading.Event(), threading.Event()
    closed: list[float] = []
    threadpool = gevent.get_hub().threadpool
    slow = threadpool.spawn(_slow_clients, port, 270, "127.0.0.2", stop, connected, closed)
    try:
        poll(lambda: connected.is_set() or slow.ready(), 30, "the slow connections to be made")
        answers = [http_request(port, "GET", "/discovery/", timeout=10).seconds for _ in range(5)]
        started = time.monotonic()
        prober.vip.ping("", "x").get(timeout=10)
        report("other_client_worst_s", round(max(answers), 3))
        report("vip_ping_during_attack_s", round(time.monotonic() - started, 3))
        assert max(answers) < 1.0, f"another client waited {max(answers):.2f} s"
        poll(lambda: len(closed) >= 270 or slow.ready(), 30, "every slow connection to be closed")
        report("slow_connections_closed", len(closed))
        report("longest_slow_connection_s", round(max(closed), 1))
        assert len(closed) == 270 and max(closed) < 20, (
            f"{len(closed)} closed, the last after {max(closed)} s")
    finally:
        stop.set()
        slow.get(timeout=30)
