"""Node pool updates: a new image, instance type and/or kubelet version for one pool, by
rolling replacement (`cluster_pool_update`: surge one node, drain the old one through the
Eviction API, remove it). Reversible: `revert` replaces the nodes again with what the pool
ran before."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ValidationError

from clusters.models import Cluster, ClusterProvisioning
from clusters.providers.base import Capabilities, ClusterSpec
from clusters.providers.registry import get_provider
from clusters.services.provisioning import UNCHANGED, cluster_pool_update, pool_changes
from operations.choices import OperationState
from operations.models import Operation
from updates.changes.base import ClusterPlan, Step

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from accounts.models import Team

_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
# About what one node's replacement takes (start, Ready, drain, remove).
SECONDS_PER_NODE = 90
FIELDS = ("image", "instance_type", "version")


class NodePoolChange:
    kind: ClassVar[str] = "node_pool"
    reversible: ClassVar[bool] = True

    def __init__(self, *, team: Team, params: dict[str, Any]) -> None:
        self.team = team
        pool = str(params.get("pool") or "")
        if not _POOL_NAME.match(pool):
            raise ValidationError({"pool": f"{pool!r} is not a node pool name (a DNS label)."})
        unknown = set(params) - {"pool", *FIELDS}
        if unknown:
            raise ValidationError(
                {"change_params": f"Unknown parameters: {', '.join(sorted(unknown))}."}
            )
        changes = pool_changes(*(params.get(name) for name in FIELDS))
        self._params: dict[str, Any] = {"pool": pool, **changes}

    @property
    def pool(self) -> str:
        return str(self._params["pool"])

    @property
    def changes(self) -> dict[str, str]:
        return {name: self._params[name] for name in FIELDS if name in self._params}

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def describe(self) -> str:
        what = ", ".join(f"{name} {value or '(default)'}" for name, value in self.changes.items())
        return f"node pool {self.pool} → {what}"

    def plan(self, clusters: Sequence[Cluster]) -> list[ClusterPlan]:
        specs = {
            p.cluster_id: p
            for p in ClusterProvisioning.objects.filter(cluster__in=[c.pk for c in clusters])
        }
        capabilities: dict[str, Capabilities] = {}
        plans = []
        for cluster in clusters:
            provisioning = specs.get(cluster.pk)
            base: dict[str, Any] = {"cluster_id": cluster.pk, "cluster_name": cluster.name}
            if provisioning is None:
                plans.append(
                    ClusterPlan(
                        **base,
                        skip_reason="Registered, not created by Keelson: its node pools are "
                        "managed elsewhere.",
                    )
                )
                continue
            if provisioning.provider not in capabilities:
                capabilities[provisioning.provider] = get_provider(
                    provisioning.provider
                ).capabilities()
            plans.append(
                self._plan_one(base, ClusterSpec.from_json(provisioning.spec), capabilities)
            )
        return plans

    def _plan_one(
        self, base: dict[str, Any], spec: ClusterSpec, capabilities: dict[str, Capabilities]
    ) -> ClusterPlan:
        current = next((p for p in spec.node_pools if p.name == self.pool), None)
        if current is None:
            return ClusterPlan(**base, skip_reason=f"It has no node pool {self.pool}.")
        can = capabilities[spec.provider]
        if not can.update_pool:
            reason = can.update_pool_reason or f"The {spec.provider} provider cannot do it."
            return ClusterPlan(**base, skip_reason=reason)
        was = current.describe(spec.kubernetes_version)
        try:
            wanted = spec.with_pool(self.pool, **self.changes)
        except ValidationError as error:
            return ClusterPlan(**base, from_value=was, skip_reason=" ".join(error.messages))
        target = wanted.pool(self.pool)
        if target.runs(wanted.kubernetes_version) == current.runs(spec.kubernetes_version):
            return ClusterPlan(**base, from_value=was, to_value=was, skip_reason="Already there.")
        return ClusterPlan(
            **base,
            from_value=was,
            to_value=target.describe(wanted.kubernetes_version),
            estimate_seconds=max(current.count, 1) * SECONDS_PER_NODE,
            detail={"nodes": current.count},
        )

    def start(self, cluster: Cluster, *, actor: AbstractBaseUser | None) -> dict[str, Any]:
        operation = cluster_pool_update(
            actor=actor, cluster=cluster, pool=self.pool, **self.changes
        )
        return {"operation": str(operation.pk), "previous": operation.params["previous"]}

    def poll(self, cluster: Cluster, state: dict[str, Any]) -> Step:
        if state.get("operation") is None:
            return Step("done", state.get("message", ""))
        operation = Operation.objects.filter(pk=state["operation"]).first()
        if operation is None:
            return Step("failed", "The node pool update's operation is gone.")
        if operation.state == OperationState.SUCCEEDED:
            return Step("done", operation.message)
        if operation.state == OperationState.FAILED:
            return Step("failed", operation.error or operation.message)
        if operation.state == OperationState.CANCELED:
            return Step("failed", f"Canceled: {operation.message}")
        return Step("running", operation.message)

    def revert(
        self, cluster: Cluster, state: dict[str, Any], *, actor: AbstractBaseUser | None
    ) -> dict[str, Any]:
        previous: dict[str, str] = state["previous"]
        running = (
            Operation.objects.filter(pk=state["operation"]).first()
            if state.get("operation")
            else None
        )
        if running is not None and not running.is_final:
            raise ValidationError(
                f"The node pool update of {cluster.name} is still running: cancel it first."
            )
        try:
            operation = cluster_pool_update(
                actor=actor, cluster=cluster, pool=self.pool, **previous
            )
        except ValidationError as error:
            refusals = getattr(error, "error_dict", {}).get("pool", [])
            if refusals and refusals[0].code == UNCHANGED:  # nothing changed: nothing to undo
                return {"operation": None, "previous": previous, "message": refusals[0].message}
            raise
        return {"operation": str(operation.pk), "previous": previous, "reverting": True}

    def finish(self, clusters: Sequence[Cluster], *, actor: AbstractBaseUser | None) -> None:
        return None

    def impact(self, clusters: Sequence[Cluster]) -> dict[str, Any]:
        """The nodes each cluster's pool has (each is replaced, one at a time)."""
        return {
            plan.cluster_name: {"nodes": plan.detail["nodes"]}
            for plan in self.plan(clusters)
            if not plan.skip_reason
        }
