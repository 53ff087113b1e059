"""The image's entry point (fleet/container.py): the command line of each role."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core.celery import QUEUES
from fleet.container import container_command, main

BIN = Path(sys.executable).parent


def test_web_is_uvicorn_on_all_addresses_trusting_no_proxy_unless_told() -> None:
    command = container_command("web", [], {})
    assert command[:2] == [str(BIN / "uvicorn"), "fleet.asgi:application"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (a container's own address)
    assert command[command.index("--port") + 1] == "8000"
    assert command[command.index("--workers") + 1] == "2"
    assert "--no-proxy-headers" in command
    behind = container_command(
        "web", [], {"KEELSON_TRUSTED_PROXIES": "10.244.0.0/16", "KEELSON_WEB_WORKERS": "4"}
    )
    assert behind[behind.index("--forwarded-allow-ips") + 1] == "10.244.0.0/16"
    assert behind[behind.index("--workers") + 1] == "4"


def test_a_worker_serves_every_queue_or_the_ones_named() -> None:
    command = container_command("worker", [], {"KEELSON_WORKER_CONCURRENCY": "3"})
    assert command[:4] == [str(BIN / "celery"), "-A", "fleet", "worker"]
    assert command[command.index("-Q") + 1] == ",".join(QUEUES)
    assert command[command.index("--concurrency") + 1] == "3"
    some = container_command("worker", [], {"KEELSON_WORKER_QUEUES": "clusters,costs"})
    assert some[some.index("-Q") + 1] == "clusters,costs"
    with pytest.raises(SystemExit, match="unknown queue"):
        container_command("worker", [], {"KEELSON_WORKER_QUEUES": "clusters,nope"})


def test_beat_and_manage() -> None:
    assert container_command("beat", [], {})[1:] == ["-A", "fleet", "beat", "-l", "info"]
    manage = container_command("manage", ["keelson_backup", "/backups/x"], {})
    assert manage[0] == sys.executable
    assert manage[1].endswith("manage.py") and manage[2:] == ["keelson_backup", "/backups/x"]


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(SystemExit, match="KEELSON_PORT='http' must be a positive integer"):
        container_command("web", [], {"KEELSON_PORT": "http"})
    with pytest.raises(SystemExit, match="unknown role"):
        container_command("shell", [], {})
    assert main([]) == 2
    assert main(["nonsense"]) == 2


def test_the_healthcheck_asks_the_web_and_trusts_the_other_processes(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from fleet.container import healthcheck

    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    web, worker = tmp_path / "web", tmp_path / "worker"
    web.write_bytes(b"/opt/keelson/venv/bin/uvicorn\0fleet.asgi:application\0")
    worker.write_bytes(b"/opt/keelson/venv/bin/celery\0-A\0fleet\0worker\0")
    try:
        port = str(server.server_address[1])
        assert healthcheck({"KEELSON_PORT": port}, web) == 0
        assert healthcheck({"KEELSON_PORT": port}, worker) == 0
    finally:
        server.shutdown()
        server.server_close()
    # nothing answers on that port any more: the web is unhealthy, a worker is not asked
    assert healthcheck({"KEELSON_PORT": port}, web) == 1
    assert healthcheck({"KEELSON_PORT": port}, worker) == 0
