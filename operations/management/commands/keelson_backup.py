"""`manage.py keelson_backup <file>`: the database and a manifest of the keys it needs.

See docs/operations.md "Backup"; the work is `operations.backup.backup_create`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the hub's database (pg_dump custom format) with a manifest, to one file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the backup file to write (must not exist)")

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(phase: str, done: int, total: int) -> None:
            self.stdout.write(f"\r{phase}: {done}/{total} tables", ending="")
            self.stdout.flush()

        try:
            manifest = backup_create(path=options["path"], progress=progress)
        except BackupError as error:
            raise CommandError(str(error)) from None
        fingerprints = ", ".join(manifest["encryption_keys"]["fingerprints"])
        self.stdout.write("")
        self.stdout.write(
            f"backup written to {options['path']} ({manifest['tables']} tables, Keelson "
            f"{manifest['keelson_version']}); it needs KEELSON_ENCRYPTION_KEYS with the "
            f"key(s) of fingerprint {fingerprints}: keep them apart from the backup"
        )
