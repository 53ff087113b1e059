"""Which clusters a policy targets, and which enabled policies target each cluster."""

from __future__ import annotations

from django.db.models import QuerySet

from applications.models import ClusterWork
from clusters.labels import LabelSelector
from clusters.models import Cluster
from clusters.services.lifecycle import cluster_set_clusters
from policies.models import Policy


def policy_clusters(*, policy: Policy) -> QuerySet[Cluster]:
    """The clusters a policy targets: its team's clusters, narrowed to where the
    application named by `placement` runs (if any), to the union of its cluster sets (if
    any) and then to its selector (if any). A placement whose application is gone targets
    nothing (fail closed rather than widen to the whole team)."""
    query = Cluster.objects.filter(team_id=policy.team_id)
    if policy.placement:
        query = query.filter(
            pk__in=ClusterWork.objects.filter(
                application__team_id=policy.team_id, application__name=policy.placement
            ).values("cluster_id")
        )
    sets = list(policy.cluster_sets.all())
    if sets:
        members = Cluster.objects.none()
        for cluster_set in sets:
            members = members | cluster_set_clusters(cluster_set=cluster_set)
        query = query.filter(pk__in=members.values("pk"))
    if policy.cluster_selector:
        query = query.filter(LabelSelector.parse(policy.cluster_selector).to_q())
    return query


def applicable(clusters: list[Cluster], policy_ids: list[int] | None) -> dict[int, list[Policy]]:
    """The enabled policies targeting each cluster, loaded once for all of them: one query
    for the teams' policies (with rules and sets), one per policy that narrows its
    targets (placement, cluster sets or selector)."""
    query = Policy.objects.filter(
        team_id__in={c.team_id for c in clusters},
        enabled=True,
        source_engine="",  # external policies: their engine judges them (services/external)
    ).prefetch_related("rules", "cluster_sets")
    if policy_ids is not None:
        query = query.filter(pk__in=policy_ids)
    ids = [c.pk for c in clusters]
    by_team: dict[int, list[tuple[Policy, set[int] | None]]] = {}
    for policy in query.order_by("pk"):
        narrowed = bool(policy.placement or policy.cluster_selector or policy.cluster_sets.all())
        targets = (
            set(policy_clusters(policy=policy).filter(pk__in=ids).values_list("pk", flat=True))
            if narrowed
            else None
        )
        by_team.setdefault(policy.team_id, []).append((policy, targets))
    return {
        c.pk: [p for p, targets in by_team.get(c.team_id, []) if targets is None or c.pk in targets]
        for c in clusters
    }
