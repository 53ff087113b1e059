"""A policy's mode per cluster: overrides of the policy's own `mode` on some clusters.

The effective mode of a policy on a cluster is its override there (`PolicyClusterMode`)
if it has one, else the policy's mode. Everything that acts on enforce mode asks for the
effective mode: the sweep's remediation (`enforcement.clusters_enforce`), the check of
Keelson's own writes (`admission`) and what a pull cluster's agent is given (`agent`).
Evaluation itself does not depend on the mode: the same objects are judged either way.

An update run of kind `policy_mode` promotes a policy stage by stage with these
overrides, then makes the policy's own mode the new one (`policy_mode_finish`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.choices import Role
from accounts.permissions import require_role
from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.models import Cluster
from core.celery import task_send
from policies.choices import Mode
from policies.external.guard import refuse_external
from policies.models import Policy, PolicyClusterMode
from policies.services.evaluation import (
    BATCH_SIZE,
    EVALUATE_INTERVAL,
    EVALUATE_TASK,
    policy_clusters,
)
from policies.services.evaluation.sweep import agent_evaluate_key
from policies.services.policies import ENFORCE_ROLE

logger = logging.getLogger(__name__)
REASON_MAX = 500


def cluster_mode_overrides(
    policy_ids: Iterable[int], cluster_ids: Iterable[int]
) -> dict[tuple[int, int], PolicyClusterMode]:
    """The overrides of these policies on these clusters, by (policy id, cluster id)."""
    rows = PolicyClusterMode.objects.filter(
        policy_id__in=list(policy_ids), cluster_id__in=list(cluster_ids)
    ).select_related("set_by")
    return {(row.policy_id, row.cluster_id): row for row in rows}


def effective_modes(
    policies: Sequence[Policy], cluster_ids: Iterable[int]
) -> dict[tuple[int, int], str]:
    """The effective mode of every policy on every cluster, by (policy id, cluster id):
    one query whatever the number of pairs."""
    ids = list(cluster_ids)
    overrides = cluster_mode_overrides([p.pk for p in policies], ids)
    return {
        (policy.pk, cluster_id): mode_with(policy, overrides.get((policy.pk, cluster_id)))
        for policy in policies
        for cluster_id in ids
    }


def mode_with(policy: Policy, override: PolicyClusterMode | None) -> str:
    """The effective mode of `policy` on the cluster of `override` (None: it has none)."""
    return override.mode if override is not None else policy.mode


def effective_mode(policy: Policy, cluster: Cluster) -> str:
    """The mode `policy` has on `cluster`: its override there, else its own mode."""
    return effective_modes([policy], [cluster.pk])[(policy.pk, cluster.pk)]


def enforcing_on(cluster_id: int) -> Q:
    """A filter of Policy rows: those whose effective mode on the cluster is enforce."""
    here = PolicyClusterMode.objects.filter(policy_id=OuterRef("pk"), cluster_id=cluster_id)
    return (Q(mode=Mode.ENFORCE) & ~Exists(here.filter(mode=Mode.INFORM))) | Exists(
        here.filter(mode=Mode.ENFORCE)
    )


def enforcement_actor(
    policy: Policy, override: PolicyClusterMode | None
) -> AbstractBaseUser | None:
    """Who enforcement on a cluster acts for: whoever set the enforcing override there
    (the actor of an update run), else whoever set the policy itself to enforce."""
    if override is not None and override.mode == Mode.ENFORCE:
        return override.set_by
    return policy.enforced_by


def _authorize(policy: Policy, actor: AbstractBaseUser | None, enforcing: bool) -> None:
    """Turning enforcement on somewhere needs the enforce role (it writes into and
    deletes from clusters); turning it off, the operator role (as for the policy itself).
    `actor=None` is the system."""
    if actor is None:
        return
    if enforcing:
        require_role(actor, policy.team, ENFORCE_ROLE, doing="set a policy to enforce on clusters")
    else:
        require_role(actor, policy.team, Role.OPERATOR, doing="change a policy's cluster modes")


def _validate_clusters(
    policy: Policy, clusters: Sequence[Cluster], *, scoped: bool = True
) -> dict[str, list[str]]:
    """Problems with `clusters`: none named, another team's, or (`scoped`) outside the
    policy's scope."""
    if not clusters:
        return {"clusters": ["Name at least one cluster."]}
    foreign = sorted(c.name for c in clusters if c.team_id != policy.team_id)
    if foreign:
        return {"clusters": [f"No such cluster in team {policy.team.name}: {', '.join(foreign)}."]}
    if not scoped:
        return {}
    targeted = set(
        policy_clusters(policy=policy)
        .filter(pk__in=[c.pk for c in clusters])
        .values_list("pk", flat=True)
    )
    outside = sorted(c.name for c in clusters if c.pk not in targeted)
    if outside:
        return {
            "clusters": [
                f"Not targeted by policy {policy.name} (outside its scope): {', '.join(outside)}."
            ]
        }
    return {}


def evaluate_soon(policy: Policy, clusters: Sequence[Cluster]) -> None:
    """After the commit, have these clusters evaluated (forced) and enforced at once rather
    than at the next sweep: a push cluster's batch task evaluates then remediates; a pull
    cluster's agent is asked to evaluate (and enforce) at its next heartbeat."""
    if not policy.enabled or not clusters:
        return
    push = sorted(c.pk for c in clusters if c.mode == ClusterMode.PUSH)
    pull = [c.pk for c in clusters if c.mode != ClusterMode.PUSH]

    def send() -> None:
        cache.set_many({agent_evaluate_key(pk): True for pk in pull}, EVALUATE_INTERVAL)
        try:
            for start in range(0, len(push), BATCH_SIZE):
                task_send(
                    EVALUATE_TASK,
                    args=[push[start : start + BATCH_SIZE], [policy.pk], True],
                    expires=EVALUATE_INTERVAL,
                )
        except Exception:  # the broker is down: the next sweep enforces anyway
            logger.warning("could not queue the evaluation of policy %s", policy.pk, exc_info=True)

    transaction.on_commit(send)


@transaction.atomic
def policy_cluster_modes_set(
    *,
    actor: AbstractBaseUser | None,
    policy: Policy,
    clusters: Sequence[Cluster],
    mode: str,
    reason: str = "",
) -> list[PolicyClusterMode]:
    """Give `policy` the mode `mode` on `clusters` (of its team and in its scope), whatever
    its own mode. Enforcing somewhere needs the enforce role; the clusters that now
    enforce are evaluated and remediated at once."""
    refuse_external(policy)
    if mode not in Mode.values:
        raise ValidationError({"mode": [f"Use one of {', '.join(Mode.values)}."]})
    _authorize(policy, actor, enforcing=mode == Mode.ENFORCE)
    errors = _validate_clusters(policy, clusters)
    if len(reason) > REASON_MAX:
        errors["reason"] = [f"At most {REASON_MAX} characters."]
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    rows = PolicyClusterMode.objects.bulk_create(
        [
            PolicyClusterMode(
                policy=policy,
                cluster=cluster,
                mode=mode,
                set_by_id=actor.pk if actor is not None else None,
                set_at=now,
                reason=reason,
            )
            for cluster in clusters
        ],
        update_conflicts=True,
        unique_fields=["policy", "cluster"],
        update_fields=["mode", "set_by", "set_at", "reason"],
    )
    audit_record(
        actor=actor,
        action="policy.cluster_modes.set",
        target=policy,
        team=policy.team,
        detail={"clusters": sorted(c.name for c in clusters), "mode": mode, "reason": reason},
    )
    if mode == Mode.ENFORCE:
        evaluate_soon(policy, clusters)
    return rows


@transaction.atomic
def policy_cluster_modes_clear(
    *,
    actor: AbstractBaseUser | None,
    policy: Policy,
    clusters: Sequence[Cluster],
    reason: str = "",
) -> int:
    """Remove `policy`'s overrides on `clusters`: they follow the policy's own mode again.
    Returns how many were removed. When the policy enforces, this may turn enforcement on
    (enforce role needed) and those clusters are evaluated and remediated at once."""
    refuse_external(policy)
    enforcing = policy.mode == Mode.ENFORCE
    _authorize(policy, actor, enforcing=enforcing)
    # A cluster that left the policy's scope may still have an override to remove.
    errors = _validate_clusters(policy, clusters, scoped=False)
    if len(reason) > REASON_MAX:
        errors["reason"] = [f"At most {REASON_MAX} characters."]
    if errors:
        raise ValidationError(errors)
    cleared = PolicyClusterMode.objects.filter(
        policy=policy, cluster_id__in=[c.pk for c in clusters]
    )
    names = sorted(cleared.values_list("cluster__name", flat=True))
    cleared.delete()
    if names:
        audit_record(
            actor=actor,
            action="policy.cluster_modes.clear",
            target=policy,
            team=policy.team,
            detail={"clusters": names, "mode": policy.mode, "reason": reason},
        )
    if enforcing and names:
        evaluate_soon(policy, [c for c in clusters if c.name in names])
    return len(names)


@transaction.atomic
def policy_mode_finish(
    *,
    actor: AbstractBaseUser | None,
    policy: Policy,
    mode: str,
    clusters: Sequence[Cluster],
    reason: str = "",
) -> Policy:
    """The end of a staged mode change: the policy's own mode becomes `mode` and the
    overrides at `mode` on `clusters` (those the change reached) are removed. No cluster's
    effective mode changes: the policy's other clusters without an override keep the mode
    they had, through an override at the old mode. As when a user sets the mode, the
    actor becomes `enforced_by` of an enforcing policy."""
    refuse_external(policy)
    if mode not in Mode.values:
        raise ValidationError({"mode": [f"Use one of {', '.join(Mode.values)}."]})
    _authorize(policy, actor, enforcing=mode == Mode.ENFORCE)
    policy = Policy.objects.select_for_update().select_related("team").get(pk=policy.pk)
    before = policy.mode
    ids = [c.pk for c in clusters]
    cleared = PolicyClusterMode.objects.filter(policy=policy, cluster_id__in=ids, mode=mode)
    reached = dict(cleared.values_list("cluster_id", "cluster__name"))
    cleared.delete()
    kept: list[Cluster] = []
    if before != mode:
        kept = list(
            policy_clusters(policy=policy)
            .exclude(pk__in=PolicyClusterMode.objects.filter(policy=policy).values("cluster_id"))
            .exclude(pk__in=list(reached))
            .order_by("name")
        )
    now = timezone.now()
    kept_reason = f"kept at {before} when the policy became {mode}"
    kept_reason = (f"{kept_reason} ({reason})" if reason else kept_reason)[:REASON_MAX]
    PolicyClusterMode.objects.bulk_create(
        [
            PolicyClusterMode(
                policy=policy,
                cluster=cluster,
                mode=before,
                set_by_id=actor.pk if actor is not None else None,
                set_at=now,
                reason=kept_reason,
            )
            for cluster in kept
        ]
    )
    policy.mode = mode
    if mode != Mode.ENFORCE:
        policy.enforced_by_id = None
    elif actor is not None:
        policy.enforced_by_id = actor.pk
    policy.save(update_fields=["mode", "enforced_by", "updated_at"])
    audit_record(
        actor=actor,
        action="policy.mode.finish",
        target=policy,
        team=policy.team,
        detail={
            "mode": mode,
            "previous": before,
            "cleared": sorted(reached.values()),
            "kept": [c.name for c in kept],
            "reason": reason,
        },
    )
    return policy
