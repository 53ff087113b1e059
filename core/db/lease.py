"""A leader lease: a PostgreSQL session advisory lock on a connection of its own.

The lock lives as long as the session: a holder killed with SIGKILL loses its socket, the
server ends the session and the lock is free for the next candidate at once. The lease
keeps its own connection (not Django's, which request handling and django-celery-beat
close and reopen at will: a closed connection would drop the lock unnoticed). TCP
keepalives and a user timeout make a holder cut off by the network notice within
seconds, and the server free the lock within about half a minute.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from core.db.locks import Key, _args

logger = logging.getLogger(__name__)

# libpq connection parameters of the lease's session (psycopg passes them through).
_SESSION_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
    "connect_timeout": 5,
}


class Lease:
    """Try to hold `key`; `renew()` tells each time whether it is still held.

    `application_name` names the session in pg_stat_activity (the holder is found with
    pg_locks joined to it)."""

    def __init__(self, key: Key, *, application_name: str, using: str = DEFAULT_DB_ALIAS):
        self.key = key
        self.application_name = application_name
        self.using = using
        self.held = False
        self._connection: Any = None

    def _connect(self) -> Any:
        wrapper = connections.create_connection(self.using)
        options = {**wrapper.settings_dict.get("OPTIONS", {}), **_SESSION_OPTIONS}
        options["application_name"] = self.application_name
        wrapper.settings_dict = {**wrapper.settings_dict, "OPTIONS": options}
        wrapper.ensure_connection()
        wrapper.set_autocommit(True)
        return wrapper

    def _query(self, sql: str, params: list[int]) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        with self._connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return row[0] if row else None

    def acquire(self) -> bool:
        """Take the lease if it is free; False (and no exception) when it is held
        elsewhere or the database does not answer."""
        placeholders, params = _args(self.key)
        try:
            self.held = bool(self._query(f"SELECT pg_try_advisory_lock({placeholders})", params))
        except Exception as exc:
            logger.warning("lease: database unreachable (%s)", type(exc).__name__)
            self._drop()
        return self.held

    def renew(self) -> bool:
        """Still held? The lock lasts as long as the session, so a session that still
        answers still holds it; one that does not has lost it (the connection is dropped
        and the next `acquire` starts a new session)."""
        if not self.held:
            return False
        try:
            self._query("SELECT 1", [])
        except Exception as exc:
            logger.warning("lease: lost its session (%s)", type(exc).__name__)
            self._drop()
        return self.held

    def release(self) -> None:
        """Give the lease up (closing the session frees the lock)."""
        self._drop()

    def _drop(self) -> None:
        self.held = False
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # the session is gone already
                logger.debug("lease: close failed", exc_info=True)


def holder_name(prefix: str) -> str:
    """The application name of this process's lease session: prefix and process id."""
    return f"{prefix}:{os.getpid()}"
