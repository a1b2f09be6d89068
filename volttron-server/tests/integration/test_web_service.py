"""``platform.web`` in a real ``volttron`` process, through a real HTTP client (``http.client``).

The platform runs with ``--bind-web-address https://127.0.0.1:<port>`` and no certificate of its
own, so its CA issues one; the client verifies it against the platform's CA bundle. A test agent
(the client's ``build_agent``, in this gevent test process) registers endpoints and a static folder
through ``vip.web`` and exports RPC methods. HTTP requests run in a worker thread
(``threadpool.apply``) so the agent keeps answering the web service's callbacks meanwhile.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from volttron.client.runner import build_agent
from volttron.client.testing.waiting import wait_until as poll
from volttron.client.vip.agent import RPC, Agent, RemoteError
from volttron.server.services.web.users import add_web_user

pytestmark = pytest.mark.integration

TESTER = "web.tester"


class Response:
    """What came back: status, headers (lower-case names), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class WebClient:
    """Blocking http.client requests, run in a thread so that the gevent hub keeps going."""

    def __init__(self, port: int, context: ssl.SSLContext | None) -> None:
        self.port, self.context = port, context

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if self.context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.context, timeout=20)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers=headers)
            reply = conn.getresponse()
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
        finally:
            conn.close()

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                token: str | None = None) -> Response:
        headers = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return gevent.get_hub().threadpool.apply(self._send, (method, path, body, headers))

    def login(self, username: str, password: str) -> str:
        reply = self.request("POST", "/authenticate", {"username": username, "password": password})
        assert reply.status == 200, reply.body
        return reply.json()["access_token"]

    def rpc(self, peer: str, method: str, params: Any, token: str | None) -> Response:
        return self.request("POST", f"/jsonrpc/{peer}",
                            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, token=token)


class WebTestAgent(Agent):
    """Exports methods for the JSON-RPC gateway; serves an endpoint, a raw endpoint and files."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guarded_calls: list[Any] = []
        self.requests: list[tuple[dict, Any]] = []

    @RPC.export
    def add(self, a: int, b: int) -> int:
        return a + b

    @RPC.export
    @RPC.allow("web_test_cap")
    def guarded(self, value: Any) -> str:
        self.guarded_calls.append(value)
        return f"guarded {value}"

    @RPC.export
    def fail(self) -> None:
        raise ValueError("the tester failed on purpose")

    def api(self, env: dict, data: Any) -> Any:
        self.requests.append((env, data))
        return {"method": env["REQUEST_METHOD"], "path": env["PATH_INFO"], "data": data}

    def raw(self, env: dict, data: Any) -> list:
        return ["202 Accepted", base64.b64encode(b"<p>raw</p>").decode(), [["Content-Type", "text/html"]]]


def tamper(token: str) -> str:
    """``token`` with one character of its signature changed."""
    return token[:-5] + ("B" if token[-5] == "A" else "A") + token[-4:]


@pytest.fixture
def web_platform(platform_factory, tmp_path: Path):
    port = _free_port()
    platform = platform_factory(args=["--bind-web-address", f"https://127.0.0.1:{port}"])
    users = platform.home / "web-users.json"
    add_web_user(users, "alice", "alice-password", capabilities=["web_test_cap"])
    add_web_user(users, "bob", "bob-password")
    platform.start()
    platform.web_port = port
    return platform


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tester(web_platform, tmp_path: Path) -> Iterator[WebTestAgent]:
    keys = web_platform.add_allow_entry(TESTER, capabilities={"web.serve_path": None})
    agent = build_agent(address=web_platform.local_address, identity=TESTER, publickey=keys.public,
                        secretkey=keys.secret, serverkey=web_platform.serverkey, agent_class=WebTestAgent,
                        volttron_home=str(web_platform.home), enable_web=True, enable_auth=True, timeout=10)
    # The capability table platform.auth would give the agent: platform.web holds web_test_cap.
    agent.table = {"platform.web": {"web_test_cap": None}}
    agent.vip.rpc.set_capability_source(lambda user: agent.table.get(user, {}))
    webroot = web_platform.home / "agents" / TESTER / "data" / "webroot"  # agents serve only their own
    (webroot / "tester").mkdir(parents=True)
    (webroot / "tester" / "index.html").write_text("<h1>tester</h1>")
    (webroot / "tester" / "app.js").write_text("let x = 1;")
    (webroot.parent / "outside.txt").write_text("must not be served")
    agent.vip.web.register_endpoint("/tester/api", agent.api)
    agent.vip.web.register_endpoint("/tester/raw", agent.raw, res_type="raw")
    agent.vip.web.register_path_route(r"^/tester/", str(webroot))
    yield agent
    agent.core.stop(timeout=5)


def ca_context(platform) -> ssl.SSLContext:
    bundle = next((platform.home / "certificates" / "certs").glob("*-trusted-cas.crt"))
    return ssl.create_default_context(cafile=str(bundle))


def test_https_with_a_platform_issued_certificate(web_platform) -> None:
    web = WebClient(web_platform.web_port, ca_context(web_platform))
    reply = web.request("GET", "/discovery/")
    assert reply.status == 200, reply.body
    assert reply.json() == {"serverkey": web_platform.serverkey, "vip-address": web_platform.vip_address,
                            "instance-name": socket.gethostname()}
    untrusting = WebClient(web_platform.web_port, ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.request("GET", "/discovery/")
    assert web.request("GET", "/nothing/here").status == 404


def test_login_and_rpc_through_the_gateway(web_platform, tester: WebTestAgent) -> None:
    web = WebClient(web_platform.web_port, ca_context(web_platform))
    alice, bob = web.login("alice", "alice-password"), web.login("bob", "bob-password")
    wrong = web.request("POST", "/authenticate", "username=alice&password=nope",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong.status == 401 and "access_token" not in wrong.json()

    assert web.rpc(TESTER, "add", [2, 3], bob).json() == {"jsonrpc": "2.0", "id": 1, "result": 5}
    assert web.rpc(TESTER, "add", [2, 3], None).status == 401
    assert web.rpc(TESTER, "add", [2, 3], tamper(alice)).status == 401
    bad = web.request("POST", f"/jsonrpc/{TESTER}", "{not json", {"Content-Type": "application/json"},
                      token=alice)
    assert bad.status == 400 and bad.json()["error"]["code"] == -32700

    refused = web.rpc(TESTER, "guarded", ["from bob"], bob)
    assert refused.status == 403 and refused.json()["error"]["code"] == -32001
    assert tester.guarded_calls == [], "refused calls never reach the agent"
    assert web.rpc(TESTER, "guarded", ["from alice"], alice).json()["result"] == "guarded from alice"

    tester.table = {}  # the agent's own check of platform.web now refuses: both must hold the capability
    denied = web.rpc(TESTER, "guarded", ["again"], alice)
    assert denied.status == 403 and denied.json()["error"]["code"] == -32001
    assert tester.guarded_calls == ["from alice"]

    failed = web.rpc(TESTER, "fail", [], alice)
    assert failed.status == 500 and failed.json()["error"]["code"] == -32000
    assert "the tester failed on purpose" in failed.body.decode() and "Traceback" not in failed.body.decode()
    assert web.rpc("nobody.here", "add", [1, 2], alice).status == 404

    claims = tester.vip.web.get_user_claims(f"Bearer {alice}")  # agents check tokens they are given
    assert claims["sub"] == "alice" and claims["iss"] == socket.gethostname()
    with pytest.raises(RemoteError, match="signature|malformed"):
        tester.vip.web.get_user_claims(tamper(alice))


def test_agent_endpoints_static_files_and_traversal(web_platform, tester: WebTestAgent) -> None:
    web = WebClient(web_platform.web_port, ca_context(web_platform))
    reply = web.request("POST", "/tester/api?x=1", {"hello": "web"})
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == {"method": "POST", "path": "/tester/api", "data": {"hello": "web"}}
    env = tester.requests[-1][0]
    assert env["QUERY_STRING"] == "x=1" and env["wsgi.url_scheme"] == "https"
    raw = web.request("GET", "/tester/raw")
    assert (raw.status, raw.body, raw.headers["content-type"]) == (202, b"<p>raw</p>", "text/html")

    page = web.request("GET", "/tester/index.html")
    assert (page.status, page.body) == (200, b"<h1>tester</h1>")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    script = web.request("GET", "/tester/app.js")
    assert script.status == 200 and "javascript" in script.headers["content-type"]
    for path in ("/tester/../outside.txt", "/tester/../../outside.txt", "/tester/%2e%2e/outside.txt",
                 "/tester/..%2f..%2foutside.txt", "/tester/missing.html"):
        refused = web.request("GET", path)
        assert refused.status == 404 and b"must not be served" not in refused.body, path


def test_routes_removed_when_the_agent_leaves(web_platform, tester: WebTestAgent, monkeypatch) -> None:
    web = WebClient(web_platform.web_port, ca_context(web_platform))
    assert web.request("GET", "/tester/index.html").status == 200
    monkeypatch.setattr(tester.vip.web, "on_stop", lambda: None)  # leave without unregistering
    tester.core.stop(timeout=5)
    poll(lambda: web.request("GET", "/tester/api").status == 404, 10, "the endpoint to go")
    assert web.request("GET", "/tester/index.html").status == 404


def test_plain_http_and_start_failures(platform_factory) -> None:
    port = _free_port()
    platform = platform_factory(args=["--bind-web-address", f"http://127.0.0.1:{port}"], name="plain").start()
    web = WebClient(port, None)
    assert web.request("GET", "/discovery/").json()["vip-address"] == platform.vip_address
    assert web.request("POST", "/authenticate", {"username": "x", "password": "y"}).status == 401

    busy = platform_factory(args=["--bind-web-address", f"http://127.0.0.1:{port}"], name="busy")
    busy.expect_clean_exit = False
    busy.launch()
    assert busy.wait(30) == 1
    stderr = busy.stderr_path.read_text()
    assert "cannot listen on http://127.0.0.1:" in stderr and "Traceback" not in stderr

    bad = platform_factory(args=["--bind-web-address", "ftp://127.0.0.1:21"], name="bad")
    bad.expect_clean_exit = False
    bad.launch()
    assert bad.wait(30) == 2 and "bind-web-address" in bad.stderr_path.read_text()


def test_a_stalled_tls_handshake_is_cut_off(web_platform) -> None:
    """A client that connects and never speaks TLS holds its connection for the header deadline only."""
    def stall() -> float:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", web_platform.web_port), timeout=60) as sock:
            sock.sendall(b"\x16")  # the first byte of a TLS record, then nothing
            while sock.recv(4096):
                pass
        return time.monotonic() - started

    held = gevent.get_hub().threadpool.apply(stall)
    assert held < 15.0, f"a stalled handshake held its connection {held:.1f} s"
    web = WebClient(web_platform.web_port, ca_context(web_platform))
    assert web.request("GET", "/discovery/").status == 200
