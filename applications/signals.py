"""Applications' answers to what lower layers ask (connected in PlacementConfig.ready)."""

from __future__ import annotations

from typing import Any

from applications.models import ClusterWork
from clusters.models import Cluster


def work_leftovers(sender: Any, cluster: Cluster, **kwargs: Any) -> list[str]:
    """The objects applications put into `cluster` (`kind/namespace/name`): what may be
    left there when its agent never cleaned up (clusters/services/pullcleanup.py)."""
    found: list[str] = []
    for refs in ClusterWork.objects.filter(cluster=cluster).values_list(
        "applied_objects", flat=True
    ):
        for ref in refs or ():
            found.append(
                f"{ref['kind']}/{ref.get('namespace', '')}/{ref['name']}".replace("//", "/")
            )
    return found
