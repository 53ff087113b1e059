"""Reads of the cluster registry, scoped to what the user may see (accounts/permissions.py)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.permissions import Action, AnyUser, restrict
from clusters.models import Cluster, ClusterSet


def cluster_list(*, user: AnyUser, action: Action = "view") -> QuerySet[Cluster]:
    """Clusters of the teams where the user may `action` (all of them for a superuser)."""
    return restrict(Cluster.objects.all(), user, action)


def cluster_get(*, user: AnyUser, name: str) -> Cluster | None:
    return cluster_list(user=user).select_related("team").filter(name=name).first()


def cluster_get_or_404(*, user: AnyUser, name: str) -> Cluster:
    """The cluster named `name` if the user may see it; 404 otherwise (an outsider learns
    nothing of another team's clusters)."""
    cluster = cluster_get(user=user, name=name)
    if cluster is None:
        raise Http404("No such cluster.")
    return cluster


def cluster_set_list(*, user: AnyUser) -> QuerySet[ClusterSet]:
    return restrict(ClusterSet.objects.all(), user, "view")
