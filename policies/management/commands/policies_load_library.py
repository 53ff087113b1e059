"""Load or update the bundled policy library in every team, or in one (`--team`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Team
from policies.services.library import library_load


class Command(BaseCommand):
    help = "Load or update the bundled policies (PSS baseline/restricted, operational rules)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", help="Only this team (default: every team).")

    def handle(self, *args: Any, **options: Any) -> None:
        teams = Team.objects.all()
        if options["team"]:
            teams = teams.filter(name=options["team"])
            if not teams.exists():
                raise CommandError(f"No such team: {options['team']}")
        for team in teams:
            counts = library_load(team=team)
            self.stdout.write(
                f"{team.name}: {counts.created} created, {counts.updated} updated, "
                f"{counts.unchanged} unchanged, {counts.skipped} skipped (own policy)"
            )
