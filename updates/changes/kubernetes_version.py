"""Upgrade clusters' Kubernetes version through their provider (`cluster_upgrade`: an
Operation each, control plane first, then node pools). Not reversible: Kubernetes versions
do not go down, so a failed gate stops the run where it is.

Cancel: the upgrade is a `cluster.upgrade` Operation whose provider checks for a cancel
between its steps (`ActionContext.checkpoint`); cancelling that operation stops it at the
next step and `poll` reports the cluster failed ("canceled"), which stops the run. Aborting
the run cancels nothing: upgrades under way finish (updates.services.update_run_abort).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.choices import Role
from accounts.permissions import user_has_role
from clusters.eol import eol_for
from clusters.models import Cluster, ClusterProvisioning
from clusters.providers.base import Capabilities
from clusters.providers.registry import get_provider
from clusters.services.provisioning import cluster_upgrade
from operations.choices import OperationState
from operations.models import Operation
from updates.changes.base import ClusterPlan, Step
from updates.changes.kube_versions import (
    UpgradeFacts,
    already_there,
    eol_sentence,
    parse_version,
    plan_cluster,
    target_version,
)
from updates.changes.params import params_object

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from accounts.models import Team


def _node_count(spec: dict[str, Any]) -> int:
    pools = spec.get("node_pools") or []
    return sum(int(p.get("count") or 0) for p in pools if isinstance(p, dict))


def upgrade_facts(clusters: Sequence[Cluster]) -> list[UpgradeFacts]:
    """What the skip rules read, in one query for all clusters plus one capability look-up
    per provider."""
    provisioning = {
        p.cluster_id: p
        for p in ClusterProvisioning.objects.filter(cluster_id__in=[c.pk for c in clusters])
    }
    capabilities: dict[str, Capabilities | None] = {}
    facts = []
    for cluster in clusters:
        built = provisioning.get(cluster.pk)
        spec = built.spec if built is not None and isinstance(built.spec, dict) else {}
        provider = built.provider if built is not None else ""
        if built is not None and provider not in capabilities:
            try:
                capabilities[provider] = get_provider(provider).capabilities()
            except ValidationError:
                capabilities[provider] = None
        facts.append(
            UpgradeFacts(
                cluster_id=cluster.pk,
                name=cluster.name,
                provisioned=built is not None,
                provider=provider,
                capabilities=capabilities.get(provider),
                version=str(spec.get("kubernetes_version") or cluster.kubernetes_version),
                nodes=_node_count(spec) if spec else cluster.node_count,
            )
        )
    return facts


def operation_step(operation_id: str | None, *, doing: str) -> Step:
    """Where a provider Operation stands, as a Step (`doing`: what it does, for messages)."""
    operation = Operation.objects.filter(pk=operation_id).first() if operation_id else None
    if operation is None:
        return Step("failed", f"The {doing} operation is gone.")
    if operation.state == OperationState.PENDING:
        return Step("running", f"The {doing} waits for a worker.")
    if operation.state == OperationState.RUNNING:
        return Step("running", operation.message or f"{doing.capitalize()} under way.")
    if operation.state == OperationState.SUCCEEDED:
        return Step("done", operation.message)
    if operation.state == OperationState.CANCELED:
        return Step("failed", f"The {doing} was canceled: {operation.message}")
    return Step("failed", operation.error or operation.message or f"The {doing} failed.")


class KubernetesVersionChange:
    kind: ClassVar[str] = "kubernetes_version"
    reversible: ClassVar[bool] = False

    def __init__(self, *, team: Team, params: dict[str, Any]) -> None:
        self.team = team
        self.target = target_version(params_object(params, ("version",)).get("version"))

    def params(self) -> dict[str, Any]:
        return {"version": str(self.target)}

    def describe(self) -> str:
        return f"Kubernetes {self.target}"

    def plan(self, clusters: Sequence[Cluster]) -> list[ClusterPlan]:
        return [plan_cluster(facts, self.target) for facts in upgrade_facts(clusters)]

    def start(self, cluster: Cluster, *, actor: AbstractBaseUser | None) -> dict[str, Any]:
        """The rules again (the cluster may have changed since the preview), then the
        provider's upgrade. A refusal is kept in the state for `poll` to report."""
        (facts,) = upgrade_facts([cluster])
        plan = plan_cluster(facts, self.target)
        state: dict[str, Any] = {"from": plan.from_value, "to": plan.to_value}
        if already_there(facts.version, self.target):
            return state | {"noop": f"Already on {plan.from_value}."}
        if plan.skip_reason:
            return state | {"error": plan.skip_reason}
        if actor is not None and not user_has_role(actor, cluster.team, Role.ADMIN):
            # As POST /api/v1/clusters/<name>/upgrade/: upgrading takes an admin of the team.
            return state | {
                "error": f"Upgrading {cluster.name} takes an admin of team {cluster.team.name}; "
                f"{actor.get_username()} is not one."
            }
        try:
            operation = cluster_upgrade(actor=actor, cluster=cluster, version=str(self.target))
        except ValidationError as error:
            return state | {"error": " ".join(error.messages)}
        return state | {"operation": str(operation.pk)}

    def poll(self, cluster: Cluster, state: dict[str, Any]) -> Step:
        if state.get("error"):
            return Step("failed", str(state["error"]))
        if state.get("noop"):
            return Step("done", str(state["noop"]))
        return operation_step(state.get("operation"), doing="upgrade")

    def revert(
        self, cluster: Cluster, state: dict[str, Any], *, actor: AbstractBaseUser | None
    ) -> dict[str, Any]:
        raise ValidationError(
            f"{cluster.name}: a Kubernetes upgrade cannot be reverted (versions do not go down)."
        )

    def finish(self, clusters: Sequence[Cluster], *, actor: AbstractBaseUser | None) -> None:
        """Nothing: each successful upgrade stored its cluster's new spec already."""

    def impact(self, clusters: Sequence[Cluster]) -> dict[str, Any]:
        """The end of life of each cluster's version and of the target, on its provider
        (clusters/eol.py)."""
        today = timezone.now().date()
        found: dict[str, Any] = {}
        for cluster, facts in zip(clusters, upgrade_facts(clusters), strict=True):
            entry: dict[str, Any] = {}
            for side, version in (("from", parse_version(facts.version)), ("to", self.target)):
                if version is None:
                    continue
                ends = eol_for(cluster.provider, str(version))
                entry[f"{side}_eol"] = ends.isoformat() if ends else None
                entry[side] = eol_sentence(version, ends, today)
            found[cluster.name] = entry
        return found
