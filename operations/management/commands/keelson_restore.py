"""`manage.py keelson_restore <file> [--force]`: restore a backup, then migrate.

See docs/operations.md "Restore"; the work is `operations.backup.backup_restore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a keelson_backup file into this hub's (empty) database, checking the "
        "encryption keys first, then apply this version's migrations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="a file written by keelson_backup")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the contents of a database that is not empty",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(phase: str, done: int, total: int) -> None:
            self.stdout.write(f"\r{phase}: {done}/{total} tables", ending="")
            self.stdout.flush()

        try:
            manifest, warnings = backup_restore(
                path=options["path"], force=options["force"], progress=progress
            )
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write("")
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(
            f"restored the backup of {manifest.get('created_at')} (Keelson "
            f"{manifest.get('keelson_version')}) and migrated the database"
        )
