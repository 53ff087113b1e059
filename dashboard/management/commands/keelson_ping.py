"""`manage.py keelson_ping`: a task round trip through the broker to a worker and back.

`make manage CMD=keelson_ping` checks a running `make run`; exits non-zero when no worker
answers within --timeout seconds.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.celery import app

# Sent by name: the task is fleet's, above this app (docs/architecture.md).
PING_TASK = "fleet.tasks.fleet_ping_task"


class Command(BaseCommand):
    help = "Send a ping task through the broker and wait for a worker's answer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args: Any, **options: Any) -> None:
        payload = secrets.token_hex(8)
        started = time.monotonic()
        result = app.send_task(PING_TASK, args=[payload], queue="default", routing_key="default")
        try:
            answer = result.get(timeout=options["timeout"])
        except CeleryTimeout as exc:
            raise CommandError(f"no worker answered within {options['timeout']:g} s") from exc
        if answer.get("payload") != payload:
            raise CommandError(f"a worker answered with another payload: {answer!r}")
        elapsed = (time.monotonic() - started) * 1000
        self.stdout.write(f"pong from {answer.get('worker')} in {elapsed:.0f} ms")
