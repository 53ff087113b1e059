"""`manage.py cost_load_prices [--from YYYY-MM-DD]`: load the shipped list prices."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from costs.prices import prices_load


class Command(BaseCommand):
    help = "Load or refresh the shipped instance list prices (changes apply from a date)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="valid_from", default=None, help="YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        valid_from = None
        if options["valid_from"]:
            try:
                valid_from = date.fromisoformat(options["valid_from"])
            except ValueError:
                raise CommandError("--from must be a date, YYYY-MM-DD.") from None
        added = prices_load(valid_from=valid_from)
        self.stdout.write(f"{added} list prices added or changed.")
