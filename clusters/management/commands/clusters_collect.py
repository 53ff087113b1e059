"""`manage.py clusters_collect`: collect inventory and health now, with a progress line."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters.choices import ClusterMode
from clusters.models import Cluster
from clusters.services.collection import clusters_collect


class Command(BaseCommand):
    help = "Probe push-mode clusters now (all, or those named), in shards, in this process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="cluster names (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        query = Cluster.objects.filter(mode=ClusterMode.PUSH).order_by("pk")
        if options["names"]:
            query = query.filter(name__in=options["names"])
            missing = set(options["names"]) - set(query.values_list("name", flat=True))
            if missing:
                raise CommandError(f"No push-mode cluster named: {', '.join(sorted(missing))}")
        ids = list(query.values_list("pk", flat=True))
        size = settings.KEELSON_COLLECT_SHARD_SIZE
        totals: dict[str, int] = {}
        for start in range(0, len(ids), size):
            for status, count in clusters_collect(cluster_ids=ids[start : start + size]).items():
                totals[status] = totals.get(status, 0) + count
            done = min(start + size, len(ids))
            summary = ", ".join(f"{status} {n}" for status, n in sorted(totals.items()))
            self.stdout.write(f"\r[{done}/{len(ids)}] {summary}", ending="")
            self.stdout.flush()
        self.stdout.write(f"\nCollected {len(ids)} clusters.")
