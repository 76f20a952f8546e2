"""TLS on the registry port (rendezvous.md §1.5, R-D12).

With ``-tls`` and no certificate files, a self-signed ECDSA P-256
certificate (O="Pilot Protocol", SANs localhost/127.0.0.1/::1, as the
reference makes) is generated once, stored next to the registry state
(key 0600) and reused, so the SHA-256 fingerprint that clients pin stays the
same across restarts. A stored certificate is replaced only when it expired.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_NAME = "registry-cert.pem"
KEY_NAME = "registry-key.pem"
VALIDITY_DAYS = 3650


def fingerprint(cert_pem: bytes) -> str:
    """Lowercase hex SHA-256 of the DER of the first (leaf) certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _write_private(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _generate(now: datetime.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pilot Protocol")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(os.urandom(16), "big") >> 1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_self_signed(directory: str) -> tuple[str, str]:
    """Paths of the persistent self-signed cert and key, creating them if
    missing or expired."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(directory, CERT_NAME), os.path.join(directory, KEY_NAME)
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        if cert.not_valid_after_utc > now and os.path.exists(key_path):
            return cert_path, key_path
    except (OSError, ValueError):
        pass
    cert_pem, key_pem = _generate(now)
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert_pem, 0o644)
    return cert_path, key_path


def server_context(cert_path: str, key_path: str) -> tuple[ssl.SSLContext, str]:
    """A TLS 1.2+ server context and the certificate's pin fingerprint."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    with open(cert_path, "rb") as f:
        return ctx, fingerprint(f.read())


def pinned_client_context() -> ssl.SSLContext:
    """Client side of §1.5: no CA or hostname check; the caller compares
    :func:`fingerprint` of the peer's DER leaf with its pin."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def der_fingerprint(der: bytes) -> str:
    """Pin of a DER certificate as returned by ``SSLObject.getpeercert(True)``."""
    return hashlib.sha256(der).hexdigest()
