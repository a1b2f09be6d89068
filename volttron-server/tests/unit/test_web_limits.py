"""The web service's bounds without a network: route prefixes, URL owners, safe opens, login throttle,
and the limits file."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from volttron.server.services.web.access import allowed_roots
from volttron.server.services.web.errors import RouteError, RouteTakenError, WebConfigError
from volttron.server.services.web.http_messages import RequestTooLarge, WebRequest
from volttron.server.services.web.route_owners import EXACT, PREFIX, RouteOwners
from volttron.server.services.web.routes import RouteTable, route_prefix
from volttron.server.services.web.settings import WebSettings, parse_web_address
from volttron.server.services.web.static import UnsafePath, open_inside, serve_file
from volttron.server.services.web.throttle import FailureCounter, LoginLimits, LoginThrottle

# -- route patterns ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,expected", [
    ("^/vc/", ("/vc/", False)), ("^/vc/.*", ("/vc/", False)), ("/vc/(.*)$", ("/vc/", False)),
    ("^/vc/.+", ("/vc/", False)), (r"^/my\.agent/", ("/my.agent/", False)), ("^/status$", ("/status", True)),
    ("^/", ("/", False)),
])
def test_published_volttron_patterns_read_as_prefixes(pattern: str, expected: tuple[str, bool]) -> None:
    assert route_prefix(pattern) == expected


@pytest.mark.parametrize("pattern", [
    "^/(a+)+$", "^/(a|aa)*$", "^/x[ab]", "^/a{1,9}", "^/a?", r"^/(\w+)\1", "vc/", "", "^/" + "a" * 1001, 7,
    r"^/a\d",
])
def test_other_regular_expressions_are_refused(pattern: object) -> None:
    with pytest.raises(RouteError):
        route_prefix(pattern)


def test_the_longest_prefix_wins_and_matching_is_linear(tmp_path: Path) -> None:
    data = tmp_path / "agents" / "a" / "data"
    data.mkdir(parents=True)
    routes = RouteTable(tmp_path)
    routes.add_path_route("a", "^/app/", str(data))
    routes.add_path_route("a", "^/app/deep/", str(data))
    routes.add_path_route("a", "^/app/x$", str(data))
    assert routes.path_route("/app/deep/1").prefix == "/app/deep/"
    assert routes.path_route("/app/x").exact and routes.path_route("/app/xy").prefix == "/app/"
    started = time.monotonic()
    for _ in range(1000):
        routes.path_route("/" + "a" * 8000 + "!")
    assert time.monotonic() - started < 1.0


# -- allowed folders --------------------------------------------------------------------------------

def test_an_agent_may_serve_its_directory_and_its_package(tmp_path: Path) -> None:
    import yaml  # an installed distribution standing for the agent's package

    agent = tmp_path / "agents" / "pkg.agent"
    agent.mkdir(parents=True)
    (agent / "NAME").write_text("PyYAML")
    roots = allowed_roots(tmp_path, "pkg.agent")
    assert roots[0] == agent.resolve() and Path(yaml.__file__).resolve().parent in roots
    (tmp_path / "agents" / "linked").symlink_to("/")  # an agent directory made a link: nothing of it
    assert allowed_roots(tmp_path, "linked") == []
    assert allowed_roots(tmp_path, "../x") == [] and allowed_roots(tmp_path, ".hidden") == []


# -- URL owners -------------------------------------------------------------------------------------

def test_urls_belong_to_the_first_registrant_across_restarts(tmp_path: Path) -> None:
    file = tmp_path / "owners.json"
    owners = RouteOwners(file)
    owners.claim("victim", "/victim/", PREFIX, lambda who: False)
    for path, kind in (("/victim/", PREFIX), ("/victim/app.js", EXACT), ("/vic", PREFIX),
                       ("/victim/x/", PREFIX)):
        with pytest.raises(RouteTakenError, match="'victim'"):
            owners.claim("intruder", path, kind, lambda who: False)
    owners.claim("intruder", "/other/", PREFIX, lambda who: False)
    again = RouteOwners(file)  # a platform restart
    assert again.owner("/victim/app.js", EXACT) == "victim"
    with pytest.raises(RouteTakenError):
        again.claim("intruder", "/victim/", PREFIX, lambda who: False)
    again.claim("intruder", "/victim/", PREFIX, lambda who: who == "victim")  # gone for good: given up
    assert again.owner("/victim/", PREFIX) == "intruder" and again.claims_of("victim") == []
    assert json.loads(file.read_text())["claims"][-1]["identity"] == "intruder"


def test_an_agent_at_its_claim_limit_gives_up_urls_it_no_longer_serves(tmp_path: Path) -> None:
    (tmp_path / "agents" / "churn").mkdir(parents=True)
    routes = RouteTable(tmp_path)
    for i in range(200):  # one endpoint at a time, each a new URL
        routes.add_endpoint("churn", f"/churn/{i}")
        routes.remove_identity("churn")
    assert len(routes.owners.claims_of("churn")) <= 64
    for i in range(64):
        routes.add_endpoint("churn", f"/kept/{i}")
    with pytest.raises(RouteError, match="64 web routes"):
        routes.add_endpoint("churn", "/one/more")


def test_a_corrupt_owners_file_is_kept_aside(tmp_path: Path) -> None:
    file = tmp_path / "owners.json"
    file.write_text("{not json")
    assert len(RouteOwners(file)) == 0
    assert list(tmp_path.glob("owners.json.corrupt-*"))


# -- safe opens -------------------------------------------------------------------------------------

def test_hard_links_fifos_and_swapped_links_are_not_served(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("secret")
    os.link(secret, root / "hard")
    os.mkfifo(root / "fifo")
    (root / "plain.txt").write_text("plain")
    fd, size = open_inside(root, root / "plain.txt")
    os.close(fd)
    assert size == 5
    for name in ("hard", "fifo"):
        with pytest.raises(UnsafePath):
            open_inside(root, root / name)
        assert serve_file(root, f"/{name}", "GET").status_code == 404
    (root / "link").symlink_to(secret)  # swapped in after the check: the open does not follow it
    with pytest.raises(OSError):
        open_inside(root, root / "link")


# -- request bodies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("declared", [True, False])
def test_a_body_over_the_limit_is_refused_not_cut(declared: bool) -> None:
    """With Content-Length or chunked (the server terminates the stream): 413, never a cut body."""
    for size, fits in ((100, True), (101, False), (5000, False)):
        environ = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"x" * size), "SERVER_NAME": "h",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
        environ.update({"CONTENT_LENGTH": str(size)} if declared else {"wsgi.input_terminated": True})
        request = WebRequest(environ, max_body=100)
        if fits:
            assert request.body() == b"x" * size
        else:
            with pytest.raises(RequestTooLarge):
                request.body()


# -- login throttle ---------------------------------------------------------------------------------

def test_failures_are_counted_per_address_and_per_user_in_a_window() -> None:
    now = [0.0]
    limits = LoginLimits(per_address=3, per_user=5, window=60, max_tracked=100)
    throttle = LoginThrottle(limits, lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1", "alice") is None
        throttle.failed("10.0.0.1", "alice")
    assert throttle.retry_after("10.0.0.1", "bob") == 60
    assert throttle.retry_after("10.0.0.2", "alice") is None
    throttle.failed("10.0.0.2", "ALICE")
    throttle.failed("10.0.0.3", "alice")
    assert throttle.retry_after("10.0.0.4", "Alice") == 60  # five failures for the user name
    now[0] = 45.0
    assert throttle.retry_after("10.0.0.1", "carol") == 15
    now[0] = 61.0
    assert throttle.retry_after("10.0.0.1", "alice") is None


def test_counters_take_bounded_memory() -> None:
    counter = FailureCounter(limit=3, window=60, max_keys=1000)
    for i in range(100_000):
        counter.failed(f"user{i}")
    assert len(counter) == 1000


# -- limits file ------------------------------------------------------------------------------------

def test_limits_file_changes_limits_and_refuses_nonsense(tmp_path: Path) -> None:
    settings = WebSettings(parse_web_address("http://127.0.0.1:8080"))
    assert settings.with_limits_file(tmp_path / "missing.json") == settings
    file = tmp_path / "web-limits.json"
    file.write_text(json.dumps({"max_connections_per_address": 64, "header_timeout": 2.5}))
    changed = settings.with_limits_file(file)
    assert (changed.max_connections_per_address, changed.header_timeout) == (64, 2.5)
    for bad in ({"max_conections": 1}, {"header_timeout": -1}, {"max_connections_per_address": 1.5},
                {"login_window": "long"}, [1]):
        file.write_text(json.dumps(bad))
        with pytest.raises(WebConfigError):
            settings.with_limits_file(file)
