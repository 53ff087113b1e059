"""Helpers for tests that start real processes (workers, web servers) on the test database."""

from __future__ import annotations

import socket


def child_database_url() -> str:
    """DATABASE_URL of the test database pytest-django created, for child processes."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
