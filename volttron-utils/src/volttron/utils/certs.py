"""An instance's certificate authority and certificates (docs/protocol.md §6.2), built on ``cryptography``.

The certificates directory (``$VOLTTRON_HOME/certificates``) is laid out as the original platform's::

    certs/<name>.crt               certificates (PEM), and <instance>-trusted-cas.crt, the CA bundle
    private/<name>.pem             private keys (PKCS#8 PEM, mode 0600, folder 0700)
    ca_db/<instance>-root-ca-cadb.json   what the root CA issued, by serial number
    <instance>-root-ca-serial      the next serial number (hex)
    remote_certs/<name>.crt        CA certificates of other instances we trust

Keys are RSA 2048 (the default, for the widest compatibility) or EC P-256, signed with SHA-256.
:class:`Certs` makes the root CA (``<instance>-root-ca``), server certificates with a subject
alternative name, client certificates (CN ``<instance>.<identity>`` for agents), signs certificate
requests, and verifies certificates against the trusted CAs with :func:`verify_certificate`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from volttron.utils.errors import CertificateError
from volttron.utils.files import atomic_write, read_json_file, write_json_file
from volttron.utils.time import get_aware_utc_now, to_aware

KeyType = Literal["rsa", "ec"]
Purpose = Literal["client", "server"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

DEFAULT_VALID_DAYS = 3650
RSA_KEY_SIZE = 2048
CLOCK_SKEW = timedelta(minutes=5)
"""New certificates start this long before now, so hosts with slightly slow clocks accept them."""
MAX_CHAIN_DEPTH = 4

_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}")
_PURPOSE_OIDS = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


class Certs:
    """The certificates directory of one platform instance: its root CA and what it issued."""

    def __init__(self, directory: str | Path, instance_name: str, *, key_type: KeyType = "rsa") -> None:
        if key_type not in ("rsa", "ec"):
            raise CertificateError(f"key type must be 'rsa' or 'ec', not {key_type!r}")
        self.directory = Path(directory)
        self.instance_name = _check_name(instance_name)
        self.key_type: KeyType = key_type

    # -- names and paths ------------------------------------------------------------------------

    @property
    def root_ca_name(self) -> str:
        """``<instance>-root-ca``."""
        return f"{self.instance_name}-root-ca"

    @property
    def trusted_cas_name(self) -> str:
        """``<instance>-trusted-cas``, the name of the CA bundle."""
        return f"{self.instance_name}-trusted-cas"

    def cert_path(self, name: str) -> Path:
        """``certs/<name>.crt``."""
        return self.directory / "certs" / f"{_check_name(name)}.crt"

    def private_key_path(self, name: str) -> Path:
        """``private/<name>.pem``."""
        return self.directory / "private" / f"{_check_name(name)}.pem"

    @property
    def trusted_ca_bundle_path(self) -> Path:
        """``certs/<instance>-trusted-cas.crt``: our root CA and the remote CAs we trust, in PEM."""
        return self.cert_path(self.trusted_cas_name)

    @property
    def ca_db_path(self) -> Path:
        """``ca_db/<instance>-root-ca-cadb.json``."""
        return self.directory / "ca_db" / f"{self.root_ca_name}-cadb.json"

    @property
    def serial_path(self) -> Path:
        """``<instance>-root-ca-serial``: the next serial number the CA gives out."""
        return self.directory / f"{self.root_ca_name}-serial"

    def cert_exists(self, name: str) -> bool:
        """True when ``certs/<name>.crt`` exists."""
        return self.cert_path(name).exists()

    def ca_exists(self) -> bool:
        """True when the root CA's certificate and key both exist."""
        return self.cert_exists(self.root_ca_name) and self.private_key_path(self.root_ca_name).exists()

    # -- loading --------------------------------------------------------------------------------

    def cert(self, name: str) -> x509.Certificate:
        """The certificate ``name``; :class:`CertificateError` when missing or unreadable."""
        return load_certificate(self.cert_path(name))

    def private_key(self, name: str) -> PrivateKey:
        """The private key ``name``; :class:`CertificateError` when missing or unreadable."""
        path = self.private_key_path(name)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise CertificateError(f"no private key {path}") from None
        except (ValueError, TypeError) as exc:
            raise CertificateError(f"cannot read private key {path}: {exc}") from None
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise CertificateError(f"private key {path} is neither RSA nor EC")
        return key

    def ca_cert(self) -> x509.Certificate:
        """The root CA's certificate."""
        return self.cert(self.root_ca_name)

    def trusted_cas(self) -> list[x509.Certificate]:
        """Our root CA (when made) and every CA added with :meth:`add_trusted_ca`."""
        cas = [self.ca_cert()] if self.cert_exists(self.root_ca_name) else []
        remote = self.directory / "remote_certs"
        if remote.is_dir():
            cas.extend(load_certificate(path) for path in sorted(remote.glob("*.crt")))
        return cas

    def issued(self) -> dict[str, dict[str, str]]:
        """What the root CA issued: serial (hex) -> name, common name, purpose, expiry."""
        issued: dict[str, dict[str, str]] = read_json_file(self.ca_db_path, {}, expect=dict)
        return issued

    # -- creating -------------------------------------------------------------------------------

    def create_root_ca(self, *, valid_days: int = DEFAULT_VALID_DAYS, organization: str = "VOLTTRON",
                       overwrite: bool = False) -> x509.Certificate:
        """Make the self-signed root CA ``<instance>-root-ca`` and write the CA bundle.

        An existing CA is replaced only with ``overwrite=True``: every certificate it signed stops
        verifying.
        """
        if self.ca_exists() and not overwrite:
            raise CertificateError(f"root CA {self.cert_path(self.root_ca_name)} exists; pass overwrite=True "
                                   "to replace it (its certificates will no longer verify)")
        key = self._new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.root_ca_name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
        start = get_aware_utc_now() - CLOCK_SKEW
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True, rsa_key=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        self._save_key(self.root_ca_name, key)
        self._save_cert(self.root_ca_name, cert)
        self.write_trusted_ca_bundle()
        return cert

    def create_server_cert(self, name: str, *, dns_names: Sequence[str] = (),
                           ip_addresses: Sequence[str] = (), common_name: str | None = None,
                           valid_days: int = DEFAULT_VALID_DAYS,
                           valid_from: datetime | None = None) -> x509.Certificate:
        """A new key and CA-signed server certificate ``name`` for the given host names and addresses.

        The common name defaults to the first DNS name (or address, or ``name``); with no names at
        all the common name is also the subject alternative name.
        """
        cn = common_name or next(iter([*dns_names, *ip_addresses]), name)
        key = self._new_key()
        san = _subject_alt_names(dns_names or ([] if ip_addresses else [cn]), ip_addresses)
        cert = self._issue(_cn_name(cn), key.public_key(), "server", san, name, valid_days, valid_from)
        self._save_key(name, key)
        self._save_cert(name, cert)
        return cert

    def create_client_cert(self, name: str, *, common_name: str | None = None,
                           valid_days: int = DEFAULT_VALID_DAYS,
                           valid_from: datetime | None = None) -> x509.Certificate:
        """A new key and CA-signed client certificate ``name``; the common name defaults to ``name``.

        For an agent, ``name`` is its fully qualified identity ``<instance>.<identity>``.
        """
        key = self._new_key()
        cert = self._issue(_cn_name(common_name or name), key.public_key(), "client", None, name,
                           valid_days, valid_from)
        self._save_key(name, key)
        self._save_cert(name, cert)
        return cert

    def create_csr(self, name: str, common_name: str, *, dns_names: Sequence[str] = (),
                   ip_addresses: Sequence[str] = ()) -> bytes:
        """A certificate signing request (PEM) for a new key, which is kept as ``private/<name>.pem``.

        Send it to the CA (:meth:`sign_csr`) and store the answer with :meth:`save_cert`.
        """
        key = self._new_key()
        builder = x509.CertificateSigningRequestBuilder().subject_name(_cn_name(common_name))
        if dns_names or ip_addresses:
            builder = builder.add_extension(_subject_alt_names(dns_names, ip_addresses), critical=False)
        csr = builder.sign(key, hashes.SHA256())
        self._save_key(name, key)
        return csr.public_bytes(serialization.Encoding.PEM)

    def sign_csr(self, csr_pem: bytes, *, purpose: Purpose = "client", valid_days: int = DEFAULT_VALID_DAYS,
                 valid_from: datetime | None = None) -> bytes:
        """Sign a certificate request with the root CA and return the certificate (PEM).

        Only the request's common name and subject alternative names are taken; the CA decides
        every other extension from ``purpose``.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CertificateError(f"not a PEM certificate request: {exc}") from None
        if not csr.is_signature_valid:
            raise CertificateError("certificate request signature does not verify")
        cn = _common_name(csr.subject)
        if not cn:
            raise CertificateError("certificate request has no common name")
        requested = _extension(csr, x509.SubjectAlternativeName)
        san: x509.SubjectAlternativeName | None
        if requested is not None:
            kept = [n for n in requested if isinstance(n, (x509.DNSName, x509.IPAddress))]
            san = x509.SubjectAlternativeName(kept)
        else:
            san = _subject_alt_names([cn], []) if purpose == "server" else None
        cert = self._issue(_cn_name(cn), csr.public_key(), purpose, san, cn, valid_days, valid_from)
        return cert.public_bytes(serialization.Encoding.PEM)

    def save_cert(self, name: str, cert_pem: bytes) -> x509.Certificate:
        """Store a certificate received from a CA as ``certs/<name>.crt``.

        When ``private/<name>.pem`` exists, the certificate must be for that key.
        """
        cert = _parse_certificate(cert_pem, f"certificate for {name}")
        if self.private_key_path(name).exists():
            mine = self.private_key(name).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            theirs = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if mine != theirs:
                raise CertificateError(f"certificate for {name} does not match {self.private_key_path(name)}")
        self._save_cert(name, cert)
        return cert

    def add_trusted_ca(self, name: str, cert_pem: bytes) -> x509.Certificate:
        """Trust another instance's CA: store it as ``remote_certs/<name>.crt`` and rewrite the bundle."""
        cert = _parse_certificate(cert_pem, f"CA certificate {name}")
        if not _is_ca(cert):
            raise CertificateError(f"certificate {name} is not a CA certificate")
        folder = self.directory / "remote_certs"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{_check_name(name)}.crt", cert.public_bytes(serialization.Encoding.PEM))
        self.write_trusted_ca_bundle()
        return cert

    def write_trusted_ca_bundle(self) -> Path:
        """Write ``certs/<instance>-trusted-cas.crt`` from :meth:`trusted_cas` and return its path."""
        pem = b"".join(ca.public_bytes(serialization.Encoding.PEM) for ca in self.trusted_cas())
        path = self.trusted_ca_bundle_path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, pem)
        return path

    def verify(self, cert: x509.Certificate | str, *, purpose: Purpose | None = None,
               at: datetime | None = None) -> None:
        """Check ``cert`` (or the one named so) against the trusted CAs with :func:`verify_certificate`."""
        if isinstance(cert, str):
            cert = self.cert(cert)
        verify_certificate(cert, self.trusted_cas(), purpose=purpose, at=at)

    # -- internals ------------------------------------------------------------------------------

    def _new_key(self) -> PrivateKey:
        if self.key_type == "ec":
            return ec.generate_private_key(ec.SECP256R1())
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)

    def _issue(self, subject: x509.Name, public_key: CertificatePublicKeyTypes, purpose: Purpose,
               san: x509.SubjectAlternativeName | None, name: str, valid_days: int,
               valid_from: datetime | None) -> x509.Certificate:
        if purpose not in _PURPOSE_OIDS:
            raise CertificateError(f"purpose must be 'client' or 'server', not {purpose!r}")
        if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise CertificateError("only RSA and EC keys can be certified")
        if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < RSA_KEY_SIZE:
            raise CertificateError(f"RSA key of {public_key.key_size} bits is too small "
                                   f"({RSA_KEY_SIZE} needed)")
        if not self.ca_exists():
            raise CertificateError(f"no root CA in {self.directory}; create it first")
        ca_cert, ca_key = self.ca_cert(), self.private_key(self.root_ca_name)
        start = to_aware(valid_from) if valid_from is not None else get_aware_utc_now() - CLOCK_SKEW
        # A certificate cannot usefully outlive the CA that signed it.
        end = min(start + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        serial = self._next_serial()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False, rsa_key=isinstance(public_key, rsa.RSAPublicKey)),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([_PURPOSE_OIDS[purpose]]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        issued = self.issued()
        issued[format(serial, "x")] = {"name": name, "common_name": _common_name(subject) or "",
                                       "purpose": purpose, "not_after": end.isoformat()}
        self.ca_db_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_file(self.ca_db_path, issued)
        return cert

    def _next_serial(self) -> int:
        path = self.serial_path
        try:
            serial = int(path.read_text().strip(), 16)
        except FileNotFoundError:
            serial = 1
        except ValueError:
            raise CertificateError(f"serial file {path} does not hold a hexadecimal number") from None
        atomic_write(path, f"{serial + 1:x}\n")
        return serial

    def _save_key(self, name: str, key: PrivateKey) -> None:
        path = self.private_key_path(name)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        atomic_write(path, pem, 0o600)

    def _save_cert(self, name: str, cert: x509.Certificate) -> None:
        path = self.cert_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, cert.public_bytes(serialization.Encoding.PEM))


def load_certificate(path: str | Path) -> x509.Certificate:
    """The first certificate in the PEM file ``path``; :class:`CertificateError` naming it otherwise."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"no certificate {path}") from None
    return _parse_certificate(data, str(path))


def _parse_certificate(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"cannot read {what}: {exc}") from None


def verify_certificate(cert: x509.Certificate, trusted: Iterable[x509.Certificate], *,
                       intermediates: Iterable[x509.Certificate] = (), purpose: Purpose | None = None,
                       at: datetime | None = None) -> None:
    """Raise :class:`CertificateError` unless ``cert`` chains to one of ``trusted`` and is usable.

    Every certificate on the chain must be valid at ``at`` (default now) and correctly signed by
    the next, every issuer must be a CA allowed to sign certificates, and with ``purpose`` the leaf
    must allow digital signatures and, when it names extended key usages, that purpose.
    """
    when = to_aware(at) if at is not None else get_aware_utc_now()
    roots, others = list(trusted), list(intermediates)
    if purpose is not None:
        _check_leaf_usage(cert, purpose)
    current = cert
    for _ in range(MAX_CHAIN_DEPTH + 1):
        _check_time(current, when)
        if any(current == root for root in roots):
            return
        issuer = _find_issuer(current, roots)
        if issuer is not None:
            _check_time(issuer, when)
            return
        issuer = _find_issuer(current, others)
        if issuer is None:
            raise CertificateError(f"certificate {_describe(current)} was issued by "
                                   f"{current.issuer.rfc4514_string()}, which is not a trusted CA")
        current = issuer
    raise CertificateError(f"certificate chain of {_describe(cert)} is longer than {MAX_CHAIN_DEPTH}")


def _find_issuer(cert: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    """The candidate that signed ``cert``; raises when a same-named CA's signature does not match."""
    named = [c for c in candidates if c.subject == cert.issuer]
    for candidate in named:
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if not _is_ca(candidate, require_key_cert_sign=True):
            raise CertificateError(f"{_describe(candidate)} signed {_describe(cert)} "
                                   "but may not sign certificates")
        return candidate
    if named:
        raise CertificateError(f"signature of {_describe(cert)} does not verify against the trusted CA "
                               f"{cert.issuer.rfc4514_string()} (signed by a different CA of the same name)")
    return None


def _check_time(cert: x509.Certificate, when: datetime) -> None:
    if when < cert.not_valid_before_utc:
        raise CertificateError(f"certificate {_describe(cert)} is not valid before "
                               f"{cert.not_valid_before_utc.isoformat()}")
    if when > cert.not_valid_after_utc:
        raise CertificateError(f"certificate {_describe(cert)} expired at "
                               f"{cert.not_valid_after_utc.isoformat()}")


def _extension(item: x509.Certificate | x509.CertificateSigningRequest, kind: type[Any]) -> Any:
    """The value of the extension of class ``kind``, or None when absent."""
    try:
        return item.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_leaf_usage(cert: x509.Certificate, purpose: Purpose) -> None:
    # An absent extension allows every usage (RFC 5280 §4.2.1.3, §4.2.1.12).
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.digital_signature:
        raise CertificateError(f"certificate {_describe(cert)} does not allow digital signatures")
    extended = _extension(cert, x509.ExtendedKeyUsage)
    if extended is not None and _PURPOSE_OIDS[purpose] not in extended \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in extended:
        raise CertificateError(f"certificate {_describe(cert)} is not for {purpose} authentication")


def _is_ca(cert: x509.Certificate, *, require_key_cert_sign: bool = False) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        return False
    usage = _extension(cert, x509.KeyUsage)
    return not require_key_cert_sign or usage is None or usage.key_cert_sign


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=rsa_key and not ca, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


def _subject_alt_names(dns_names: Iterable[str], ip_addresses: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    for address in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            raise CertificateError(f"not an IP address: {address!r}") from None
    return x509.SubjectAlternativeName(names)


def _cn_name(common_name: str) -> x509.Name:
    if not common_name or len(common_name) > 64:
        raise CertificateError(f"a common name is 1 to 64 characters: {common_name!r}")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _common_name(name: x509.Name) -> str | None:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else None


def _describe(cert: x509.Certificate) -> str:
    return repr(_common_name(cert.subject) or cert.subject.rfc4514_string())


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CertificateError(f"a certificate name is letters, digits, '.', '_' and '-': {name!r}")
    return name


CertificateAuthority = Certs
"""The name the design notes use for :class:`Certs`."""
