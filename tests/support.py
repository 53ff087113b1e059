"""Helpers for tests that start real processes (workers, web servers) on the test database."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def child_database_url() -> str:
    """DATABASE_URL of the test database pytest-django created, for child processes."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_pem(common_name: str = "not-the-cluster-ca") -> str:
    """A CA certificate that signed nothing of ours (for TLS-failure tests)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@contextlib.contextmanager
def prometheus_server(directory: Path, config: dict[str, Any]) -> Iterator[str]:
    """Debian's Prometheus with `config` (JSON is YAML) on a free loopback port, storing
    under `directory`; yields its URL, as soon as it listens or not (callers wait for what
    they need). Its log is `directory/prometheus.log`."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is installed by scripts/test.sh"
    (directory / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    with (directory / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=15)
