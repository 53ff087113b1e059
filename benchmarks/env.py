"""The benchmarks' own environment: a separate database, Redis databases and key prefix,
production-like settings (DEBUG off: no query log growing in memory), and the machine.

`configure()` sets every variable that is not already set, creates the database if it
is missing and migrates it, so `make bench` never touches the development database.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"

DEFAULTS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/keelson_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/13",
    "KEELSON_REDIS_PREFIX": "keelson-bench",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
    "DJANGO_SETTINGS_MODULE": "fleet.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
    "KEELSON_ENCRYPTION_KEYS": "YmVuY2gtb25seS1lbmNyeXB0aW9uLWtleS0wMTIzNDU=",
    "ALLOWED_HOSTS": "localhost,127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
    "KEELSON_CLUSTER_ALLOW_LOOPBACK": "true",
    "LOG_LEVEL": "WARNING",
    "KEELSON_BENCH_TLS_DIR": str(BENCH_DIR / "tls"),
}


def configure() -> None:
    """Set the benchmark environment (only what is unset), then Django."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    name = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")
    if name in ("keelson", ""):
        raise SystemExit(
            "benchmarks refuse to run on the development database 'keelson': set "
            "DATABASE_URL to a database of their own (default keelson_bench)"
        )
    _create_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _create_database() -> None:
    import psycopg2

    url = urlsplit(os.environ["DATABASE_URL"])
    name = url.path.lstrip("/")
    connection = psycopg2.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or None,
        dbname="postgres",
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a worker, web server or simulator process."""
    env = dict(os.environ)
    env.update(extra)
    return env


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    load = os.getloadavg()
    postgres = ""
    with contextlib.suppress(OSError):
        postgres = subprocess.run(
            ["psql", "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    return {
        "nproc": os.cpu_count() or 0,
        "cpu": cpu,
        "memory_gib": round(memory_gib, 1),
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "psql": postgres,
    }
