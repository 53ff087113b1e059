"""A real git server on loopback: `git daemon` serving a bare repository made in tmp_path
(receive-pack on, so tests push commits with the git CLI)."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


class GitServer:
    """The bare repository `fleet.git` behind `git daemon`, and a clone to commit from."""

    def __init__(self, url: str, work: Path) -> None:
        self.url = url
        self.work = work

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or, for None, delete) files, commit, push to main; the new sha."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    base = tmp_path / "srv"
    base.mkdir()
    git("init", "-q", "--bare", "-b", "main", str(base / "fleet.git"), cwd=tmp_path)
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        env=GIT_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "git daemon did not start"
                time.sleep(0.05)
        url = f"git://127.0.0.1:{port}/fleet.git"
        work = tmp_path / "work"
        work.mkdir()
        git("init", "-q", "-b", "main", cwd=work)
        git("remote", "add", "origin", url, cwd=work)
        yield GitServer(url, work)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


@pytest.fixture(autouse=True)
def _checkouts(settings: object, tmp_path: Path) -> None:
    settings.KEELSON_GITOPS_DIR = str(tmp_path / "checkouts")  # type: ignore[attr-defined]


# --- `git http-backend` over HTTPS, behind a small WSGI-to-CGI bridge --------------------

TOKEN = "s3cret-token-0123456789"


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _http_backend(root: Path, seen: list[str], protocol_v2: bool = True) -> Any:
    """A WSGI application running `git http-backend` (CGI) for each request that carries
    `Authorization: Basic base64(x-access-token:TOKEN)`; 401 otherwise. Without
    `protocol_v2` it speaks protocol v0 only, as servers before git 2.18 do (the client's
    Git-Protocol header is not passed on)."""
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        seen.append(authorization)
        if authorization != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"unauthorized\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        cgi = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", "") if protocol_v2 else "",
            "REMOTE_USER": "tester",
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=cgi, capture_output=True, check=False
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = value.strip()
            elif key:
                headers.append((key, value.strip()))
        start_response(status, headers)
        return [payload]

    return app


class HttpsGitServer(GitServer):
    def __init__(self, url: str, work: Path, ca_file: Path, seen: list[str]) -> None:
        super().__init__(url, work)
        self.ca_file = ca_file
        self.seen = seen


@pytest.fixture
def https_git_server(tmp_path: Path) -> Iterator[HttpsGitServer]:
    yield from _https_git_server(tmp_path, protocol_v2=True)


@pytest.fixture
def https_git_server_v0(tmp_path: Path) -> Iterator[HttpsGitServer]:
    """The same server speaking protocol v0 only."""
    yield from _https_git_server(tmp_path, protocol_v2=False)


def _https_git_server(tmp_path: Path, *, protocol_v2: bool) -> Iterator[HttpsGitServer]:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Threaded(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    base = tmp_path / "https-srv"
    base.mkdir()
    bare = base / "fleet.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    cert, key = _certificate(tmp_path)
    seen: list[str] = []
    server = make_server(
        "127.0.0.1",
        0,
        _http_backend(base, seen, protocol_v2),
        server_class=Threaded,
        handler_class=Quiet,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        work = tmp_path / "https-work"
        work.mkdir()
        git("init", "-q", "-b", "main", cwd=work)
        git("remote", "add", "origin", str(bare), cwd=work)  # tests push straight to it
        url = f"https://127.0.0.1:{server.server_address[1]}/fleet.git"
        yield HttpsGitServer(url, work, cert, seen)
    finally:
        server.shutdown()
        server.server_close()
