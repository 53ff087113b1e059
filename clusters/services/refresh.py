"""An operator's "evaluate now / compute now": every enabled policy of the team evaluated on
the chosen clusters (forced, as the policy page's evaluate is) and this hour's cost computed,
queued for the `policies` and `costs` workers, never run on the web thread; and "probe now"
(a full collection of one push-mode cluster) for the page and the API alike.

Sent by name: policies and cost sit above the registry (DESIGN.md, layers), as the
first-seen tasks of `collection.py` are.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from accounts.choices import Role
from accounts.permissions import AnyUser, has_role_anywhere
from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.models import Cluster
from core.celery import app

logger = logging.getLogger(__name__)

EVALUATE_TASK = ("policies.tasks.policies_evaluate_batch_task", "policies")
COST_TASK = ("costs.tasks.cost_compute_clusters_task", "costs")
COLLECT_TASK = ("clusters.tasks.clusters_collect_shard_task", "clusters")
PULL_PROBE = (
    "A pull-mode cluster cannot be probed from the hub: its agent reports inventory and "
    "health with every heartbeat."
)
# Clusters per message: the policy sweep's batch size (policies.services.evaluation).
BATCH_SIZE = 50
# A queued refresh older than this is stale: the periodic sweeps have run since.
EXPIRES = 600


@dataclass(frozen=True)
class Refresh:
    """What an operator asked to refresh now."""

    policies: bool
    cost: bool

    @property
    def wording(self) -> str:
        parts = (["Policy evaluation"] if self.policies else []) + (
            ["this hour's cost"] if self.cost else []
        )
        return " and ".join(parts)


BOTH = Refresh(policies=True, cost=True)
COST_ONLY = Refresh(policies=False, cost=True)


def user_operates_any(*, user: AnyUser) -> bool:
    """Whether the fleet-wide buttons are offered: the user operates at least one team."""
    return has_role_anywhere(user, Role.OPERATOR)


def clusters_refresh_now(
    *,
    actor: AnyUser,
    clusters: Sequence[Cluster],
    what: Refresh = BOTH,
    scope: str,
    request: HttpRequest | None = None,
) -> int:
    """Queue the refresh of `clusters` (already role-checked by the caller) after commit, in
    batches; audit it once. Returns the number of clusters queued."""
    ids = sorted(c.pk for c in clusters)
    if not ids or not (what.policies or what.cost):
        return 0
    # The hub evaluates push-mode clusters only (as the sweep does): a pull-mode cluster
    # would only get an error row saying so, hiding its real results.
    pushed = sorted(c.pk for c in clusters if c.mode == ClusterMode.PUSH)
    messages: list[tuple[str, str, list[int], dict[str, Any]]] = []
    if what.policies and pushed:
        messages.append((*EVALUATE_TASK, pushed, {"policy_ids": None, "force": True}))
    if what.cost:
        messages.append((*COST_TASK, ids, {}))

    def send() -> None:
        for name, queue, targets, kwargs in messages:
            for start in range(0, len(targets), BATCH_SIZE):
                batch = targets[start : start + BATCH_SIZE]
                try:
                    app.send_task(
                        name,
                        args=[batch],
                        kwargs=kwargs,
                        queue=queue,
                        routing_key=queue,
                        expires=EXPIRES,
                    )
                except Exception:  # the broker is down: the periodic runs cover it
                    logger.warning("could not queue %s for clusters %s", name, batch)

    teams = {c.team_id for c in clusters}
    audit_record(
        actor=actor,
        action="clusters.refresh_now",
        target=clusters[0] if len(clusters) == 1 else None,
        team=clusters[0].team if len(teams) == 1 else None,
        detail={
            "scope": scope,
            "clusters": len(ids),
            "evaluated": len(pushed) if what.policies else 0,
            "policies": what.policies,
            "cost": what.cost,
        },
        request=request,
    )
    transaction.on_commit(send)
    return len(ids)


def cluster_probe_now(
    *, actor: AnyUser, cluster: Cluster, request: HttpRequest | None = None
) -> str:
    """Queue a full collection of `cluster` now (role checked by the caller), after
    commit; audited. Returns the task's id. A pull-mode cluster is refused (ValidationError
    on `mode`, nothing queued or recorded): the hub holds no way in, its agent reports."""
    if cluster.mode != ClusterMode.PUSH:
        raise ValidationError({"mode": PULL_PROBE})
    task_id = str(uuid.uuid4())
    name, queue = COLLECT_TASK

    def send() -> None:
        try:
            app.send_task(
                name,
                args=[[cluster.pk]],
                kwargs={"scheduled": False},
                queue=queue,
                routing_key=queue,
                task_id=task_id,
                expires=EXPIRES,
            )
        except Exception:  # the broker is down: the periodic collection covers it
            logger.warning("could not queue a collection of cluster %s", cluster.pk)

    with transaction.atomic():
        audit_record(
            actor=actor,
            action="cluster.probe",
            target=cluster,
            team=cluster.team,
            detail={"task": task_id},
            request=request,
        )
        transaction.on_commit(send)
    return task_id
