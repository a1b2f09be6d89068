"""The web service's TLS certificate, issued by the platform's own CA when none is configured.

With ``--bind-web-address https://host:port`` and no ``--web-ssl-cert``/``--web-ssl-key``, the
platform's root CA (``$VOLTTRON_HOME/certificates``, :class:`volttron.utils.certs.Certs`; made on
first need) issues ``platform_web-server`` (docs/protocol.md §6.2) for the host: its IP address, or its
DNS name, or, for a wildcard bind address, the machine's names and the loopback addresses.
Clients verify it with the CA bundle ``certificates/certs/<instance>-trusted-cas.crt``. The
certificate is reused across restarts while it verifies, covers the names and has more than
:data:`RENEW_BEFORE` left; otherwise a new one is issued.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from volttron.server.services.web.errors import WebConfigError
from volttron.server.services.web.settings import WebAddress
from volttron.utils.certs import Certs
from volttron.utils.errors import CertificateError
from volttron.utils.home import certificates_dir
from volttron.utils.time import get_aware_utc_now

_log = logging.getLogger(__name__)

WEB_SERVER_CERT = "platform_web-server"
RENEW_BEFORE = timedelta(days=30)


def server_names(address: WebAddress) -> tuple[list[str], list[str]]:
    """``(dns_names, ip_addresses)`` a certificate for ``address`` must cover."""
    if address.is_wildcard:
        dns = list(dict.fromkeys(n for n in (socket.gethostname(), socket.getfqdn(), "localhost") if n))
        return dns, ["127.0.0.1", "::1"]
    if address.host_is_ip:
        return [], [address.host]
    return [address.host], []


def _covers(cert: x509.Certificate, dns: list[str], ips: list[str]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return ({n.lower() for n in dns} <= have_dns
            and {ipaddress.ip_address(i) for i in ips} <= have_ips)


def ensure_web_certificate(home: Path, instance_name: str, address: WebAddress) -> tuple[Path, Path]:
    """``(certificate, key)`` paths of a CA-issued server certificate for ``address``."""
    certs = Certs(certificates_dir(home), instance_name)
    dns, ips = server_names(address)
    try:
        if not certs.ca_exists():
            _log.info("creating the platform's root CA %s", certs.cert_path(certs.root_ca_name))
            certs.create_root_ca()
        if _reusable(certs, dns, ips):
            return certs.cert_path(WEB_SERVER_CERT), certs.private_key_path(WEB_SERVER_CERT)
        certs.create_server_cert(WEB_SERVER_CERT, dns_names=dns, ip_addresses=ips,
                                 common_name=(dns or ips)[0])
    except CertificateError as exc:
        raise WebConfigError(f"cannot make the web server certificate: {exc}") from None
    _log.info("issued web server certificate %s for %s", certs.cert_path(WEB_SERVER_CERT),
              ", ".join([*dns, *ips]))
    return certs.cert_path(WEB_SERVER_CERT), certs.private_key_path(WEB_SERVER_CERT)


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _reusable(certs: Certs, dns: list[str], ips: list[str]) -> bool:
    if not (certs.cert_exists(WEB_SERVER_CERT) and certs.private_key_path(WEB_SERVER_CERT).exists()):
        return False
    try:
        cert = certs.cert(WEB_SERVER_CERT)
        certs.verify(cert, purpose="server")
        key = certs.private_key(WEB_SERVER_CERT)
    except CertificateError as exc:
        _log.info("web server certificate will be re-issued: %s", exc)
        return False
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        return False
    if cert.not_valid_after_utc - get_aware_utc_now() < RENEW_BEFORE:
        return False
    return _covers(cert, dns, ips)
