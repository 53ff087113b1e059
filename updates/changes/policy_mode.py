"""A policy's mode, cluster group by cluster group: inform → enforce (or back).

Each cluster's change is an override of the policy's mode on that cluster
(`policies.services.cluster_modes`), a quick database write. What enforce mode does
then happens on its own: the check of Keelson's own writes reads the mode at each write,
so it refuses at once; remediation of templates runs after an evaluation, which the
override queues at once (a push cluster's batch task evaluates then remediates; a pull
cluster's agent is asked to evaluate at its next heartbeat). `poll` therefore waits for
an evaluation of the cluster after the change (and, when it found template violations,
for their remediation and the evaluation that follows); going to inform needs nothing
on the cluster and is done at once. When every stage succeeded, `finish` makes the mode
the policy's own and removes the overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from clusters.choices import ClusterMode
from policies.choices import ActionStatus, Mode, ResultStatus, RuleKind
from policies.models import EnforcementAction, Policy, PolicyEvaluation
from policies.services.cluster_modes import (
    cluster_mode_overrides,
    evaluate_soon,
    mode_with,
    policy_cluster_modes_clear,
    policy_cluster_modes_set,
    policy_mode_finish,
)
from policies.services.evaluation import EVALUATE_INTERVAL, policy_clusters
from policies.services.impact import policy_enforce_impact
from updates.changes.base import ClusterPlan, Step

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from accounts.models import Team
    from clusters.models import Cluster

PARAMS = {"policy", "mode"}
# A push cluster is evaluated by a queued batch task within seconds; an agent asks for
# its work about once a minute.
ESTIMATE_PUSH, ESTIMATE_PULL = 30, 90


class PolicyModeChange:
    kind: ClassVar[str] = "policy_mode"
    reversible: ClassVar[bool] = True

    def __init__(self, *, team: Team, params: dict[str, Any]) -> None:
        errors: dict[str, list[str]] = {}
        unknown = sorted(set(params) - PARAMS)
        if unknown:
            errors["change_params"] = [f"Unknown parameters: {', '.join(unknown)}."]
        name = params.get("policy")
        mode = params.get("mode", Mode.ENFORCE)
        policy = (
            Policy.objects.select_related("team").filter(team=team, name=name).first()
            if isinstance(name, str) and name
            else None
        )
        if not name:
            errors["policy"] = ["Name the policy to change."]
        elif policy is None:
            errors["policy"] = [f"No policy named {name!r} in team {team.name}."]
        elif policy.external:
            errors["policy"] = [
                f"Policy {policy.name} is judged by {policy.get_source_engine_display()}: "
                "Keelson does not enforce it."
            ]
        elif policy.managed_by:
            errors["policy"] = [
                f"Policy {policy.name} is declared in a Git repository: change its mode there."
            ]
        elif not policy.enabled:
            errors["policy"] = [f"Policy {policy.name} is disabled: enable it first."]
        if mode not in Mode.values:
            errors["mode"] = [f"Use one of {', '.join(Mode.values)}."]
        if errors:
            raise ValidationError(errors)
        assert policy is not None
        self.team = team
        self.policy = policy
        self.mode = str(mode)

    def params(self) -> dict[str, Any]:
        return {"policy": self.policy.name, "mode": self.mode}

    def describe(self) -> str:
        return f"policy {self.policy.name} → {self.mode}"

    def plan(self, clusters: Sequence[Cluster]) -> list[ClusterPlan]:
        ids = [c.pk for c in clusters]
        targeted = set(
            policy_clusters(policy=self.policy).filter(pk__in=ids).values_list("pk", flat=True)
        )
        overrides = cluster_mode_overrides([self.policy.pk], ids)
        plans = []
        for cluster in clusters:
            override = overrides.get((self.policy.pk, cluster.pk))
            now = mode_with(self.policy, override)
            skip = ""
            if cluster.pk not in targeted:
                skip = f"not targeted by policy {self.policy.name} (outside its scope)"
            elif now == self.mode:
                skip = f"already {self.mode}"
            plans.append(
                ClusterPlan(
                    cluster_id=cluster.pk,
                    cluster_name=cluster.name,
                    from_value=now,
                    to_value=self.mode,
                    skip_reason=skip,
                    estimate_seconds=(
                        ESTIMATE_PUSH if cluster.mode == ClusterMode.PUSH else ESTIMATE_PULL
                    ),
                    detail={"override": override.mode if override is not None else None},
                )
            )
        return plans

    def start(self, cluster: Cluster, *, actor: AbstractBaseUser | None) -> dict[str, Any]:
        before = cluster_mode_overrides([self.policy.pk], [cluster.pk]).get(
            (self.policy.pk, cluster.pk)
        )
        policy_cluster_modes_set(
            actor=actor,
            policy=self.policy,
            clusters=[cluster],
            mode=self.mode,
            reason=f"update run: {self.describe()}",
        )
        return {
            "mode": self.mode,
            "previous_override": before.mode if before is not None else None,
            "since": timezone.now().isoformat(),
        }

    def poll(self, cluster: Cluster, state: dict[str, Any]) -> Step:
        if state.get("mode") != Mode.ENFORCE:
            # Nothing to do on the cluster: admission and the sweep stop enforcing at once.
            return Step("done", "inform: reported only from now on")
        gone = self._gone()
        if gone:  # it will never be evaluated again: waiting would never end
            return Step("failed", gone)
        since = datetime.fromisoformat(str(state["since"]))
        return enforced_step(self.policy, cluster, since)

    def _gone(self) -> str:
        """Why the policy can no longer be evaluated (disabled or deleted meanwhile), if so."""
        found = Policy.all_objects.filter(pk=self.policy.pk).values("enabled", "deleted_at")
        state = found.first()
        if state is None or state["deleted_at"] is not None:
            return f"policy {self.policy.name} was deleted"
        return "" if state["enabled"] else f"policy {self.policy.name} was disabled"

    def revert(
        self, cluster: Cluster, state: dict[str, Any], *, actor: AbstractBaseUser | None
    ) -> dict[str, Any]:
        previous = state.get("previous_override")
        reason = f"update run reverted: {self.describe()}"
        if previous is None:
            policy_cluster_modes_clear(
                actor=actor, policy=self.policy, clusters=[cluster], reason=reason
            )
        else:
            policy_cluster_modes_set(
                actor=actor, policy=self.policy, clusters=[cluster], mode=previous, reason=reason
            )
        self.policy.refresh_from_db(fields=["mode"])
        return {
            "mode": previous or self.policy.mode,
            "previous_override": previous,
            "since": timezone.now().isoformat(),
            "reverting": True,
        }

    def finish(self, clusters: Sequence[Cluster], *, actor: AbstractBaseUser | None) -> None:
        policy_mode_finish(
            actor=actor,
            policy=self.policy,
            mode=self.mode,
            clusters=clusters,
            reason=f"update run: {self.describe()}",
        )

    def impact(self, clusters: Sequence[Cluster]) -> dict[str, Any]:
        if self.mode != Mode.ENFORCE:
            return {}
        return {
            name: impact.as_json()
            for name, impact in policy_enforce_impact(policy=self.policy, clusters=clusters).items()
        }


def enforced_step(policy: Policy, cluster: Cluster, since: datetime) -> Step:
    """Whether `cluster` has been evaluated, and remediated where templates asked for it,
    since enforcement was turned on there at `since`. A failed remediation fails."""
    judged = (
        PolicyEvaluation.objects.filter(policy=policy, cluster=cluster)
        .filter(Q(evaluated_at__gte=since) | Q(checked_at__gte=since))
        .order_by("-evaluated_at", "-id")
        .first()
    )
    if judged is None:
        _ask_again(policy, cluster, since)
        return Step("running", "waiting for the cluster's evaluation in enforce mode")
    actions = list(
        EnforcementAction.objects.filter(policy=policy, cluster=cluster, created_at__gte=since)
    )
    failed = [a for a in actions if a.status == ActionStatus.FAILED]
    if failed:
        target = failed[0].target
        return Step(
            "failed",
            f"remediation failed on {len(failed)} object(s), first {target.get('kind')} "
            f"{target.get('namespace', '')}/{target.get('name')}: {failed[0].message}",
        )
    templates = set(policy.rules.filter(kind=RuleKind.TEMPLATE).values_list("name", flat=True))
    to_fix = judged.status == ResultStatus.NONCOMPLIANT and any(
        v.get("rule") in templates for v in judged.violations
    )
    if to_fix and not any(a.created_at <= judged.evaluated_at for a in actions):
        return Step("running", "remediation due")
    remediated = f"{len(actions)} object(s) remediated; " if actions else ""
    return Step("done", f"{remediated}evaluated in enforce mode: {judged.message}")


def _ask_again(policy: Policy, cluster: Cluster, since: datetime) -> None:
    """The queued evaluation was lost (broker down, expired): ask again, at most once per
    sweep interval (the sweep does not force an evaluation of an unchanged cluster)."""
    if (timezone.now() - since).total_seconds() < EVALUATE_INTERVAL:
        return
    if cache.add(f"updates:policy-mode:ask:{policy.pk}:{cluster.pk}", 1, EVALUATE_INTERVAL):
        evaluate_soon(policy, [cluster])
