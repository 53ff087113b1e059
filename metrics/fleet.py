"""Fleet gauges, computed from the database at scrape time with aggregate queries.

Label cardinality stays bounded at any fleet size: clusters are counted by (status,
provider, region), compliance per policy (team, policy) and per cluster set, cost per team,
capacity as totals. Per-cluster series (health score, nodes, API latency) are exposed only
with KEELSON_METRICS_PER_CLUSTER=true: 10,000 clusters make 30,000 series.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.choices import AlertState
from alerts.models import Alert
from clusters.models import Cluster, ClusterSet
from clusters.services.lifecycle import cluster_set_clusters
from costs.models import CostAllocation
from dashboard.selectors import with_health_score
from policies.choices import ResultStatus
from policies.models import Policy

# One pass over the newest result of each (policy, cluster) pair of the enabled policies,
# counted per policy and per cluster (compliance per set sums its members' counts): one
# DISTINCT ON however many sets there are (with 10,000 clusters and 5 policies, the two
# groupings in one pass cost about what a second pass would cost alone).
_LATEST_COUNTS = """
SELECT policy_id, {cluster}, status, count(*) FROM (
    SELECT DISTINCT ON (policy_id, cluster_id) policy_id, cluster_id, status
    FROM policies_policyevaluation
    WHERE policy_id = ANY(%s) AND cluster_id IS NOT NULL
    ORDER BY policy_id, cluster_id, evaluated_at DESC, id DESC
) AS latest
GROUP BY GROUPING SETS ({sets})
"""
_PER_POLICY = "(policy_id, status)"
_PER_POLICY_AND_CLUSTER = "(policy_id, status), (cluster_id, status)"
Counts = dict[str, int]
# Once: an enum's `values` is rebuilt at every read (10,000 clusters read it per scrape).
STATUSES = tuple(ResultStatus.values)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class FleetCollector(Collector):
    """Yields the fleet's gauges; one instance serves every scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._clusters()
        yield from self._capacity()
        yield from self._compliance()
        yield from self._cost(now)
        yield from self._alerts()
        if settings.KEELSON_METRICS_PER_CLUSTER:
            yield from self._per_cluster(now)

    def _clusters(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keelson_clusters",
            "Registered clusters by status, provider and region.",
            labels=["status", "provider", "region"],
        )
        rows = (
            Cluster.objects.values("status", "provider", "region")
            .annotate(n=Count("id"))
            .order_by("status", "provider", "region")
        )
        for row in rows:
            family.add_metric([row["status"], row["provider"], row["region"]], row["n"])
        yield family

    def _capacity(self) -> Iterator[Metric]:
        totals = Cluster.objects.aggregate(
            nodes=Sum("node_count"),
            nodes_ready=Sum("nodes_ready"),
            cpu=Sum("capacity_cpu_millis"),
            memory=Sum("capacity_memory_bytes"),
            gpu=Sum("capacity_gpu"),
            cpu_requested=Sum("requested_cpu_millis"),
            memory_requested=Sum("requested_memory_bytes"),
        )

        def total(key: str) -> float:
            return float(totals[key] or 0)

        yield GaugeMetricFamily("keelson_fleet_nodes", "Nodes in every cluster.", total("nodes"))
        yield GaugeMetricFamily(
            "keelson_fleet_nodes_ready", "Ready nodes in every cluster.", total("nodes_ready")
        )
        yield GaugeMetricFamily(
            "keelson_fleet_cpu_capacity_cores", "CPU capacity of every node.", total("cpu") / 1000
        )
        yield GaugeMetricFamily(
            "keelson_fleet_cpu_requested_cores",
            "CPU requested by pods in every cluster.",
            total("cpu_requested") / 1000,
        )
        yield GaugeMetricFamily(
            "keelson_fleet_memory_capacity_bytes", "Memory capacity of every node.", total("memory")
        )
        yield GaugeMetricFamily(
            "keelson_fleet_memory_requested_bytes",
            "Memory requested by pods in every cluster.",
            total("memory_requested"),
        )
        yield GaugeMetricFamily("keelson_fleet_gpu_capacity", "GPUs of every node.", total("gpu"))

    def _compliance(self) -> Iterator[Metric]:
        names = {
            pk: (team, name)
            for pk, team, name in Policy.objects.filter(enabled=True).values_list(
                "pk", "team__name", "name"
            )
        }
        per_policy: dict[int, Counts] = {}
        per_cluster: dict[int, Counts] = {}
        if names:
            with connection.cursor() as cursor:
                # Counting per cluster too costs as much again: only when sets exist.
                if ClusterSet.objects.exists():
                    sql = _LATEST_COUNTS.format(cluster="cluster_id", sets=_PER_POLICY_AND_CLUSTER)
                else:
                    sql = _LATEST_COUNTS.format(cluster="NULL", sets=_PER_POLICY)
                cursor.execute(sql, [list(names)])
                for policy_id, cluster_id, status, count in cursor.fetchall():
                    if policy_id is not None:
                        counts = per_policy.setdefault(policy_id, _zero())
                    else:
                        counts = per_cluster.setdefault(cluster_id, _zero())
                    counts[status] = counts.get(status, 0) + int(count)
        pairs = GaugeMetricFamily(
            "keelson_policy_results",
            "Clusters by the newest result of each enabled policy on them.",
            labels=["team", "policy", "status"],
        )
        ratio = GaugeMetricFamily(
            "keelson_policy_compliance_ratio",
            "Compliant / judged (compliant + noncompliant) clusters of each enabled policy.",
            labels=["team", "policy"],
        )
        for pk, counts in sorted(per_policy.items(), key=lambda item: names[item[0]]):
            team, name = names[pk]
            for status in STATUSES:
                pairs.add_metric([team, name, status], counts[status])
            if _judged(counts):
                ratio.add_metric([team, name], _ratio(counts))
        yield pairs
        yield ratio
        yield self._set_compliance(per_cluster)

    def _set_compliance(self, per_cluster: dict[int, Counts]) -> Metric:
        family = GaugeMetricFamily(
            "keelson_cluster_set_compliance_ratio",
            "Compliant / judged (policy, cluster) pairs of the set's member clusters.",
            labels=["team", "cluster_set"],
        )
        if not per_cluster:
            return family
        for cluster_set in ClusterSet.objects.select_related("team").order_by("name"):
            total = _zero()
            members = cluster_set_clusters(cluster_set=cluster_set).values_list("pk", flat=True)
            for pk in members:
                for status, count in per_cluster.get(pk, {}).items():
                    total[status] += count
            if _judged(total):
                family.add_metric([cluster_set.team.name, cluster_set.name], _ratio(total))
        return family

    def _cost(self, now: datetime) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keelson_team_cost_month",
            f"Allocated cost since the start of this month (UTC), in {settings.KEELSON_CURRENCY}.",
            labels=["team", "currency"],
        )
        rows = (
            CostAllocation.objects.filter(hour__gte=month_start(now))
            .values("team_name")
            .annotate(total=Sum("total_cost"))
            .order_by("team_name")
        )
        for row in rows:
            family.add_metric([row["team_name"], settings.KEELSON_CURRENCY], float(row["total"]))
        yield family

    def _alerts(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keelson_alerts_firing",
            "Firing alerts by team and severity (silenced ones left out).",
            labels=["team", "severity"],
        )
        rows = (
            Alert.objects.filter(state=AlertState.FIRING, silence__isnull=True)
            .values("team__name", "severity")
            .annotate(n=Count("id"))
            .order_by("team__name", "severity")
        )
        for row in rows:
            family.add_metric([row["team__name"], row["severity"]], row["n"])
        yield family

    def _per_cluster(self, now: datetime) -> Iterator[Metric]:
        labels = ["cluster", "team"]
        score = GaugeMetricFamily(
            "keelson_cluster_health_score", "Health score (0-100) of a cluster.", labels=labels
        )
        nodes = GaugeMetricFamily("keelson_cluster_nodes", "Nodes of a cluster.", labels=labels)
        latency = GaugeMetricFamily(
            "keelson_cluster_api_latency_seconds",
            "Latency of the cluster API server's last probe.",
            labels=labels,
        )
        rows = (
            with_health_score(Cluster.objects.all(), now=now)
            .values_list(  # type: ignore[misc]
                "name", "team__name", "health_score", "node_count", "api_latency_ms"
            )
            .order_by("name")
        )
        for name, team, health, node_count, latency_ms in rows.iterator(chunk_size=2000):
            if health is not None:
                score.add_metric([name, team], health)
            nodes.add_metric([name, team], node_count)
            if latency_ms is not None:
                latency.add_metric([name, team], latency_ms / 1000)
        yield score
        yield nodes
        yield latency


def _zero() -> Counts:
    return dict.fromkeys(STATUSES, 0)


def _judged(counts: Counts) -> int:
    return counts[ResultStatus.COMPLIANT] + counts[ResultStatus.NONCOMPLIANT]


def _ratio(counts: Counts) -> float:
    compliant = counts[ResultStatus.COMPLIANT]
    return compliant / (compliant + counts[ResultStatus.NONCOMPLIANT])
