"""Reads of the cluster registry, scoped to what the user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.choices import Role
from accounts.selectors import AnyUser, team_ids_with_role
from clusters.models import Cluster, ClusterSet


def cluster_list(*, user: AnyUser, minimum: Role = Role.VIEWER) -> QuerySet[Cluster]:
    """Clusters of the teams where the user holds at least `minimum` (all of them for a
    superuser)."""
    if not user.is_authenticated:
        return Cluster.objects.none()
    if getattr(user, "is_superuser", False):
        return Cluster.objects.all()
    return Cluster.objects.filter(team_id__in=team_ids_with_role(user=user, minimum=minimum))


def cluster_get(*, user: AnyUser, name: str) -> Cluster | None:
    return cluster_list(user=user).select_related("team").filter(name=name).first()


def cluster_set_list(*, user: AnyUser) -> QuerySet[ClusterSet]:
    if not user.is_authenticated:
        return ClusterSet.objects.none()
    if getattr(user, "is_superuser", False):
        return ClusterSet.objects.all()
    return ClusterSet.objects.filter(team_id__in=team_ids_with_role(user=user, minimum=Role.VIEWER))
