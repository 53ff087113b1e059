"""`manage.py keelson_update_eol <file.json>`: replace the Kubernetes end-of-life table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from clusters.eol import EolTableError, eol_replace


class Command(BaseCommand):
    help = "Validate a Kubernetes end-of-life table (JSON, as clusters/eol.json) and install it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the JSON table")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}") from None
        except ValueError as error:
            raise CommandError(f"{path} is not JSON: {error}") from None
        try:
            with transaction.atomic():
                count = eol_replace(data)
        except EolTableError as error:
            raise CommandError(f"{path}: {error} Nothing was changed.") from None
        self.stdout.write(f"Installed the end-of-life table from {path} ({count} dates).")
