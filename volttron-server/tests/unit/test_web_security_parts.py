"""Web service building blocks without a network: settings, passwords, users, tokens, certificates."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from volttron.server.options import OptionsError, check_web_address
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.web import adduser
from volttron.server.services.web.certificates import WEB_SERVER_CERT, ensure_web_certificate
from volttron.server.services.web.errors import TokenError, WebConfigError, WebUserError
from volttron.server.services.web.passwords import hash_password, verify_password
from volttron.server.services.web.settings import WebSettings, parse_web_address
from volttron.server.services.web.tokens import TokenIssuer, load_or_create_secret
from volttron.server.services.web.users import WebUserStore, add_web_user, remove_web_user
from volttron.utils.certs import Certs

# -- addresses and settings --------------------------------------------------------------------------

@pytest.mark.parametrize("text,scheme,host,port", [
    ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080),
    ("https://example.org:8443/", "https", "example.org", 8443),
    ("https://[::1]:443", "https", "::1", 443),
    ("http://0.0.0.0:80", "http", "0.0.0.0", 80),
])
def test_web_address_parsed(text: str, scheme: str, host: str, port: int) -> None:
    address = parse_web_address(text)
    assert (address.scheme, address.host, address.port) == (scheme, host, port)
    assert check_web_address(text) == text


@pytest.mark.parametrize("text", [
    "tcp://127.0.0.1:80", "http://127.0.0.1", "http://:80", "https://host:0", "https://host:70000",
    "https://host:80/path", "https://user@host:80", "127.0.0.1:80", "https://host:port",
])
def test_bad_web_addresses_refused(text: str) -> None:
    with pytest.raises(WebConfigError):
        parse_web_address(text)
    with pytest.raises(OptionsError, match="bind-web-address"):
        check_web_address(text)


def test_settings_require_certificate_and_key_together() -> None:
    address = parse_web_address("https://127.0.0.1:8443")
    with pytest.raises(WebConfigError, match="together"):
        WebSettings(address, ssl_cert=Path("/c.pem"))
    with pytest.raises(WebConfigError, match="https"):
        WebSettings(parse_web_address("http://127.0.0.1:80"), ssl_cert=Path("/c"), ssl_key=Path("/k"))
    with pytest.raises(WebConfigError, match="16"):
        WebSettings(address, secret_key="short")
    settings = WebSettings(address, secret_key="a-long-enough-secret")
    assert settings.tls and "a-long-enough-secret" not in repr(settings)


# -- passwords and users ----------------------------------------------------------------------------

def test_password_hashes_are_salted_and_verify() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsE", first)


def test_pbkdf2_hashes_verify_and_damaged_hashes_never_match() -> None:
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", b"pw-12345", salt, 1000, 32)
    stored = f"pbkdf2_sha256$1000${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password("pw-12345", stored) and not verify_password("pw-12346", stored)
    for bad in ("", "plain", "scrypt$x$8$1$aa$bb", "scrypt$3$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$AAAA",
                "scrypt$16384$8$1$AAAA$", "argon2$v=19$...", "pbkdf2_sha256$0$AAAA$AAAA", None):
        assert not verify_password("anything", bad)  # type: ignore[arg-type]


def write_auth(home: Path, groups: dict, roles: dict) -> AuthPolicy:
    path = home / "auth.json"
    path.write_text(json.dumps({"allow": [], "deny": [], "groups": groups, "roles": roles}))
    return AuthPolicy(path)


def test_users_file_created_private_and_capabilities_expanded(tmp_path: Path) -> None:
    path = tmp_path / "web-users.json"
    policy = write_auth(tmp_path, {"operators": ["operate"]}, {"operate": ["start_agents", "read_status"]})
    add_web_user(path, "alice", "password-1", groups=["operators"],
                 capabilities={"edit_config_store": {"identity": "/listener.*/"}})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "password-1" not in path.read_text()
    store = WebUserStore(path, policy)
    assert store.names() == ["alice"]
    assert store.authenticate("alice", "password-1").name == "alice"
    assert store.authenticate("alice", "password-2") is None
    assert store.authenticate("mallory", "password-1") is None
    assert store.capabilities("alice") == {"start_agents": None, "read_status": None,
                                           "edit_config_store": {"identity": "/listener.*/"}}
    with pytest.raises(KeyError):
        store.capabilities("mallory")
    assert WebUserStore(path).capabilities("alice") == {"edit_config_store": {"identity": "/listener.*/"}}


def test_add_user_refusals_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "web-users.json"
    add_web_user(path, "bob", "password-1")
    with pytest.raises(WebUserError, match="exists"):
        add_web_user(path, "bob", "password-2")
    with pytest.raises(WebUserError, match="8 characters"):
        add_web_user(path, "carol", "short")
    with pytest.raises(WebUserError, match="user name"):
        add_web_user(path, "bad name!", "password-1")
    with pytest.raises(WebUserError, match="capabilit"):
        add_web_user(path, "dave", "password-1", capabilities={"x": 5})
    add_web_user(path, "bob", "password-2", replace=True)
    store = WebUserStore(path)
    assert store.authenticate("bob", "password-2") and not store.authenticate("bob", "password-1")
    assert remove_web_user(path, "bob") and not remove_web_user(path, "bob")
    assert store.get("bob") is None  # re-read after the change


def test_store_keeps_last_good_users_when_the_file_turns_corrupt(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "web-users.json"
    add_web_user(path, "alice", "password-1")
    store = WebUserStore(path)
    path.write_text("{ not json")
    assert store.get("alice") is not None
    assert "web users not changed" in caplog.text
    assert list(tmp_path.glob("web-users.json.corrupt*")), "the bad file is kept aside"
    path.write_text(json.dumps({"ok": {"password": hash_password("password-9")}, "bad": {"groups": []}}))
    assert store.names() == ["ok"]  # a record without a password hash is skipped


def test_adduser_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture) -> None:
    import io

    monkeypatch.setenv("VOLTTRON_HOME", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO("password-1\n"))
    code = adduser.main(["erin", "--password-stdin", "--group", "ops",
                         "--capability", "a", "--capability", 'b={"identity": "x"}'])
    assert code == 0 and "erin" in capsys.readouterr().out
    user = WebUserStore(tmp_path / "web-users.json").get("erin")
    assert user.groups == ("ops",) and user.capabilities == {"a": None, "b": {"identity": "x"}}
    monkeypatch.setattr("sys.stdin", io.StringIO("password-1\n"))
    assert adduser.main(["erin", "--password-stdin"]) == 1
    assert "exists" in capsys.readouterr().err
    assert adduser.main(["erin", "--capability", "b=[1]", "--password-stdin"]) == 1
    assert "JSON object" in capsys.readouterr().err
    assert adduser.main(["erin", "--remove"]) == 0
    assert adduser.main(["erin", "--remove"]) == 1


# -- tokens -----------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_verify_and_expire() -> None:
    clock = Clock()
    issuer = TokenIssuer(b"k" * 32, "inst", lifetime=60, clock=clock)
    token = issuer.issue("alice", {"groups": ["ops"]})
    claims = issuer.verify(token)
    assert claims["sub"] == "alice" and claims["groups"] == ["ops"] and claims["iss"] == "inst"
    assert claims["exp"] - claims["iat"] == 60
    clock.now += 60 + 31
    with pytest.raises(TokenError, match="expired"):
        issuer.verify(token)


def _encode(data: bytes) -> str:
    """base64url without padding, as JWT parts are written (to forge tokens by hand)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_forged_tokens_refused() -> None:
    issuer = TokenIssuer(b"k" * 32, "inst")
    token = issuer.issue("alice")
    head, body, sig = token.split(".")
    claims = json.loads(__import__("base64").urlsafe_b64decode(body + "=="))
    claims["sub"] = "root"
    forged_body = _encode(json.dumps(claims).encode())
    none_head = _encode(b'{"alg":"none","typ":"JWT"}')
    cases = {
        f"{head}.{forged_body}.{sig}": "signature",
        f"{none_head}.{body}.": "algorithm",
        f"{head}.{body}.{sig[:10]}{'B' if sig[10] == 'A' else 'A'}{sig[11:]}": "signature",
        "a.b": "malformed", "....": "malformed", "x" * 9000: "too long", "": "no token",
        TokenIssuer(b"o" * 32, "inst").issue("alice"): "signature",
        TokenIssuer(b"k" * 32, "other").issue("alice"): "another platform",
    }
    for bad, why in cases.items():
        with pytest.raises(TokenError, match=why):
            issuer.verify(bad)
    assert issuer.verify(token)["sub"] == "alice"


def test_secret_file_created_reused_and_repaired(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_or_create_secret(tmp_path, "configured-secret-value") == b"configured-secret-value"
    assert not (tmp_path / "web-secret-key").exists()
    first = load_or_create_secret(tmp_path)
    path = tmp_path / "web-secret-key"
    assert len(first) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(tmp_path) == first
    os.chmod(path, 0o644)
    assert load_or_create_secret(tmp_path) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and "readable by others" in caplog.text
    path.write_text("damaged")
    replaced = load_or_create_secret(tmp_path)
    assert replaced != first and len(replaced) == 32
    assert list(tmp_path.glob("web-secret-key.corrupt*"))


# -- certificates -----------------------------------------------------------------------------------

def test_server_certificate_issued_by_platform_ca_and_reused(tmp_path: Path) -> None:
    address = parse_web_address("https://127.0.0.1:8443")
    cert_path, key_path = ensure_web_certificate(tmp_path, "inst", address)
    certs = Certs(tmp_path / "certificates", "inst")
    cert = certs.cert(WEB_SERVER_CERT)
    certs.verify(cert, purpose="server")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ssl.create_default_context(cafile=str(certs.trusted_ca_bundle_path))  # a usable CA bundle
    ensure_web_certificate(tmp_path, "inst", address)
    assert certs.cert(WEB_SERVER_CERT).serial_number == cert.serial_number, "reused while it fits"
    ensure_web_certificate(tmp_path, "inst", parse_web_address("https://web.example.org:8443"))
    renewed = certs.cert(WEB_SERVER_CERT)
    assert renewed.serial_number != cert.serial_number
    names = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["web.example.org"]
    assert cert_path == certs.cert_path(WEB_SERVER_CERT)
    assert key_path == certs.private_key_path(WEB_SERVER_CERT)


# -- options and the TLS context --------------------------------------------------------------------

def test_web_options_from_the_config_file_and_command_line(tmp_path: Path) -> None:
    from volttron.server.main import default_services
    from volttron.server.options import parse_options

    (tmp_path / "config").write_text("[volttron]\nbind-web-address = https://127.0.0.1:8443\n"
                                     "web-ssl-cert = /etc/web.crt\nweb-ssl-key = /etc/web.key\n"
                                     "web-secret-key = a-secret-from-the-file\n")
    env = {"VOLTTRON_HOME": str(tmp_path)}
    options = parse_options([], env=env)
    assert (options.bind_web_address, options.web_ssl_cert, options.web_ssl_key) == (
        "https://127.0.0.1:8443", "/etc/web.crt", "/etc/web.key")
    assert options.web_secret_key == "a-secret-from-the-file" and "a-secret" not in repr(options)
    assert options.notes == ()
    settings = WebSettings.from_options(options)
    assert settings.ssl_cert == Path("/etc/web.crt") and settings.secret_key == "a-secret-from-the-file"
    options = parse_options(["--bind-web-address", "http://127.0.0.1:8080", "--web-secret-key",
                             "command-line-secret"], env=env)
    assert options.bind_web_address == "http://127.0.0.1:8080"
    assert options.web_secret_key == "command-line-secret"
    with pytest.raises(WebConfigError, match="https"):
        WebSettings.from_options(options)  # a certificate from the file, but plain http
    with pytest.raises(OptionsError):
        parse_options(["--bind-web-address", "127.0.0.1:8080"], env=env)
    other = {"VOLTTRON_HOME": str(tmp_path / "other")}
    without = default_services(parse_options([], env=other))
    with_web = default_services(parse_options(["--bind-web-address", "http://127.0.0.1:1"], env=other))
    assert len(with_web) == len(without) + 1


def test_tls_context_from_given_files_and_mismatched_ones(tmp_path: Path) -> None:
    from volttron.server.services.web.service import make_ssl_context

    certs = Certs(tmp_path / "certificates", "inst")
    certs.create_root_ca()
    certs.create_server_cert("one", ip_addresses=["127.0.0.1"])
    certs.create_server_cert("two", ip_addresses=["127.0.0.1"])
    assert make_ssl_context(certs.cert_path("one"), certs.private_key_path("one")).minimum_version == \
        ssl.TLSVersion.TLSv1_2
    with pytest.raises(WebConfigError, match="cannot use web certificate"):
        make_ssl_context(certs.cert_path("one"), certs.private_key_path("two"))
    with pytest.raises(WebConfigError, match="cannot use web certificate"):
        make_ssl_context(tmp_path / "missing.crt", tmp_path / "missing.key")
