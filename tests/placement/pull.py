"""Pull-mode clusters for lifecycle tests that need no API server: the hub never calls them,
and the test plays their agent (fetching work, reporting it available)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from accounts.models import Team
from applications.models import Application, ClusterWork
from applications.propagation import agent_work, agent_work_report
from clusters.models import Cluster
from clusters.services.registration import ClusterFields, cluster_register_pull

GIB = 2**30


def pull_cluster(team: Team, name: str, labels: dict[str, str]) -> Cluster:
    """A Ready pull-mode cluster with 8 CPU and 16 GiB free."""
    cluster, _ = cluster_register_pull(
        actor=None, fields=ClusterFields(name=name, team=team, labels=labels)
    )
    Cluster.objects.filter(pk=cluster.pk).update(
        status="ready",
        status_changed_at=timezone.now(),
        allocatable_cpu_millis=8000,
        allocatable_memory_bytes=16 * GIB,
    )
    cluster.refresh_from_db()
    return cluster


def agent_reports(cluster: Cluster, application: Application, *, error: str = "") -> None:
    """The cluster's agent fetches its work and reports the application's desired version
    complete (or failed with `error`)."""
    agent_work(cluster=cluster)
    work = ClusterWork.objects.get(cluster=cluster, application=application)
    report: dict[str, Any] = {"version": work.desired_version, "complete": not error, "desired": 1}
    report |= {"available": 0, "error": error} if error else {"available": 1}
    assert agent_work_report(cluster=cluster, applications={application.name: report}) == 1
