"""A real git server on loopback: `git daemon` serving a bare repository made in tmp_path
(receive-pack on, so tests push commits with the git CLI)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

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
