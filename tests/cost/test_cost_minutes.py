"""A pod that ran part of an hour is charged for the minutes it ran (OpenCost charges
running minutes). Worked by hand:

dc-1, rate card 0.02/core-h, 0.005/GB-h; one node of 8 cores, 32 GiB: 0.32/h. The hour
is 14:00-15:00, collected at 14:30.
  shop Deployment/web: three pods of 1 core, 2 GiB; two running since yesterday, pod A
    started at 14:20 (40 minutes of the hour, running to its end as far as is known).
      steady 2 cores, 4 GiB, whole hour: 0.04 + 0.02
      A: 1 core x 40/60 = 0.666667 core-h x 0.02 = 0.013333;
         2 GiB x 40/60 = 1.333333 GB-h x 0.005 = 0.006667
      cpu 0.053333, ram 0.026667, total 0.08; 2.666667 core-h, 5.333333 GB-h
  lab Job/train: one pod of 2 cores, 4 GiB, ran 13:30-14:15 (Succeeded): 15 minutes of
    the hour: 0.5 core-h x 0.02 = 0.01, 1 GB-h x 0.005 = 0.005; total 0.015
  idle: CPU 8 - 2.666667 - 0.5 = 4.833333 core-h: 0.16 - 0.063333 = 0.096667;
        RAM 32 - 5.333333 - 1 = 25.666667 GB-h: 0.16 - 0.031667 = 0.128333; 0.225
  total 0.08 + 0.015 + 0.225 = 0.32 (every node-hour accounted for)
The next hour (15:00), from the same inventory: A runs the whole hour (web 3 cores,
6 GiB: 0.06 + 0.03 = 0.09) and the job, ended at 14:15, costs nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from benchmarks.usage_ingest import ServedApi, answers
from clusters.models import ClusterInventory
from costs.models import CostAllocation
from costs.services import cost_compute
from costs.workloads import minutes_in
from kube.inventory import collect, inventory_from_json
from tests.cost.test_cost_aggregation import dc_cluster
from tests.cost.test_costs import _node

pytestmark = pytest.mark.django_db
GIB = 2**30
HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)


def _row(namespace: str, controller: str, cores: int, gib: int, **extra: Any) -> dict[str, Any]:
    return {
        "node": "n",
        "namespace": namespace,
        "controller": controller,
        "labels": {},
        "cpu_millis": cores * 1000,
        "memory_bytes": gib * GIB,
        "gpu": 0,
        **extra,
    }


def _pod(started: str, cores: int, gib: int, **extra: Any) -> dict[str, Any]:
    return {
        "started": started,
        "cpu_millis": cores * 1000,
        "memory_bytes": gib * GIB,
        "gpu": 0,
        **extra,
    }


INVENTORY = {
    "nodes": [_node("n", "", 8, 32)],
    "allocations": [
        _row("shop", "Deployment/web", 3, 6, partial=[_pod("2026-11-10T14:20:00+00:00", 1, 2)]),
        _row(
            "lab",
            "Job/train",
            0,
            0,
            partial=[_pod("2026-11-10T13:30:00+00:00", 2, 4, ended="2026-11-10T14:15:00+00:00")],
        ),
    ],
}


def next_hour() -> datetime:
    """The hour after this one, for tests on a real cluster: pods started a moment ago
    are charged only their minutes of this hour, and run all of the next (as far as the
    inventory knows)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _costed(hour: datetime) -> dict[str, CostAllocation]:
    return {row.namespace: row for row in CostAllocation.objects.filter(hour=hour)}


def test_pods_are_charged_for_the_minutes_they_ran_in_the_hour() -> None:
    cluster = dc_cluster()
    ClusterInventory.objects.create(
        cluster=cluster, collected_at=HOUR + timedelta(minutes=30), data=INVENTORY
    )
    cost_compute(hour=HOUR)
    rows = _costed(HOUR)
    web, train, idle = rows["shop"], rows["lab"], rows["__idle__"]
    assert (web.cpu_cost, web.ram_cost, web.total_cost) == (D("0.053333"), D("0.026667"), D("0.08"))
    assert (web.cpu_core_hours, web.ram_gb_hours) == (D("2.666667"), D("5.333333"))
    assert (train.cpu_cost, train.ram_cost, train.total_cost) == (D("0.01"), D("0.005"), D("0.015"))
    assert (train.cpu_core_hours, train.ram_gb_hours) == (D("0.5"), D("1"))
    assert (idle.cpu_cost, idle.ram_cost, idle.total_cost) == (
        D("0.096667"),
        D("0.128333"),
        D("0.225"),
    )
    assert sum(row.total_cost for row in rows.values()) == D("0.32")

    cost_compute(hour=HOUR + timedelta(hours=1))
    later = _costed(HOUR + timedelta(hours=1))
    assert later["shop"].total_cost == D("0.09")
    assert "lab" not in later


def test_a_partial_pod_is_charged_the_larger_of_request_and_usage_for_its_minutes() -> None:
    # web: a pod since yesterday (1 core, using 0.5: charged 1) and pod B from 14:30
    # (1 core, using 2: charged 2 cores for 30 minutes = 1 core-h). Row: 1 + 1 = 2 core-h,
    # 0.04; requests 1 + 0.5 = 1.5 core-h; usage 0.5 + 2 x 0.5 = 1.5 core-h.
    cluster = dc_cluster()
    b = _pod(
        "2026-11-10T14:30:00+00:00",
        1,
        0,
        cpu_usage_millis=2000,
        memory_usage_bytes=0,
        cpu_charged_millis=2000,
        memory_charged_bytes=0,
    )
    row = _row(
        "shop",
        "Deployment/web",
        2,
        0,
        cpu_usage_millis=2500,
        memory_usage_bytes=0,
        cpu_charged_millis=3000,
        memory_charged_bytes=0,
        partial=[b],
    )
    data = {"nodes": [_node("n", "", 8, 32)], "allocations": [row], "usage": True}
    ClusterInventory.objects.create(cluster=cluster, collected_at=HOUR, data=data)
    cost_compute(hour=HOUR)
    web = _costed(HOUR)["shop"]
    assert (web.cpu_core_hours, web.cpu_cost) == (D("2"), D("0.04"))
    assert (web.cpu_request_core_hours, web.cpu_usage_core_hours) == (D("1.5"), D("1.5"))


@pytest.mark.parametrize(
    ("pod", "minutes"),
    [
        ({"started": "2026-11-10T13:00:00Z"}, 60),  # since before the hour, running
        ({"started": "2026-11-10T14:45:30Z"}, D("14.5")),
        ({"started": "2026-11-10T14:10:00Z", "ended": "2026-11-10T14:25:00Z"}, 15),
        ({"started": "2026-11-10T12:00:00Z", "ended": "2026-11-10T13:59:00Z"}, 0),
        ({"started": "2026-11-10T15:05:00Z"}, 0),  # starts after the hour
    ],
)
def test_minutes_in_the_hour(pod: dict[str, str], minutes: D) -> None:
    assert minutes_in(pod, HOUR) == minutes


def test_an_agents_partial_pods_are_validated() -> None:
    row = _row("shop", "", 1, 1, partial=[_pod("2026-11-10T14:20:00Z", 1, 1)])
    assert inventory_from_json({"allocations": [row]}).allocations[0]["partial"][0]["gpu"] == 0
    for bad in (
        [_pod("yesterday", 1, 1)],
        [_pod("2026-11-10T14:20:00Z", -1, 1)],
        [{**_pod("2026-11-10T14:20:00Z", 1, 1), "ended": 5}],
        "all of them",
    ):
        with pytest.raises(ValueError, match="partial"):
            inventory_from_json({"allocations": [{**row, "partial": bad}]})


def test_the_collector_lists_the_pods_that_may_have_run_part_of_the_hour() -> None:
    # The benchmark's simulated cluster of profile 0 (2 nodes, 12 pods; pods 5 and 11
    # started 20 minutes ago, the rest 3 days ago; a Job pod ran from 40 to 10 minutes
    # ago), through the real client decoding and collector.
    now = datetime.now(UTC).replace(microsecond=0)
    inventory = collect(ServedApi(answers(0, "aws", "eu-west-1", now)))
    partial = {
        (row["namespace"], row["controller"]): row
        for row in inventory.allocations
        if "partial" in row
    }
    assert set(partial) == {
        ("shop", "Deployment/shop-app-1"),
        ("monitoring", "Deployment/monitoring-app-0"),
        ("default", "Job/report"),
    }
    # pod 5 alone on its row: 350m and 448Mi; usage 350m x 75 % = 262.5m (262 millis),
    # memory 80 % of 448 MiB = 367,001 KiB (rounded down) = 375,809,024 bytes
    shop = partial[("shop", "Deployment/shop-app-1")]
    assert shop["partial"] == [
        {
            "started": (now - timedelta(minutes=20)).isoformat(),
            "cpu_millis": 350,
            "memory_bytes": 448 * 2**20,
            "gpu": 0,
            "cpu_usage_millis": 262,
            "memory_usage_bytes": 375_809_024,
            "cpu_charged_millis": 350,
            "memory_charged_bytes": 448 * 2**20,
        }
    ]
    assert shop["cpu_millis"] == 350  # the row's totals still count it (it is running)
    # pod 3 (250m, since 3 days) and pod 11 (350m, 20 minutes) share a row: only 11 is listed
    monitoring = partial[("monitoring", "Deployment/monitoring-app-0")]
    assert monitoring["cpu_millis"] == 600
    assert [p["cpu_millis"] for p in monitoring["partial"]] == [350]
    # the ended Job pod: listed with its end, not in the running totals, no usage
    job = partial[("default", "Job/report")]
    assert (job["cpu_millis"], job["memory_bytes"]) == (0, 0)
    assert job["partial"] == [
        {
            "started": (now - timedelta(minutes=40)).isoformat(),
            "ended": (now - timedelta(minutes=10)).isoformat(),
            "cpu_millis": 250,
            "memory_bytes": 192 * 2**20,
            "gpu": 0,
        }
    ]
