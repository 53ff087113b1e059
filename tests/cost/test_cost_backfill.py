"""Missed hours computed later from the stored snapshots, marked estimated; hand-computed.

A self-managed AWS cluster (no fee) registered at 11:00 on 2026-11-10, one m5.large
(0.096/h, no pods: all idle). The hourly computation ran at 12:00, missed 13:00 and
14:00 (workers down), and ran at 15:00 after a second m5.large joined (0.192/h).
Backfill fills 13:00 and 14:00 from the 12:00 snapshot: 0.096 each, estimated. The window
12:00-16:00 costs 0.096 x 3 + 0.192 = 0.48. A cluster registered at 14:30, first
computed at 15:00, has nothing known before 15:00: nothing is invented for it.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from audit.models import AuditEvent
from clusters.models import Cluster, ClusterInventory
from costs.backfill import backfill, snapshots_prune
from costs.models import CostAllocation, CostSnapshot
from costs.services import cost_compute
from costs.tasks import cost_compute_task
from tests.cost.test_costs import _node
from tests.factories import make_cluster, make_team

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 10, tzinfo=UTC)


def _h(hour: int) -> datetime:
    return AT + timedelta(hours=hour)


def _cluster(name: str, registered: datetime) -> Any:
    cluster = make_cluster(
        team=make_team(),
        name=name,
        provider="aws",
        region="us-east-1",
        kubernetes_version="v1.29.1",
        api_server_url="https://10.0.0.10:6443",
    )
    Cluster.objects.filter(pk=cluster.pk).update(created_at=registered)
    return cluster


def _inventory(cluster: Any, nodes: int, at: datetime) -> None:
    ClusterInventory.objects.update_or_create(
        cluster=cluster,
        defaults={
            "collected_at": at,
            "data": {
                "nodes": [_node(f"n{i}", "m5.large", 2, 8) for i in range(nodes)],
                "allocations": [],
            },
        },
    )


def _by_hour(cluster: Any) -> dict[int, D]:
    rows = CostAllocation.objects.filter(cluster=cluster).values("hour")
    return {
        int((r["hour"] - AT).total_seconds() // 3600): r["total"]
        for r in rows.annotate(total=Sum("total_cost"))
    }


@pytest.fixture
def outage() -> dict[str, Any]:
    old = _cluster("old-1", _h(11))
    _inventory(old, 1, _h(12))
    cost_compute(hour=_h(12))
    # 13:00 and 14:00 missed; a node joins; a new cluster arrives at 14:30
    new = _cluster("new-1", _h(14) + timedelta(minutes=30))
    _inventory(old, 2, _h(15))
    _inventory(new, 1, _h(15))
    cost_compute(hour=_h(15))
    return {"old": old, "new": new}


def test_missed_hours_are_filled_from_the_last_snapshot_and_marked(outage: Any) -> None:
    result = backfill(since=_h(12), until=_h(16))
    assert (result.hours, result.clusters_filled) == (4, 2)
    old = outage["old"]
    assert _by_hour(old) == {12: D("0.096"), 13: D("0.096"), 14: D("0.096"), 15: D("0.192")}
    filled = CostAllocation.objects.get(cluster=old, hour=_h(13))
    assert filled.estimated is True
    assert filled.provenance["backfilled"] is True
    assert filled.provenance["snapshot_hour"] == _h(12).isoformat()
    assert CostAllocation.objects.get(cluster=old, hour=_h(15)).estimated is False
    assert _by_hour(outage["new"]) == {15: D("0.096")}
    assert AuditEvent.objects.filter(action="cost.backfill").count() == 1
    # a second run finds nothing missing
    assert backfill(since=_h(12), until=_h(16)).clusters_filled == 0


def test_recompute_redoes_hours_from_their_own_snapshots_only(outage: Any) -> None:
    backfill(since=_h(12), until=_h(16))
    # 12:00 and 15:00 of old-1, 15:00 of new-1; the filled hours have no snapshot of their own
    assert backfill(since=_h(12), until=_h(16), recompute=True).clusters_filled == 3
    assert sum(_by_hour(outage["old"]).values()) == D("0.48")


def test_the_command_prints_its_progress(outage: Any) -> None:
    out = io.StringIO()
    call_command(
        "cost_backfill", "--since", "2026-11-10T12:00Z", "--until", "2026-11-10T16:00Z", stdout=out
    )
    text = out.getvalue()
    assert "4/4 hours" in text
    assert "2 cluster-hours computed" in text
    assert sum(_by_hour(outage["old"]).values()) == D("0.48")


def test_the_hourly_task_fills_the_hours_it_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    # computed three hours ago, then workers down: the task computes this hour and fills
    # the two in between from that snapshot: 4 hours x 0.096
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    # The clock stands at ten past the hour for the task: the hour cannot turn mid-test.
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(minutes=10))
    cluster = _cluster("gap-1", now - timedelta(hours=4))
    _inventory(cluster, 1, now - timedelta(hours=3))
    cost_compute(hour=now - timedelta(hours=3))
    cost_compute_task()
    totals = CostAllocation.objects.filter(cluster=cluster).values("hour", "estimated")
    assert sorted((r["hour"], r["estimated"]) for r in totals) == [
        (now - timedelta(hours=3), False),
        (now - timedelta(hours=2), True),
        (now - timedelta(hours=1), True),
        (now, False),
    ]
    total = CostAllocation.objects.filter(cluster=cluster).aggregate(t=Sum("total_cost"))["t"]
    assert total == D("0.384")


def test_snapshots_past_retention_and_of_deregistered_clusters_are_pruned(outage: Any) -> None:
    # snapshots at 12:00 (old-1) and 15:00 (old-1, new-1); 35 days after 13:00 only the
    # 12:00 one is past; new-1's go once its cluster is gone
    assert snapshots_prune(now=_h(13) + timedelta(days=35)) == 1
    outage["new"].delete()
    assert snapshots_prune(now=_h(15)) == 1
    assert list(CostSnapshot.objects.values_list("cluster__name", "hour")) == [("old-1", _h(15))]
