"""The simulator's CA, server certificate and the cluster tokens derived from one secret."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    secret: Path  # HMAC key the cluster tokens derive from

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()

    def token_secret(self) -> bytes:
        return self.secret.read_bytes()


def ensure_tls(directory: Path) -> TLSFiles:
    """A CA and a server certificate for 127.0.0.1/localhost (ECDSA P-256, cheap
    handshakes), made once and kept in `directory` (mode 0700)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = TLSFiles(
        directory / "ca.crt", directory / "server.crt", directory / "server.key", directory / "hmac"
    )
    if files.ca.exists() and files.cert.exists() and files.key.exists() and files.secret.exists():
        return files
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keelson-bench-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simulated-clusters")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    files.secret.write_bytes(secrets.token_bytes(32))
    files.secret.chmod(0o600)
    return files


def cluster_token(secret: bytes, index: int) -> str:
    """Cluster `index`'s bearer token (derived, so the hub's seeding and the simulator
    agree without passing 10,000 tokens around)."""
    return "sim-" + hmac.new(secret, str(index).encode(), hashlib.sha256).hexdigest()


def cluster_url(port: int, index: int) -> str:
    return f"https://127.0.0.1:{port}/c/{index}"
