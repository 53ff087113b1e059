"""OpenCost's allocation, computed by hand, through the real pricing, the hourly
computation and /api/v1/costs/; and history that outlives a deregistered cluster.

The fleet, for one hour (2026-11-10 14:00 UTC), all owned by one team:

eks-1: AWS us-east-1, EKS (its version string says so), idle shared by resource.
  node a: m5.large, 2 cores, 8 GiB, list price 0.096/h
  node b: r5.xlarge, 4 cores, 32 GiB, list price 0.252/h
  web asks 1 core + 4 GiB on a, batch 2 cores + 16 GiB on b, noreq runs pods without
  requests on b. Each of web and batch asks exactly half of its node's CPU and half its
  RAM, so whatever the weights, web is charged half of a (0.048) and batch half of b
  (0.126); noreq is charged 0.
  Idle per resource equals what was charged for it (each node is half used), so sharing
  CPU idle by CPU cost and RAM idle by RAM cost doubles each charge: web 0.096, batch
  0.252, noreq 0 (a namespace charged nothing carries no idle).
  web's bound 100 GiB gp3 volume: 100 x 0.08 / 730 = 0.010959 (its pending claim: 0).
  EKS fee: 73 / 730 = 0.10.
  Cluster: 0.096 + 0.010959 + 0.252 + 0.10 = 0.458959.

dc-1: on-premises, rate card 0.02/core-h, 0.003/GB-h, 0.90/GPU-h, idle shared by
  resource, no fee.
  node gpu-1: 8 cores, 32 GiB, 2 GPUs: 0.16 + 0.096 + 1.80 = 2.056/h
  ml asks 4 cores, 16 GiB, 1 GPU: 0.08 + 0.048 + 0.90 = 1.028
  web asks 2 cores, 8 GiB: 0.04 + 0.024 = 0.064
  Idle: CPU 0.16 - 0.12 = 0.04, RAM 0.096 - 0.072 = 0.024, GPU 1.80 - 0.90 = 0.90.
  ml carries 2/3 of CPU and RAM idle (0.026667 + 0.016) and all GPU idle (0.90):
  1.028 + 0.942667 = 1.970667. web carries 1/3 (0.013333 + 0.008) and no GPU idle:
  0.085333. ml's bound 50 GiB volume at the default 0.10/GB-month: 0.006849.
  Cluster: 2.056 + 0.006849 = 2.062849.

kubeadm-1: AWS, self-managed control plane (plain version, API on a private address):
  no fee. node m5.large 0.096, no pods: idle 0.096.

Fleet: 0.458959 + 2.062849 + 0.096 = 2.617808 -> 2.62.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from audit.models import AuditEvent
from clusters.models import Cluster, ClusterInventory, HealthRollup, HealthSample
from clusters.services.history import health_rollup
from clusters.services.lifecycle import cluster_deregister, cluster_deregister_run
from costs.models import Budget, ClusterPricing, CostAllocation, RateCard
from costs.rollups import cost_rollup
from costs.services import budget_status, cost_compute
from kube import inventory
from policies.models import Policy, PolicyEvaluation
from tests.cost.test_costs import _node
from tests.factories import add_member, make_cluster, make_evaluation, make_team, make_user

pytestmark = pytest.mark.django_db
GIB = 2**30
HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)
SINCE, UNTIL = HOUR.isoformat(), (HOUR + timedelta(hours=1)).isoformat()


def _asks(node: str, namespace: str, cpu: int, gib: int, gpu: int = 0) -> dict[str, Any]:
    return {
        "node": node,
        "namespace": namespace,
        "cpu_millis": cpu * 1000,
        "memory_bytes": gib * GIB,
        "gpu": gpu,
    }


def _inventory(cluster: Any, **data: Any) -> None:
    ClusterInventory.objects.create(cluster=cluster, collected_at=HOUR, data=data)


@pytest.fixture
def fleet() -> dict[str, Any]:
    team = make_team(name="platform")
    eks = make_cluster(
        team=team,
        name="eks-1",
        provider="aws",
        region="us-east-1",
        kubernetes_version="v1.29.1-eks-508b6b3",
        api_server_url="https://ABCDEF.gr7.us-east-1.eks.amazonaws.com",
    )
    _inventory(
        eks,
        nodes=[_node("a", "m5.large", 2, 8), _node("b", "r5.xlarge", 4, 32)],
        allocations=[
            _asks("a", "web", 1, 4),
            _asks("b", "batch", 2, 16),
            _asks("b", "noreq", 0, 0),
        ],
        # what the collector records: bound claims only (the pending one is not there)
        volumes=[{"namespace": "web", "storage_class": "gp3", "bytes": 100 * GIB}],
        storage_bytes={"web": 100 * GIB},
    )
    ClusterPricing.objects.create(cluster=eks, valid_from=date(2026, 1, 1), share_idle=True)

    dc = make_cluster(team=team, name="dc-1", provider="onprem")
    RateCard.objects.create(
        name="dc",
        team=team,
        valid_from=date(2026, 1, 1),
        cpu_core_hour=D("0.02"),
        ram_gb_hour=D("0.003"),
        gpu_hour=D("0.90"),
    )
    ClusterPricing.objects.create(
        cluster=dc, valid_from=date(2026, 1, 1), rate_card="dc", share_idle=True
    )
    _inventory(
        dc,
        nodes=[_node("gpu-1", "", 8, 32, gpu=2)],
        allocations=[_asks("gpu-1", "ml", 4, 16, gpu=1), _asks("gpu-1", "web", 2, 8)],
        volumes=[{"namespace": "ml", "storage_class": "local", "bytes": 50 * GIB}],
    )

    kubeadm = make_cluster(
        team=team,
        name="kubeadm-1",
        provider="aws",
        region="us-east-1",
        kubernetes_version="v1.29.1",
        api_server_url="https://10.0.0.10:6443",
    )
    _inventory(kubeadm, nodes=[_node("m", "m5.large", 2, 8)], allocations=[])
    cost_compute(hour=HOUR)
    admin = make_user()
    add_member(team, admin, Role.ADMIN)
    return {"team": team, "admin": admin, "eks": eks, "dc": dc, "kubeadm": kubeadm}


def _costs(user: Any, group_by: str) -> dict[str, Any]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/v1/costs/", {"group_by": group_by, "since": SINCE, "until": UNTIL})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def _by_group(body: dict[str, Any]) -> dict[str, D]:
    return {row["group"]: D(str(row["total_cost"])) for row in body["rows"]}


def _rows(cluster_name: str) -> dict[str, CostAllocation]:
    return {
        r.namespace: r for r in CostAllocation.objects.filter(cluster_name=cluster_name, hour=HOUR)
    }


def test_each_figure_matches_the_hand_computation(fleet: dict[str, Any]) -> None:
    eks = _rows("eks-1")
    assert eks["web"].total_cost == D("0.096") + D("0.010959")
    assert eks["web"].storage_cost == D("0.010959")
    assert eks["batch"].total_cost == D("0.252")
    assert eks["noreq"].total_cost == 0
    assert eks["__control_plane__"].total_cost == D("0.1")
    assert "__idle__" not in eks
    dc = _rows("dc-1")
    assert dc["ml"].gpu_cost == D("0.9")
    assert dc["ml"].shared_cost == D("0.942667")
    assert dc["ml"].total_cost == D("1.970667") + D("0.006849")
    assert dc["web"].shared_cost == D("0.021333")  # no GPU idle: web uses no GPU
    assert "__control_plane__" not in dc
    kubeadm = _rows("kubeadm-1")
    assert set(kubeadm) == {"__idle__"}  # self-managed: no control-plane fee
    assert kubeadm["__idle__"].total_cost == D("0.096")


def test_the_api_totals_agree_by_every_dimension(fleet: dict[str, Any]) -> None:
    by_cluster = _costs(fleet["admin"], "cluster")
    assert _by_group(by_cluster) == {
        "eks-1": D("0.46"),  # 0.458959
        "dc-1": D("2.06"),  # 2.062849
        "kubeadm-1": D("0.10"),  # 0.096
    }
    by_namespace = _costs(fleet["admin"], "namespace")
    assert _by_group(by_namespace) == {
        "ml": D("1.98"),  # 1.970667 + 0.006849
        "batch": D("0.25"),  # 0.252
        "web": D("0.19"),  # 0.106959 + 0.085333 = 0.192292
        "__idle__": D("0.10"),
        "__control_plane__": D("0.10"),
        "noreq": D("0.00"),
    }
    # the rows' cents add up to 0.46 + 2.06 + 0.10 = 2.62 by cluster but to 2.62 by
    # namespace only by luck; the total is the unrounded 2.617808 rounded once, whatever
    # the grouping
    assert D(str(by_cluster["total"])) == D(str(by_namespace["total"])) == D("2.62")


def test_totals_are_rounded_once_not_summed_from_rounded_rows() -> None:
    # Bug: three namespaces of 0.004 each showed 0.00 + 0.00 + 0.00 = 0.00 in total; the
    # total of the window is 0.012 -> 0.01 by any grouping.
    team = make_team()
    cluster = make_cluster(team=team, name="tiny", provider="onprem")
    RateCard.objects.create(
        name="tiny",
        team=team,
        valid_from=date(2026, 1, 1),
        cpu_core_hour=D("0.004"),
        ram_gb_hour=D("0.000001"),
    )
    ClusterPricing.objects.create(cluster=cluster, valid_from=date(2026, 1, 1), rate_card="tiny")
    # node: 3 cores and 0 GB at 0.004 = 0.012/h, each namespace asks 1 core: 0.004
    node = _node("n", "", 3, 0)
    _inventory(cluster, nodes=[node], allocations=[_asks("n", ns, 1, 0) for ns in "xyz"])
    cost_compute(hour=HOUR)
    user = make_user()
    add_member(team, user, Role.VIEWER)
    by_namespace = cost_rollup(
        user=user, since=HOUR, until=HOUR + timedelta(hours=1), group_by="namespace"
    )
    assert [row["total_cost"] for row in by_namespace.rows] == [D("0.00")] * 3
    assert by_namespace.total == D("0.01")
    by_cluster = cost_rollup(user=user, since=HOUR, until=HOUR + timedelta(hours=1))
    assert by_cluster.total == D("0.01") and by_cluster.rows[0]["total_cost"] == D("0.01")


def test_a_rate_card_without_a_gpu_price_gives_gpus_no_share() -> None:
    # Card 0.02/core-h, 0.003/GB-h, no GPU price. Node 8 cores, 32 GiB, 1 GPU:
    # 0.16 + 0.096 = 0.256/h. ml asks 2 cores, 8 GiB, 1 GPU: 0.04 + 0.024 = 0.064; idle
    # 0.192. (Bug: split with GPU weight 0.95, ml paid 1.014 x 0.256 / 1.206 = 0.215244
    # and idle showed 0.040756.)
    team = make_team()
    cluster = make_cluster(team=team, name="dc-gpu", provider="onprem")
    RateCard.objects.create(
        name="nogpu",
        team=team,
        valid_from=date(2026, 1, 1),
        cpu_core_hour=D("0.02"),
        ram_gb_hour=D("0.003"),
    )
    ClusterPricing.objects.create(cluster=cluster, valid_from=date(2026, 1, 1), rate_card="nogpu")
    _inventory(
        cluster,
        nodes=[_node("g", "", 8, 32, gpu=1)],
        allocations=[_asks("g", "ml", 2, 8, gpu=1)],
    )
    cost_compute(hour=HOUR)
    rows = _rows("dc-gpu")
    assert (rows["ml"].cpu_cost, rows["ml"].ram_cost, rows["ml"].gpu_cost) == (
        D("0.04"),
        D("0.024"),
        D("0"),
    )
    assert rows["__idle__"].total_cost == D("0.192")


def test_deregistering_a_cluster_changes_no_past_total(
    fleet: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    admin = fleet["admin"]
    before = {group: _costs(admin, group) for group in ("cluster", "namespace", "team")}
    month = cost_rollup(
        user=admin, since=HOUR.replace(day=1), until=HOUR + timedelta(days=1), group_by="team"
    )
    # when eks-1 and kubeadm-1 are deregistered through the service and its task
    for cluster in (fleet["eks"], fleet["kubeadm"]):
        with django_capture_on_commit_callbacks(execute=False):
            operation = cluster_deregister(cluster=cluster, actor=admin, cleanup=False)
        cluster_deregister_run(operation_id=operation.pk)
    assert not Cluster.objects.filter(name__in=["eks-1", "kubeadm-1"]).exists()
    # then every total, by every dimension, is what it was
    for group, body in before.items():
        assert _costs(admin, group) == body, group
    after = cost_rollup(
        user=admin, since=HOUR.replace(day=1), until=HOUR + timedelta(days=1), group_by="team"
    )
    assert after == month
    # filtering by a gone cluster's name still finds its history
    client = APIClient()
    client.force_authenticate(admin)
    body = client.get(
        "/api/v1/costs/",
        {"group_by": "namespace", "cluster": "eks-1", "since": SINCE, "until": UNTIL},
    ).json()
    assert D(str(body["total"])) == D("0.46")
    # another team still sees none of it
    outsider = make_user()
    add_member(make_team(), outsider, Role.ADMIN)
    assert _costs(outsider, "cluster")["rows"] == []
    # a later computation leaves the gone clusters' hours alone
    cost_compute(hour=HOUR)
    assert _costs(admin, "cluster") == before["cluster"]


def test_the_forecast_runs_at_the_recent_pace_from_now_on() -> None:
    # November (720 h). Cluster b was added on the 11th at 00:00 and costs 6/h; cluster
    # gone cost 2/h from the 1st to the 9th (216 h) and was deregistered. Now is the 15th
    # 23:30: the month so far ends at the end of the current hour, 16th 00:00 (360 h),
    # 360 h remain.
    # spent = 120 h x 6 + 216 h x 2 = 720 + 432 = 1,152
    # run rate (last 24 h, per registered cluster) = 144 / 24 = 6/h
    # forecast = 1,152 + 6 x 360 = 3,312
    # (Bug: spent / hours that have rows x 720 = 1,152 / 336 x 720 = 2,468.57; with b
    # alone, 720 / 120 x 720 = 4,320 instead of 720 + 2,160 = 2,880.)
    team = make_team()
    b = make_cluster(team=team, name="b", provider="onprem")
    start = datetime(2026, 11, 1, tzinfo=UTC)

    def row(cluster: Any, name: str, hour: datetime, cost: str) -> CostAllocation:
        return CostAllocation(
            cluster=cluster,
            cluster_name=name,
            team=team,
            team_name=team.name,
            hour=hour,
            namespace="app",
            provider="onprem",
            cpu_cost=D(cost),
            ram_cost=0,
            gpu_cost=0,
            total_cost=D(cost),
        )

    rows = [row(b, "b", start + timedelta(days=10, hours=h), "6") for h in range(120)]
    rows += [row(None, "gone", start + timedelta(hours=h), "2") for h in range(216)]
    CostAllocation.objects.bulk_create(rows)
    budget = Budget.objects.create(name="nov", team=team, monthly_amount=D("3000"))
    status = budget_status(budget, datetime(2026, 11, 15, 23, 30, tzinfo=UTC))
    assert status["spent"] == D("1152.00")
    assert status["forecast"] == D("3312.00")


def test_only_bound_claims_are_recorded_by_storage_class(monkeypatch: Any) -> None:
    # Pure logic of the collector's PVC pass (the API listing replaced by two claims): a
    # Pending claim has no volume and costs nothing; a bound one counts at the bound
    # volume's capacity (10Gi asked, 12Gi bound), under its storage class.
    claims = [
        {
            "metadata": {"namespace": "web"},
            "spec": {"storageClassName": "gp3", "resources": {"requests": {"storage": "10Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "12Gi"}},
        },
        {
            "metadata": {"namespace": "web"},
            "spec": {"storageClassName": "gp3", "resources": {"requests": {"storage": "50Gi"}}},
            "status": {"phase": "Pending"},
        },
    ]
    monkeypatch.setattr(inventory, "_paged", lambda api, path: iter(claims))
    assert inventory._storage(None) == [
        {"namespace": "web", "storage_class": "gp3", "bytes": 12 * GIB}
    ]


def test_health_compliance_and_audit_history_outlive_the_cluster(
    django_capture_on_commit_callbacks: Any,
) -> None:

    team = make_team()
    admin = make_user()
    add_member(team, admin, Role.ADMIN)
    cluster = make_cluster(team=team, name="old-1", provider="onprem")
    at = datetime.now(UTC).replace(minute=5, second=0, microsecond=0)
    HealthSample.objects.bulk_create(
        [HealthSample(cluster=cluster, at=at, status=s) for s in ("ready", "ready", "degraded")]
    )
    health_rollup(now=at + timedelta(minutes=10))
    policy = Policy.objects.create(team=team, name="labels")
    make_evaluation(policy=policy, cluster=cluster, status="noncompliant", at=at)
    with django_capture_on_commit_callbacks(execute=False):
        operation = cluster_deregister(cluster=cluster, actor=admin, cleanup=False)
    cluster_deregister_run(operation_id=operation.pk)
    # the hour's rollup keeps its counts, the cluster's name and team
    rollup = HealthRollup.objects.get(cluster_name="old-1", period="hour")
    assert (rollup.cluster_id, rollup.team_id) == (None, team.pk)
    assert (rollup.samples, rollup.ready_samples, rollup.degraded_samples) == (3, 2, 1)
    # the compliance result is kept, named, and no longer counts as current state
    result = PolicyEvaluation.objects.get(policy=policy)
    assert (result.cluster_id, result.cluster_label) == (None, "old-1")
    client = APIClient()
    client.force_authenticate(admin)
    listed = client.get("/api/v1/policy-evaluations/", {"cluster": "old-1"}).json()
    assert [row["cluster"] for row in listed["results"]] == ["old-1"]
    outsider = make_user()
    add_member(make_team(), outsider, Role.ADMIN)
    client.force_authenticate(outsider)
    assert client.get("/api/v1/policy-evaluations/", {"cluster": "old-1"}).json()["results"] == []
    # the audit log names the cluster in text
    assert AuditEvent.objects.filter(action="cluster.deregister", target_repr="old-1").exists()
