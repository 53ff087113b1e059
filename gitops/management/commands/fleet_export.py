"""Write a team's declarable state (gitops.export) as a GitOps repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Team
from gitops.export import fleet_export


class Command(BaseCommand):
    help = (
        "Export a team's Applications (+Placement, Overrides, RolloutStrategy), ClusterSets, "
        "Policies, RateCards, Budgets and ReportDefinitions as keelson.io/v1 documents, one "
        "file per object in a folder per kind. What cannot be exported is listed on stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", required=True, help="The team to export.")
        parser.add_argument(
            "--output",
            help="A missing or empty folder, or a fresh git clone (default: ./fleet-TEAM).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        team = Team.objects.filter(name=options["team"]).first()
        if team is None:
            raise CommandError(f"No such team: {options['team']}")
        output = Path(options["output"] or f"fleet-{team.name}")
        try:
            result = fleet_export(
                team=team, output=output, progress=lambda line: self.stdout.write(line)
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        for line in result.skipped:
            self.stderr.write(f"not exported: {line}")
        for line in result.notes:
            self.stderr.write(f"note: {line}")
        counts = ", ".join(f"{n} {kind}" for kind, n in result.counts.items() if n)
        self.stdout.write(f"{team.name}: {counts} written to {output}")
