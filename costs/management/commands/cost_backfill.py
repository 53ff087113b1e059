"""`manage.py cost_backfill --since 2026-11-01T00:00Z [--until ...] [--recompute]`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from costs.backfill import backfill


def _moment(value: str, option: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"{option} must be an ISO 8601 date or date-time.")
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


class Command(BaseCommand):
    help = (
        "Compute the cost of hours the hourly computation missed (from the stored "
        "snapshots, marked estimated); --recompute recomputes every hour of the window."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="ISO 8601 date or date-time (UTC)")
        parser.add_argument("--until", default=None, help="default: now")
        parser.add_argument("--recompute", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _moment(options["since"], "--since")
        until = _moment(options["until"], "--until") if options["until"] else timezone.now()
        if since >= until:
            raise CommandError("--since must be before --until.")

        def progress(done: int, total: int, rows: int) -> None:
            self.stdout.write(f"\r{done}/{total} hours, {rows} rows", ending="")
            self.stdout.flush()

        result = backfill(
            since=since, until=until, recompute=options["recompute"], progress=progress
        )
        self.stdout.write(
            f"\n{result.hours} hours: {result.clusters_filled} cluster-hours computed, "
            f"{result.rows} rows."
        )
