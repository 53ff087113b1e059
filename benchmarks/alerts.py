"""Alert evaluation for a fleet of 10,000 clusters with 40 of one region becoming
Unreachable (issue 24: a dead cluster is notified within 100 s at the default 30 s
collection interval; detection takes up to 90 s, so evaluation, the group's wait and the
flush get what is left).

The fleet is `fleet.seed_placement`'s (2 % Unreachable and 5 % Degraded already); its team
gets the default rules. Timed in process, with the notifications boundary captured (the
channels' delivery is not alerts' time): the periodic pass over every rule of the fleet;
the event path (collection sends the 40 clusters: `alerts_on_clusters`); the flush that
turns them into notifications. The 40 must arrive as ONE notification."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Team
from benchmarks import fleet
from benchmarks.results import Row
from clusters.choices import ClusterStatus
from clusters.models import Cluster

TEAM = "bench-alerts"
DEAD = 40
BUDGET_S = 10.0  # 100 s target - 90 s detection


def run(*, clusters: int) -> list[Row]:
    from alerts.models import Alert, AlertRule
    from alerts.services.lifecycle import groups_flush
    from alerts.services.passes import alerts_on_clusters, alerts_periodic
    from alerts.services.rules import alert_rules_default
    from notifications import services as notifications

    started = time.perf_counter()
    missing = clusters - Cluster.objects.count()
    if missing > 0:
        fleet.seed_placement(count=missing, team_name=TEAM, prefix="al")
    teams = set(Cluster.objects.values_list("team_id", flat=True))
    for owner in Team.objects.filter(pk__in=teams):
        alert_rules_default(team=owner)
    Alert.objects.all().delete()
    AlertRule.objects.update(evaluated_at=None, state={})
    seeded = time.perf_counter() - started

    sent: list[Any] = []
    real_dispatch = notifications.dispatch

    def capture(notification: Any) -> int:
        sent.append(notification)
        return 1

    notifications.dispatch = capture
    try:
        now = timezone.now()
        t = time.perf_counter()
        first = alerts_periodic(now=now)
        periodic_s = time.perf_counter() - t
        groups_flush(now=now + timedelta(minutes=1))  # what was already down: told
        AlertRule.objects.update(evaluated_at=None)
        t = time.perf_counter()
        steady = alerts_periodic(now=now + timedelta(minutes=1))
        steady_s = time.perf_counter() - t
        sent.clear()
        # 40 Ready clusters of one region die together (collection's transitions)
        region = (
            Cluster.objects.filter(status=ClusterStatus.READY)
            .values_list("region", flat=True)
            .order_by("region")
            .first()
        )
        dead = list(
            Cluster.objects.filter(status=ClusterStatus.READY, region=region)
            .order_by("pk")
            .values_list("pk", flat=True)[:DEAD]
        )
        at = now + timedelta(minutes=2)
        Cluster.objects.filter(pk__in=dead).update(
            status=ClusterStatus.UNREACHABLE, status_changed_at=at
        )
        t = time.perf_counter()
        changed = alerts_on_clusters(cluster_ids=dead, now=at)
        event_s = time.perf_counter() - t
        wait = (
            AlertRule.objects.filter(name="cluster-unreachable")
            .values_list("group_wait", flat=True)
            .first()
            or 0
        )
        t = time.perf_counter()
        groups_flush(now=at + timedelta(seconds=wait))
        flush_s = time.perf_counter() - t
    finally:
        notifications.dispatch = real_dispatch
    listed = sum(len(n.alerts) for n in sent)
    total = Cluster.objects.count()
    after_detection = event_s + wait + flush_s
    return [
        Row("setup", f"alerts: {total} clusters, default rules", f"{seeded:.1f} s"),
        Row(
            "alerts",
            f"first periodic pass over {total} clusters: {first['fired']} alerts fire",
            f"{periodic_s * 1000:.0f} ms",
            value=periodic_s * 1000,
            detail=first,
        ),
        Row(
            "alerts",
            f"periodic pass again, nothing changed ({steady['rules']} rules)",
            f"{steady_s * 1000:.0f} ms",
            value=steady_s * 1000,
            detail=steady,
        ),
        Row(
            "alerts",
            f"{DEAD} clusters of {region} Unreachable: event evaluation",
            f"{event_s * 1000:.0f} ms ({changed} fired)",
            value=event_s * 1000,
        ),
        Row(
            "alerts",
            f"flush after the group wait ({wait} s): notifications",
            f"{len(sent)} notification(s) listing {listed} alerts, {flush_s * 1000:.0f} ms",
            target="1 notification",
            ok=len(sent) == 1 and changed == DEAD,
        ),
        Row(
            "alerts",
            "after detection: evaluation + group wait + flush",
            f"{after_detection:.1f} s",
            target=f"< {BUDGET_S:.0f} s (100 s - 90 s detection)",
            ok=after_detection < BUDGET_S,
            value=after_detection,
        ),
    ]
