"""Policies' answers to what lower layers announce (connected in PoliciesConfig.ready)."""

from __future__ import annotations

from typing import Any

from accounts.models import Team
from clusters.models import Cluster
from policies.choices import ActionKind, ActionStatus
from policies.models import EnforcementAction
from policies.services.library import library_load


def give_library(sender: Any, team: Team, **kwargs: Any) -> None:
    """Every team starts with the bundled policy library, in inform mode (DESIGN.md)."""
    library_load(team=team)


def enforced_leftovers(sender: Any, cluster: Cluster, **kwargs: Any) -> list[str]:
    """The objects enforcement applied in `cluster` (`kind/namespace/name`): what may be
    left there when its agent never cleaned up (clusters/services/pullcleanup.py)."""
    targets = EnforcementAction.objects.filter(
        cluster=cluster, action=ActionKind.APPLY, status=ActionStatus.SUCCEEDED
    ).values_list("target", flat=True)
    return sorted(
        {
            f"{t.get('kind')}/{t.get('namespace', '')}/{t.get('name')}".replace("//", "/")
            for t in targets
        }
    )
