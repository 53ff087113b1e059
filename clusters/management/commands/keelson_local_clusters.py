"""`manage.py keelson_local_clusters resume|stop`: the `local` provider's processes.

`make run` resumes local clusters at start (same ports and token, so the stored
credentials keep working) and stops them when it stops; their data stays.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clusters.providers.local import resume_all, stop_all


class Command(BaseCommand):
    help = "Resume or stop the processes of every local cluster (data is kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["resume", "stop"])

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "resume":
            count = resume_all()
            if count:
                self.stdout.write(f"resumed {count} local clusters")
        else:
            count = stop_all()
            self.stdout.write(f"stopped {count} local clusters")
