"""The certificate authority: layout, issuing, CSRs, bundles and verification (also by openssl)."""

from __future__ import annotations

import shutil
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from volttron.utils.certs import Certs, load_certificate, verify_certificate
from volttron.utils.errors import CertificateError, VolttronError

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl binary is not installed")
NOW = datetime.now(timezone.utc)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """One CA with a server and a client certificate, shared by the read-only tests (RSA keys are slow)."""
    certs = Certs(tmp_path_factory.mktemp("certificates"), "volttron1")
    certs.create_root_ca()
    certs.create_server_cert("volttron1-server", dns_names=["localhost", "host.example"],
                             ip_addresses=["127.0.0.1", "::1"])
    certs.create_client_cert("volttron1.listener")
    return certs


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Another instance's CA, EC keys, with a server certificate."""
    certs = Certs(tmp_path_factory.mktemp("foreign"), "other", key_type="ec")
    certs.create_root_ca()
    certs.create_server_cert("other-server", dns_names=["localhost"])
    return certs


def _openssl_verify(ca_file: Path, cert_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, "verify", *extra, "-CAfile", str(ca_file), str(cert_file)],
                          capture_output=True, text=True, timeout=30, check=False)


def test_layout_and_modes(ca: Certs) -> None:
    d = ca.directory
    assert ca.root_ca_name == "volttron1-root-ca"
    for name in ("volttron1-root-ca", "volttron1-server", "volttron1.listener"):
        assert (d / "certs" / f"{name}.crt").is_file()
        key = d / "private" / f"{name}.pem"
        assert _mode(key) == 0o600
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _mode(d / "private") == 0o700
    assert (d / "certs" / "volttron1-trusted-cas.crt").is_file()
    assert (d / "ca_db" / "volttron1-root-ca-cadb.json").is_file()
    issued = ca.issued()
    assert int((d / "volttron1-root-ca-serial").read_text(), 16) == len(issued) + 1  # serials 1, 2, ...
    assert {v["name"] for v in issued.values()} >= {"volttron1-server", "volttron1.listener"}
    assert {v["purpose"] for v in issued.values() if v["name"] == "volttron1-server"} == {"server"}


def test_root_ca_properties(ca: Certs) -> None:
    root = ca.ca_cert()
    assert _cn(root) == "volttron1-root-ca"
    assert root.issuer == root.subject
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    key = ca.private_key(ca.root_ca_name)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert timedelta(days=3649) < lifetime < timedelta(days=3651)


def test_server_cert_properties(ca: Certs) -> None:
    cert = ca.cert("volttron1-server")
    assert _cn(cert) == "localhost"
    assert cert.issuer == ca.ca_cert().subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "host.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    ca.verify("volttron1-server", purpose="server")


def test_client_cert_cn_is_fq_identity(ca: Certs) -> None:
    cert = ca.cert("volttron1.listener")
    assert _cn(cert) == "volttron1.listener"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca.verify(cert, purpose="client")


@needs_openssl
def test_openssl_accepts_our_certificates(ca: Certs) -> None:
    ca_file = ca.cert_path(ca.root_ca_name)
    result = _openssl_verify(ca_file, ca.cert_path("volttron1-server"), "-purpose", "sslserver")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    result = _openssl_verify(ca.trusted_ca_bundle_path, ca.cert_path("volttron1.listener"),
                             "-purpose", "sslclient")
    assert result.returncode == 0, result.stderr


@needs_openssl
def test_openssl_rejects_wrong_purpose_and_foreign_ca(ca: Certs, foreign: Certs) -> None:
    result = _openssl_verify(ca.cert_path(ca.root_ca_name), ca.cert_path("volttron1.listener"),
                             "-purpose", "sslserver")
    assert result.returncode != 0
    result = _openssl_verify(ca.cert_path(ca.root_ca_name), foreign.cert_path("other-server"))
    assert result.returncode != 0
    assert "unable to get local issuer certificate" in result.stdout + result.stderr


@needs_openssl
def test_openssl_rejects_expired(ca: Certs, tmp_path: Path) -> None:
    expired = ca.create_client_cert("expired-for-openssl", valid_from=NOW - timedelta(days=20), valid_days=10)
    path = tmp_path / "expired.crt"
    path.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    result = _openssl_verify(ca.cert_path(ca.root_ca_name), path)
    assert result.returncode != 0
    assert "expired" in result.stdout + result.stderr


def test_expired_and_not_yet_valid(ca: Certs) -> None:
    expired = ca.create_client_cert("expired", valid_from=NOW - timedelta(days=20), valid_days=10)
    with pytest.raises(CertificateError, match="expired"):
        ca.verify(expired)
    with pytest.raises(CertificateError, match="expired"):
        ca.verify("volttron1.listener", at=NOW + timedelta(days=4000))
    ca.verify("volttron1.listener", at=NOW + timedelta(days=3000))
    future = ca.create_client_cert("future", valid_from=NOW + timedelta(days=10))
    with pytest.raises(CertificateError, match="not valid before"):
        ca.verify(future)


def test_foreign_ca_rejected(ca: Certs, foreign: Certs) -> None:
    with pytest.raises(CertificateError, match="not a trusted CA") as info:
        ca.verify(foreign.cert("other-server"))
    assert isinstance(info.value, VolttronError)
    foreign.verify("other-server", purpose="server")
    with pytest.raises(CertificateError, match="not a trusted CA"):
        foreign.verify(ca.cert("volttron1-server"))


def test_same_named_foreign_ca_rejected(ca: Certs, tmp_path: Path) -> None:
    impostor = Certs(tmp_path, "volttron1", key_type="ec")
    impostor.create_root_ca()
    fake = impostor.create_server_cert("volttron1-server", dns_names=["localhost"])
    assert fake.issuer == ca.ca_cert().subject
    with pytest.raises(CertificateError, match="does not verify against the trusted CA"):
        ca.verify(fake)


def test_wrong_key_usage(ca: Certs) -> None:
    with pytest.raises(CertificateError, match="not for server authentication"):
        ca.verify("volttron1.listener", purpose="server")
    with pytest.raises(CertificateError, match="not for client authentication"):
        ca.verify("volttron1-server", purpose="client")


def _handmade(issuer_cert: x509.Certificate | None, issuer_key, *, ca: bool = False, key_usage=None,
              cn: str = "handmade") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer_key or key, hashes.SHA256()), key


def _usage(**flags) -> x509.KeyUsage:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def test_leaf_without_digital_signature_rejected(ca: Certs) -> None:
    cert, _ = _handmade(ca.ca_cert(), ca.private_key(ca.root_ca_name),
                        key_usage=_usage(key_encipherment=True))
    ca.verify(cert)  # chains fine
    with pytest.raises(CertificateError, match="does not allow digital signatures"):
        ca.verify(cert, purpose="server")


def test_issuer_that_is_not_a_ca_rejected() -> None:
    root, root_key = _handmade(None, None, ca=True, key_usage=_usage(key_cert_sign=True), cn="root")
    not_ca, not_ca_key = _handmade(root, root_key, ca=False, cn="leaf-as-issuer")
    victim, _ = _handmade(not_ca, not_ca_key, cn="victim")
    verify_certificate(not_ca, [root])
    with pytest.raises(CertificateError, match="may not sign certificates"):
        verify_certificate(victim, [root], intermediates=[not_ca])
    no_sign, no_sign_key = _handmade(root, root_key, ca=True, key_usage=_usage(digital_signature=True),
                                     cn="ca-without-certsign")
    victim2, _ = _handmade(no_sign, no_sign_key, cn="victim2")
    with pytest.raises(CertificateError, match="may not sign certificates"):
        verify_certificate(victim2, [root], intermediates=[no_sign])


def test_intermediate_chain() -> None:
    root, root_key = _handmade(None, None, ca=True, key_usage=_usage(key_cert_sign=True), cn="root")
    mid, mid_key = _handmade(root, root_key, ca=True, key_usage=_usage(key_cert_sign=True), cn="mid")
    leaf, _ = _handmade(mid, mid_key, cn="leaf")
    verify_certificate(leaf, [root], intermediates=[mid])
    with pytest.raises(CertificateError, match="not a trusted CA"):
        verify_certificate(leaf, [root])
    verify_certificate(root, [root])


def test_csr_flow(tmp_path: Path, ca: Certs) -> None:
    requester = Certs(tmp_path, "remote")
    csr_pem = requester.create_csr("remote-server", "remote.example", dns_names=["remote.example"],
                                   ip_addresses=["10.0.0.5"])
    assert _mode(requester.private_key_path("remote-server")) == 0o600
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    cert_pem = ca.sign_csr(csr_pem, purpose="server")
    cert = requester.save_cert("remote-server", cert_pem)
    assert _cn(cert) == "remote.example"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["remote.example"]
    ca.verify(cert, purpose="server")
    # the requester trusts our CA once it is added
    requester.add_trusted_ca("volttron1", ca.cert_path(ca.root_ca_name).read_bytes())
    requester.verify("remote-server", purpose="server")
    bundle = requester.trusted_ca_bundle_path.read_bytes()
    assert bundle.count(b"BEGIN CERTIFICATE") == 1


def test_csr_without_san_for_server_gets_cn(ca: Certs, tmp_path: Path) -> None:
    pem = Certs(tmp_path, "r").create_csr("x", "only-cn.example")
    cert = x509.load_pem_x509_certificate(ca.sign_csr(pem, purpose="server"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["only-cn.example"]


def test_sign_csr_rejects_bad_requests(ca: Certs) -> None:
    with pytest.raises(CertificateError, match="not a PEM certificate request"):
        ca.sign_csr(b"garbage")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
           .sign(weak, hashes.SHA256()))
    with pytest.raises(CertificateError, match="too small"):
        ca.sign_csr(csr.public_bytes(serialization.Encoding.PEM))
    no_cn = (x509.CertificateSigningRequestBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org")]))
             .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    with pytest.raises(CertificateError, match="no common name"):
        ca.sign_csr(no_cn.public_bytes(serialization.Encoding.PEM))
    good = (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    with pytest.raises(CertificateError, match="purpose"):
        ca.sign_csr(good.public_bytes(serialization.Encoding.PEM), purpose="email")  # type: ignore[arg-type]


def test_save_cert_must_match_key(ca: Certs, tmp_path: Path) -> None:
    requester = Certs(tmp_path, "remote")
    requester.create_csr("mine", "mine")
    with pytest.raises(CertificateError, match="does not match"):
        requester.save_cert("mine", ca.cert_path("volttron1-server").read_bytes())
    with pytest.raises(CertificateError, match="cannot read"):
        requester.save_cert("mine", b"not a cert")


def test_refuses_to_replace_ca_and_needs_one(tmp_path: Path) -> None:
    certs = Certs(tmp_path, "v", key_type="ec")
    with pytest.raises(CertificateError, match="no root CA"):
        certs.create_client_cert("early")
    first = certs.create_root_ca()
    with pytest.raises(CertificateError, match="exists"):
        certs.create_root_ca()
    second = certs.create_root_ca(overwrite=True)
    assert first.serial_number != second.serial_number
    assert certs.ca_cert() == second


def test_leaf_never_outlives_ca(tmp_path: Path) -> None:
    certs = Certs(tmp_path, "short", key_type="ec")
    root = certs.create_root_ca(valid_days=30)
    leaf = certs.create_client_cert("c", valid_days=3650)
    assert leaf.not_valid_after_utc == root.not_valid_after_utc


def test_add_trusted_ca_requires_ca(ca: Certs, tmp_path: Path) -> None:
    certs = Certs(tmp_path, "t", key_type="ec")
    with pytest.raises(CertificateError, match="not a CA"):
        certs.add_trusted_ca("x", ca.cert_path("volttron1-server").read_bytes())
    certs.add_trusted_ca("volttron1", ca.cert_path(ca.root_ca_name).read_bytes())
    certs.create_root_ca()
    assert certs.trusted_ca_bundle_path.read_bytes().count(b"BEGIN CERTIFICATE") == 2
    certs.verify(ca.cert("volttron1-server"), purpose="server")


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 201, "sp ace"])
def test_bad_names_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(CertificateError, match="certificate name"):
        Certs(tmp_path, name)
    with pytest.raises(CertificateError, match="certificate name"):
        Certs(tmp_path, "ok").cert_path(name)


def test_loading_errors(tmp_path: Path) -> None:
    certs = Certs(tmp_path, "v")
    with pytest.raises(CertificateError, match="no certificate"):
        certs.cert("missing")
    with pytest.raises(CertificateError, match="no private key"):
        certs.private_key("missing")
    (tmp_path / "certs").mkdir()
    bad = "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"
    (tmp_path / "certs" / "bad.crt").write_text(bad)
    with pytest.raises(CertificateError, match="cannot read"):
        load_certificate(tmp_path / "certs" / "bad.crt")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "bad.pem").write_text("nope")
    with pytest.raises(CertificateError, match="cannot read private key"):
        certs.private_key("bad")
    with pytest.raises(CertificateError, match="key type"):
        Certs(tmp_path, "v", key_type="dsa")  # type: ignore[arg-type]


def test_bad_subject_values(ca: Certs) -> None:
    with pytest.raises(CertificateError, match="not an IP address"):
        ca.create_server_cert("bad-ip", ip_addresses=["999.1.1.1"])
    with pytest.raises(CertificateError, match="common name"):
        ca.create_client_cert("long-cn", common_name="x" * 65)


def test_corrupt_serial_file(tmp_path: Path) -> None:
    certs = Certs(tmp_path, "s", key_type="ec")
    certs.create_root_ca()
    certs.serial_path.write_text("zz")
    with pytest.raises(CertificateError, match="serial file"):
        certs.create_client_cert("c")
