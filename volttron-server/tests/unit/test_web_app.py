"""The web service's WSGI application with a fake agent caller: every route, every refusal."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from volttron.client.vip.agent.errors import ResultTimeout, Unreachable
from volttron.client.vip.agent.introspection import describe_method
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.web.app import WebApplication
from volttron.server.services.web.discovery import discovery_document
from volttron.server.services.web.endpoints import EndpointDispatcher
from volttron.server.services.web.errors import DuplicateEndpointError, ReservedRouteError, RouteError
from volttron.server.services.web.gateway import JsonRpcGateway
from volttron.server.services.web.login import LoginEndpoint
from volttron.server.services.web.routes import RouteTable
from volttron.server.services.web.static import UnsafePath, content_type, resolve_static_file
from volttron.server.services.web.tokens import TokenIssuer
from volttron.server.services.web.users import WebUserStore, add_web_user
from volttron.utils import jsonrpc
from volttron.utils.jsonrpc import exception_to_json


class FakeCaller:
    """Answers from a table: a value, a callable, or an exception to raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list, dict]] = []
        self.notes: list[tuple[str, str, list, dict]] = []
        self.answers: dict[tuple[str, str], Any] = {}

    def call(self, peer: str, method: str, args: list, kwargs: dict, timeout: float) -> Any:
        self.calls.append((peer, method, args, kwargs))
        if (peer, method) not in self.answers:
            raise jsonrpc.MethodNotFound(jsonrpc.METHOD_NOT_FOUND, "unimplemented method",
                                         {"detail": f"method '{method}' is not implemented"})
        answer = self.answers[(peer, method)]
        if isinstance(answer, BaseException):
            raise answer
        return answer(*args, **kwargs) if callable(answer) else answer

    def notify(self, peer: str, method: str, args: list, kwargs: dict) -> None:
        self.notes.append((peer, method, args, kwargs))

    def forwarded(self) -> list[str]:
        return [m for _, m, _, _ in self.calls if m != "auth.get_rpc_authorizations" and
                not m.endswith(".inspect")]


class Site:
    """An application over temporary files, and a way to send it requests."""

    def __init__(self, home: Path, check_capabilities: bool = True) -> None:
        self.home = home
        (home / "auth.json").write_text(json.dumps({
            "allow": [], "deny": [], "groups": {"ops": ["operator"]}, "roles": {"operator": ["start"]}}))
        add_web_user(home / "web-users.json", "alice", "password-1", groups=["ops"],
                     capabilities={"edit_config_store": {"identity": "/listener.*/"}})
        add_web_user(home / "web-users.json", "bob", "password-2")
        self.users = WebUserStore(home / "web-users.json", AuthPolicy(home / "auth.json"))
        self.tokens = TokenIssuer(b"s" * 32, "inst")
        self.caller = FakeCaller()
        self.routes = RouteTable(home)
        self.app = WebApplication(
            self.routes,
            lambda request: discovery_document("inst", "KEY", ["tcp://0.0.0.0:22916"],
                                               request.header("Host")),
            LoginEndpoint(self.users, self.tokens),
            JsonRpcGateway(self.caller, self.users, self.tokens, check_capabilities=check_capabilities,
                           timeout=1.0, own_identity="platform.web"),
            EndpointDispatcher(self.caller, 1.0), max_body=200_000)

    def request(self, method: str, path: str, body: bytes | str | Any = b"", headers: dict | None = None,
                content_type: str | None = None) -> tuple[int, dict[str, str], bytes]:
        if not isinstance(body, (bytes, str)):
            body, content_type = json.dumps(body), content_type or "application/json"
        data = body.encode() if isinstance(body, str) else body
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
                   "SERVER_NAME": "localhost", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
                   "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
                   "CONTENT_LENGTH": str(len(data))}
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[Any] = []
        chunks = self.app(environ, lambda status, hdrs: started.extend([status, hdrs]))
        payload = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close:
            close()
        return int(started[0].split()[0]), dict(started[1]), payload

    def token(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(user)}"}

    def rpc(self, peer: str, method: str, params: Any = None, headers: dict | None = None,
            ident: Any = 7) -> tuple[int, dict]:
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            request["params"] = params
        if ident is not None:
            request["id"] = ident
        status, _, body = self.request("POST", f"/jsonrpc/{peer}", request,
                                       self.token() if headers is None else headers)
        return status, json.loads(body) if body else {}


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


# -- discovery and login ----------------------------------------------------------------------------

def test_discovery(site: Site) -> None:
    status, headers, body = site.request("GET", "/discovery/", headers={"Host": "web.example:8443"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"serverkey": "KEY", "vip-address": "tcp://web.example:22916",
                                "instance-name": "inst"}
    assert site.request("POST", "/discovery/")[0] == 405


def test_discovery_documents() -> None:
    assert discovery_document("i", "K", ["ipc://@/x", "tcp://10.0.0.5:1", "tcp://8.8.8.8:2"]) == {
        "serverkey": "K", "vip-address": "tcp://8.8.8.8:2", "instance-name": "i"}
    assert discovery_document("i", "K", ["tcp://127.0.0.1:5?serverkey=x"])["vip-address"] == "tcp://127.0.0.1:5"
    assert discovery_document("i", None, ["tcp://127.0.0.1:5"]) == {"vip-address": "tcp://127.0.0.1:5",
                                                                   "instance-name": "i"}
    assert discovery_document("i", "K", ["ipc://@/x"]) == {"instance-name": "i"}


def test_login_with_form_and_json(site: Site) -> None:
    status, headers, body = site.request("POST", "/authenticate", "username=alice&password=password-1",
                                         content_type="application/x-www-form-urlencoded")
    answer = json.loads(body)
    assert status == 200 and answer["token_type"] == "Bearer" and headers["Cache-Control"] == "no-store"
    assert site.tokens.verify(answer["access_token"])["sub"] == "alice"
    status, _, body = site.request("POST", "/authenticate", {"username": "bob", "password": "password-2"})
    assert status == 200 and site.tokens.verify(json.loads(body)["access_token"])["sub"] == "bob"


@pytest.mark.parametrize("body,status", [
    ({"username": "alice", "password": "wrong"}, 401),
    ({"username": "nobody", "password": "password-1"}, 401),
    ({"username": "alice"}, 400),
    ({"username": "alice", "password": 5}, 400),
    (["alice", "password-1"], 400),
    ("{not json", 400),
    ("username=alice", 400),
])
def test_login_refusals(site: Site, body: Any, status: int) -> None:
    content_type = "application/json" if isinstance(body, str) and body.startswith("{") else None
    got, headers, payload = site.request("POST", "/authenticate", body, content_type=content_type)
    assert got == status and "error" in json.loads(payload) and "access_token" not in payload.decode()
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")


def test_login_needs_post_and_bounded_bodies(site: Site) -> None:
    assert site.request("GET", "/authenticate")[0] == 405
    status, _, body = site.request("POST", "/authenticate", "x" * 200_001)
    assert status == 413 and "at most" in json.loads(body)["error"]


# -- JSON-RPC gateway -------------------------------------------------------------------------------

def test_rpc_call_forwarded_when_unrestricted(site: Site) -> None:
    site.caller.answers[("listener", "auth.get_rpc_authorizations")] = []
    site.caller.answers[("listener", "add")] = lambda a, b: a + b
    assert site.rpc("listener", "add", [1, 2]) == (200, {"jsonrpc": "2.0", "id": 7, "result": 3})
    assert site.caller.calls[-1] == ("listener", "add", [1, 2], {})


def test_rpc_without_or_with_bad_token_is_401_and_not_forwarded(site: Site) -> None:
    site.caller.answers[("listener", "add")] = 3
    expired = TokenIssuer(b"s" * 32, "inst", lifetime=1, clock=lambda: 1000.0).issue("alice")
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cGFzcw=="}, {"Authorization": "Bearer junk"},
                    {"Authorization": f"Bearer {expired}"},
                    {"Authorization": f"Bearer {TokenIssuer(b'x' * 32, 'inst').issue('alice')}"},
                    site.token("ghost")):
        status, answer = site.rpc("listener", "add", [1, 2], headers=headers)
        assert status == 401 and answer["error"]["code"] == jsonrpc.UNAUTHORIZED, headers
    assert site.caller.calls == []


@pytest.mark.parametrize("body,status,code", [
    ("{nope", 400, jsonrpc.PARSE_ERROR),
    ("[]", 400, jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "1.0", "method": "x", "id": 1}', 400, jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "method": "", "id": 1}', 400, jsonrpc.INVALID_REQUEST),
    ('{"jsonrpc": "2.0", "method": "x", "params": 5, "id": 1}', 400, jsonrpc.INVALID_PARAMS),
    ('"text"', 400, jsonrpc.INVALID_REQUEST),
    ("[" * 100_000, 400, jsonrpc.PARSE_ERROR),
])
def test_rpc_bad_requests_are_400_with_json_errors(site: Site, body: str, status: int, code: int) -> None:
    got, headers, payload = site.request("POST", "/jsonrpc/listener", body, site.token(),
                                         content_type="application/json")
    answer = json.loads(payload)
    assert got == status and answer["error"]["code"] == code and headers["Content-Type"] == "application/json"
    assert site.caller.calls == []


def test_rpc_refused_without_capability_and_not_forwarded(site: Site) -> None:
    site.caller.answers[("platform.control", "auth.get_rpc_authorizations")] = ["stop_agents"]
    site.caller.answers[("platform.control", "stop_agent")] = "stopped"
    status, answer = site.rpc("platform.control", "stop_agent", ["x"])
    assert status == 403 and answer["error"]["code"] == jsonrpc.UNAUTHORIZED
    assert "stop_agents" in answer["error"]["data"]["detail"]
    assert site.caller.forwarded() == []


def test_rpc_allowed_by_group_role_capability(site: Site) -> None:
    site.caller.answers[("platform.control", "auth.get_rpc_authorizations")] = ["start"]
    site.caller.answers[("platform.control", "start_agent")] = "started"
    assert site.rpc("platform.control", "start_agent", ["x"])[1]["result"] == "started"
    status, answer = site.rpc("platform.control", "start_agent", ["x"], headers=site.token("bob"))
    assert status == 403 and site.caller.forwarded() == ["start_agent"]


def test_rpc_capability_parameters_checked_against_the_remote_signature(site: Site) -> None:
    def set_config(identity: str, config_name: str, raw_contents: str = "") -> str:
        return f"stored {identity}/{config_name}"

    store = "platform.config_store"
    site.caller.answers[(store, "auth.get_rpc_authorizations")] = ["edit_config_store"]
    site.caller.answers[(store, "set_config.inspect")] = describe_method(set_config)
    site.caller.answers[(store, "set_config")] = set_config
    assert site.rpc(store, "set_config", ["listener1", "cfg"])[1]["result"] == "stored listener1/cfg"
    assert site.rpc(store, "set_config", {"identity": "listener2", "config_name": "c"})[0] == 200
    status, answer = site.rpc(store, "set_config", ["platform.auth", "cfg"])
    assert status == 403 and "identity" in answer["error"]["data"]["detail"]
    assert site.rpc(store, "set_config", [])[0] == 403  # cannot bind: refused, never forwarded
    assert site.caller.forwarded() == ["set_config", "set_config"]


def test_rpc_refused_when_requirements_or_signature_are_unknown(site: Site) -> None:
    status, answer = site.rpc("legacy", "anything")  # no auth.get_rpc_authorizations: fail closed
    assert status == 403 and "does not say" in answer["error"]["data"]["detail"]
    site.caller.answers[("odd", "auth.get_rpc_authorizations")] = "edit_config_store"
    assert site.rpc("odd", "m")[0] == 403
    site.caller.answers[("store", "auth.get_rpc_authorizations")] = ["edit_config_store"]
    assert site.rpc("store", "set_config", ["listener"])[0] == 403  # no set_config.inspect answer
    assert site.caller.forwarded() == []


def test_rpc_capabilities_not_checked_with_authentication_disabled(tmp_path: Path) -> None:
    site = Site(tmp_path, check_capabilities=False)
    site.caller.answers[("x", "m")] = "ok"
    assert site.rpc("x", "m") == (200, {"jsonrpc": "2.0", "id": 7, "result": "ok"})
    assert site.rpc("x", "m", headers={})[0] == 401  # a token is still required


def test_rpc_failures_mapped_without_tracebacks(site: Site) -> None:
    site.caller.answers[("a", "auth.get_rpc_authorizations")] = []
    try:
        raise ValueError("bad value 42")
    except ValueError as exc:
        response = exception_to_json("id", exc)
    assert "Traceback" in json.dumps(response)
    site.caller.answers[("a", "boom")] = jsonrpc.parse_response(response).error
    status, answer = site.rpc("a", "boom")
    assert status == 500 and answer["error"]["code"] == jsonrpc.UNHANDLED_EXCEPTION
    assert answer["error"]["data"]["exception.py"]["exc_type"] == "builtins.ValueError"
    assert "Traceback" not in json.dumps(answer) and "bad value 42" in json.dumps(answer)
    assert site.rpc("a", "missing")[0] == 404
    site.caller.answers[("a", "slow")] = ResultTimeout(1.0, "no answer")
    assert site.rpc("a", "slow")[0] == 504
    site.caller.answers[("a", "guarded")] = jsonrpc.Unauthorized(jsonrpc.UNAUTHORIZED, "unauthorized",
                                                                 {"detail": "platform.web lacks x"})
    assert site.rpc("a", "guarded")[0] == 403
    site.caller.answers[("gone", "auth.get_rpc_authorizations")] = Unreachable(113, "x", "gone", "RPC")
    status, answer = site.rpc("gone", "m")
    assert status == 404 and answer["error"]["code"] == jsonrpc.UNAVAILABLE_AGENT


def test_rpc_notification_self_call_and_bad_identity(site: Site) -> None:
    site.caller.answers[("a", "auth.get_rpc_authorizations")] = []
    status, answer = site.rpc("a", "log", ["hi"], ident=None)
    assert status == 204 and answer == {} and site.caller.notes == [("a", "log", ["hi"], {})]
    assert site.rpc("platform.web", "register_endpoint", ["/x", "raw"])[0] == 403
    assert site.rpc("bad id!", "m")[0] == 404
    assert site.request("GET", "/jsonrpc/a", headers=site.token())[0] == 405
    assert site.request("POST", "/jsonrpc")[0] == 404


# -- agent endpoints --------------------------------------------------------------------------------

def test_endpoint_gets_env_and_json_data(site: Site) -> None:
    seen: list[tuple[dict, Any]] = []

    def callback(env: dict, data: Any) -> Any:
        seen.append((env, data))
        return {"ok": True}

    site.routes.add_endpoint("agent.a", "/a/api", "jsonrpc")
    site.caller.answers[("agent.a", "route.callback")] = callback
    status, headers, body = site.request("POST", "/a/api", {"x": 1}, headers={"Authorization": "Bearer t"})
    assert status == 200 and json.loads(body) == {"ok": True}
    assert headers["Content-Type"] == "application/json"
    env, data = seen[0]
    assert data == {"x": 1} and env["PATH_INFO"] == "/a/api" and env["HTTP_AUTHORIZATION"] == "Bearer t"
    assert "wsgi.input" not in env and json.dumps(env)
    site.request("GET", "/a/api")
    assert seen[1][1] == ""
    assert site.request("GET", "/a/api/deeper")[0] == 404  # endpoints are exact paths


@pytest.mark.parametrize("answer,status,body,header", [
    ({"error": {"code": -32001, "message": "no"}}, 401, None, None),
    (["<b>hi</b>", [["Content-Type", "text/html"]]], 200, b"<b>hi</b>", ("Content-Type", "text/html")),
    (["201 Created", "made", [["X-Thing", "1"]]], 201, b"made", ("X-Thing", "1")),
    ([1, 2], 200, b"[1, 2]", None),
    ("text", 200, b'"text"', None),
])
def test_jsonrpc_endpoint_answers(site: Site, answer: Any, status: int, body: bytes | None,
                                  header: tuple | None) -> None:
    site.routes.add_endpoint("agent.a", "/a", "jsonrpc")
    site.caller.answers[("agent.a", "route.callback")] = lambda env, data: answer
    got, headers, payload = site.request("GET", "/a")
    assert got == status
    if body is not None:
        assert payload == body
    if header is not None:
        assert headers[header[0]] == header[1]


@pytest.mark.parametrize("answer,status,body", [
    (["200 OK", base64.b64encode(b"\x00\x01binary").decode(), [["Content-Type", "image/png"]]], 200,
     b"\x00\x01binary"),
    (["404 Not Found"], 404, b""),
    (["418", base64.b64encode(b"tea").decode()], 418, b"tea"),
    (["200 OK", "not base64!"], 502, None),
    (["OK"], 502, None),
    ({"status": 200}, 502, None),
    (["200 OK", "", [["Bad\nHeader", "x"]]], 502, None),
    (["200 OK", "", [["X-Split", "a\r\nSet-Cookie: evil"]]], 502, None),
])
def test_raw_endpoint_answers(site: Site, answer: Any, status: int, body: bytes | None) -> None:
    site.routes.add_endpoint("agent.a", "/raw", "raw")
    site.caller.answers[("agent.a", "route.callback")] = lambda env, data: answer
    got, headers, payload = site.request("GET", "/raw")
    assert got == status
    if body is not None:
        assert payload == body
    assert "evil" not in json.dumps(headers)


def test_endpoint_failures(site: Site) -> None:
    site.routes.add_endpoint("agent.a", "/a", "jsonrpc")
    try:
        raise KeyError("secret internals")
    except KeyError as exc:
        error = jsonrpc.parse_response(exception_to_json(1, exc)).error
    for answer, status in ((ResultTimeout(1.0, "slow"), 504), (Unreachable(113, "x", "agent.a", "RPC"), 502),
                           (error, 500)):
        site.caller.answers[("agent.a", "route.callback")] = answer
        got, _, payload = site.request("GET", "/a")
        assert got == status and b"Traceback" not in payload and b"secret internals" not in payload
    site.caller.answers[("agent.a", "route.callback")] = {"ok": 1}
    assert site.request("POST", "/a", "{broken", content_type="application/json")[0] == 400
    assert site.request("POST", "/a", b"\xff\xfe")[0] == 400


def test_unexpected_failure_is_a_plain_500(site: Site) -> None:
    def explode(request: Any) -> dict:
        raise RuntimeError("internal detail")

    site.app._discovery = explode
    status, _, body = site.request("GET", "/discovery/")
    assert status == 500 and json.loads(body) == {"error": "internal server error"}


# -- routes and static files ------------------------------------------------------------------------

@pytest.fixture
def webroot(tmp_path: Path) -> Path:
    """agent.a's site, in its data folder under ``tmp_path / "home-dir"`` (agents serve only from there)."""
    root = tmp_path / "home-dir" / "agents" / "agent.a" / "data" / "site"
    (root / "app" / "css").mkdir(parents=True)
    (root / "app" / "index.html").write_text("<h1>home</h1>")
    (root / "app" / "css" / "s.css").write_text("body{}")
    (root / "app" / "data.bin").write_bytes(b"\x00\x01")
    (root / "app" / "data.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", root / "app" / "link.txt")
    return root


def test_static_files_with_content_types(tmp_path: Path, webroot: Path) -> None:
    home = tmp_path / "home-dir"
    home.mkdir(exist_ok=True)
    site = Site(home)
    site.routes.add_path_route("agent.a", r"^/app/", str(webroot))
    cases = {"/app/index.html": ("text/html; charset=utf-8", b"<h1>home</h1>"),
             "/app/": ("text/html; charset=utf-8", b"<h1>home</h1>"),
             "/app/css/s.css": ("text/css; charset=utf-8", b"body{}"),
             "/app/data.bin": ("application/octet-stream", b"\x00\x01"),
             "/app/data.json": ("application/json; charset=utf-8", b"{}")}
    for path, (kind, body) in cases.items():
        status, headers, payload = site.request("GET", path)
        assert (status, headers["Content-Type"], payload) == (200, kind, body), path
        assert headers["Content-Length"] == str(len(body)) and headers["X-Content-Type-Options"] == "nosniff"
    status, headers, payload = site.request("HEAD", "/app/index.html")
    assert status == 200 and payload == b"" and headers["Content-Length"] == "13"
    assert site.request("POST", "/app/index.html")[0] == 405
    assert site.request("GET", "/app/missing.html")[0] == 404
    assert site.request("GET", "/other/index.html")[0] == 404


def test_static_files_answer_conditional_and_range_requests(tmp_path: Path, webroot: Path) -> None:
    site = Site(tmp_path / "home-dir")
    site.routes.add_path_route("agent.a", r"^/app/", str(webroot))
    status, headers, _ = site.request("GET", "/app/index.html")
    assert status == 200 and headers["Accept-Ranges"] == "bytes" and "Last-Modified" in headers
    since = {"If-Modified-Since": headers["Last-Modified"]}
    assert site.request("GET", "/app/index.html", headers=since)[:3:2] == (304, b"")
    status, headers, payload = site.request("GET", "/app/index.html", headers={"Range": "bytes=4-8"})
    assert (status, payload, headers["Content-Range"]) == (206, b"home<", "bytes 4-8/13")
    assert site.request("GET", "/app/index.html", headers={"Range": "bytes=50-60"})[0] == 416
    # a path that stays inside the folder is normalised; one that climbs out is refused
    assert site.request("GET", "/app/css/../index.html")[::2] == (200, b"<h1>home</h1>")


@pytest.mark.parametrize("path", [
    "/app/../secret.txt", "/app/../../secret.txt", "/app/css/../../../secret.txt", "/app/link.txt",
    "/app/..", "/app/\x00x", "/app/..\\secret.txt", "/app//../secret.txt",
])
def test_static_traversal_refused(tmp_path: Path, webroot: Path, path: str) -> None:
    home = tmp_path / "home-dir"
    home.mkdir(exist_ok=True)
    site = Site(home)
    site.routes.add_path_route("agent.a", r"^/app", str(webroot))
    status, _, payload = site.request("GET", path)
    assert status == 404 and b"top secret" not in payload


def test_resolve_static_file_rules(webroot: Path) -> None:
    assert resolve_static_file(webroot, "/app/css/s.css") == (webroot / "app/css/s.css").resolve()
    assert resolve_static_file(webroot, "/app/nothing") is None
    for bad in ("/../x", "/app/../../x", "/a\x00", "/app/link.txt"):
        with pytest.raises(UnsafePath):
            resolve_static_file(webroot, bad)
    assert content_type(Path("x.js")).startswith(("text/javascript", "application/javascript"))


def test_route_table_rules(tmp_path: Path, webroot: Path) -> None:
    home = tmp_path / "home-dir"
    (home / "agents" / "agent.a" / "www").mkdir(parents=True)
    (home / "agents" / "agent.b" / "data").mkdir(parents=True)
    (home / "keystores").mkdir()
    routes = RouteTable(home)
    routes.add_endpoint("agent.a", "/a", "raw")
    routes.add_endpoint("agent.a", "/a", "jsonrpc")  # the owner may change it
    assert routes.endpoint("/a").res_type == "jsonrpc"
    refusals: list[tuple[Callable[[], Any], type[Exception]]] = [
        (lambda: routes.add_endpoint("agent.b", "/a"), DuplicateEndpointError),
        (lambda: routes.add_endpoint("agent.b", "/discovery/"), ReservedRouteError),
        (lambda: routes.add_endpoint("agent.b", "/jsonrpc/x"), ReservedRouteError),
        (lambda: routes.add_endpoint("agent.b", "/authenticate"), ReservedRouteError),
        (lambda: routes.add_endpoint("agent.b", "relative"), RouteError),
        (lambda: routes.add_endpoint("agent.b", "/b", "xml"), RouteError),
        (lambda: routes.add_path_route("agent.b", "(", str(webroot)), RouteError),
        (lambda: routes.add_path_route("agent.b", "^/(a+)+$", str(home / "agents" / "agent.b")), RouteError),
        (lambda: routes.add_path_route("agent.b", "^/b", str(webroot)), RouteError),  # agent.a's
        (lambda: routes.add_path_route("agent.b", "^/b", "/etc"), RouteError),
        (lambda: routes.add_path_route("agent.b", "^/b", "relative/dir"), RouteError),
        (lambda: routes.add_path_route("agent.b", "^/b", str(webroot / "missing")), RouteError),
        (lambda: routes.add_path_route("agent.b", "^/b", "/"), RouteError),
        (lambda: routes.add_path_route("agent.b", "^/b", str(tmp_path)), RouteError),  # holds the home
        (lambda: routes.add_path_route("agent.b", "^/b", str(home / "keystores")), RouteError),
        (lambda: routes.add_path_route("agent.b", "^/b", str(home / "agents" / "agent.a" / "www")),
         RouteError),
    ]
    for attempt, error in refusals:
        with pytest.raises(error):
            attempt()
    routes.add_path_route("agent.a", "^/own", str(home / "agents" / "agent.a" / "www"))
    routes.add_path_route("agent.b", "^/b", str(home / "agents" / "agent.b" / "data"))
    assert routes.path_route("/b/x").identity == "agent.b" and routes.path_route("/c") is None
    assert routes.statistics() == {"endpoints": 1, "path_routes": 2}
    assert routes.remove_identity("agent.a") == 2 and routes.endpoint("/a") is None
    assert routes.routes_of("agent.b") == {"endpoints": [], "paths": ["^/b"]}
