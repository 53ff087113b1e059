"""A node pool's rolling replacement, one short check at a time (`cluster.pool_update`).

For each node of the pool, with a surge of one: start the replacement node (new image,
instance type or kubelet version), wait until it is Ready, cordon the old node, evict its
pods through the Eviction API (kube.drain: PodDisruptionBudgets are honoured, a refused
eviction is tried again at the next check), and when nothing is left on it remove it;
then the next node. A drain that does not finish within KEELSON_POOL_DRAIN_TIMEOUT fails
the update: the old node is not removed, it is uncordoned, and the replacement stays.

No check waits: each does what is possible now and sends the next one with a countdown.
Where the update stands (the plan, the node, the phase) is the operation's `result`,
saved by a conditional update on its `tick`, so a duplicate message does nothing and a
check whose worker died is simply done again (every step is idempotent).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.choices import Lifecycle
from clusters.models import Cluster, ClusterProvisioning
from clusters.providers.base import ClusterSpec, PoolNodes
from clusters.providers.registry import get_provider
from clusters.services.collection import clusters_collect
from clusters.services.credentials import cluster_api_client
from clusters.services.provisioning import lifecycle_settle_unclaimed
from core.celery import PermanentError
from kube.client import ClusterConnectError, classify, get_json
from kube.drain import NodePods, cordon, evict, evictable_pods, eviction_version_of, uncordon
from operations.choices import FINAL_STATES, LogLevel, OperationState
from operations.dispatch import exclusive_operation, operation_check_later
from operations.models import Operation
from operations.services import (
    operation_claim,
    operation_finish,
    operation_should_stop,
    operation_update,
)

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
# Where each node's replacement stands, in order.
SURGE, READY, DRAIN, REMOVE, SETTLE = "surge", "ready", "drain", "remove", "settle"
_PHASE_SHARE = {SURGE: 0.0, READY: 0.2, DRAIN: 0.4, REMOVE: 0.9, SETTLE: 1.0}


class UpdateFailed(Exception):
    pass


def _is_ready(node: dict[str, Any] | None) -> bool:
    conditions = (node or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _read_node(api: k8s.ApiClient, name: str) -> dict[str, Any] | None:
    try:
        node: dict[str, Any] = get_json(api, f"/api/v1/nodes/{name}")
    except ApiException as error:
        if error.status == 404:
            return None
        raise classify(error) from None
    return node


def blocked_summary(pods: NodePods, budgets: dict[str, str]) -> str:
    """Like "1 pod blocked by PDB web-pdb, 1 held (...)"; "" when nothing waits."""
    parts = []
    by_budget: dict[str, int] = {}
    for budget in budgets.values():
        by_budget[budget] = by_budget.get(budget, 0) + 1
    for budget, count in sorted(by_budget.items()):
        noun = "pod" if count == 1 else "pods"
        parts.append(f"{count} {noun} blocked by PDB {budget or '(unnamed)'}")
    if pods.held:
        parts.append(
            f"{len(pods.held)} held ({'; '.join(f'{p} {w}' for p, w in pods.held.items())})"
        )
    if pods.terminating:
        parts.append(f"{len(pods.terminating)} terminating")
    return ", ".join(parts)


class _Check:
    """One check of a pool update: does what is due now from where `state` stands."""

    def __init__(self, operation: Operation, cluster: Cluster) -> None:
        self.operation = operation
        self.cluster = cluster
        self.pool: str = operation.params["pool"]
        self.spec = ClusterSpec.from_json(operation.params["spec"])
        provider = get_provider(ClusterProvisioning.objects.get(cluster=cluster).provider)
        # `cluster_pool_update` started it only for a provider that can.
        self.provider = cast(PoolNodes, provider)
        self.state: dict[str, Any] = dict(operation.result or {})
        self._api: k8s.ApiClient | None = None

    @property
    def api(self) -> k8s.ApiClient:
        if self._api is None:
            self._api = cluster_api_client(cluster=self.cluster)
        return self._api

    def log(self, text: str, *, level: LogLevel = LogLevel.INFO) -> None:
        operation_update(operation_id=self.operation.pk, log=text, level=level)

    def report(self, message: str) -> None:
        steps = max(len(self.state["steps"]), 1)
        share = _PHASE_SHARE[self.state["phase"]]
        progress = 5 + int(90 * (min(self.state["step"], steps) + share) / steps)
        operation_update(
            operation_id=self.operation.pk, progress=min(progress, 99), message=message
        )

    # --- the plan ----------------------------------------------------------------------
    def plan(self) -> None:
        """Pair each node that does not run the new spec with its replacement (none when
        an earlier, failed update already started it)."""
        target = self.spec.pool(self.pool)
        wanted = [
            self.provider.pool_node_name(self.cluster, self.spec, self.pool, index)
            for index in range(target.count)
        ]
        current = self.provider.pool_nodes(self.cluster, self.pool)
        old = [name for name in current if name not in wanted]
        missing = [name for name in wanted if name not in current]
        steps = [
            {"old": name, "new": missing[index] if index < len(missing) else ""}
            for index, name in enumerate(old)
        ]
        steps += [{"old": "", "new": name} for name in missing[len(old) :]]
        self.state.update(steps=steps, step=0, phase=SURGE, deadline=None, refused=0)
        what = target.describe(self.spec.kubernetes_version)
        self.log(
            f"Node pool {self.pool}: {len(steps)} node(s) to replace with {what}: "
            + (", ".join(s["old"] or "(new)" for s in steps) or "none")
        )

    # --- the checks --------------------------------------------------------------------
    def deadline_passed(self) -> bool:
        deadline = self.state.get("deadline")
        return deadline is not None and timezone.now() > datetime.fromisoformat(deadline)

    def _set_phase(self, phase: str, *, timeout: float | None = None) -> None:
        self.state["phase"] = phase
        self.state["deadline"] = (
            (timezone.now() + timedelta(seconds=timeout)).isoformat() if timeout else None
        )

    def _where(self) -> str:
        return f"node {self.state['step'] + 1} of {len(self.state['steps'])}"

    def advance(self) -> float | None:
        """Do what is due now; the seconds until the next check, or None when done."""
        while True:
            if operation_should_stop(operation_id=self.operation.pk):
                raise UpdateFailed("canceled")
            steps, phase = self.state["steps"], self.state["phase"]
            if phase == SETTLE:
                return self._settle()
            if self.state["step"] >= len(steps):
                self._set_phase(SETTLE, timeout=settings.KEELSON_POOL_NODE_READY_TIMEOUT)
                continue
            step = steps[self.state["step"]]
            if phase == SURGE:
                if step["new"]:
                    self.provider.pool_node_add(self.cluster, self.spec, self.pool, step["new"])
                    self.log(f"{self._where()}: starting {step['new']} to replace {step['old']}")
                self._set_phase(READY, timeout=settings.KEELSON_POOL_NODE_READY_TIMEOUT)
            elif phase == READY:
                if step["new"] and not _is_ready(_read_node(self.api, step["new"])):
                    if self.deadline_passed():
                        raise UpdateFailed(
                            f"{self._where()}: the replacement {step['new']} did not become "
                            f"Ready within {settings.KEELSON_POOL_NODE_READY_TIMEOUT} s"
                        )
                    self.report(f"{self._where()}: waiting for {step['new']} to be Ready")
                    return POLL_SECONDS
                if step["old"] and cordon(self.api, step["old"]):
                    self.log(f"{self._where()}: {step['old']} cordoned; draining it")
                    self._set_phase(DRAIN, timeout=settings.KEELSON_POOL_DRAIN_TIMEOUT)
                else:
                    self._set_phase(REMOVE)
            elif phase == DRAIN:
                if not self._drain(step["old"]):
                    return POLL_SECONDS
                self._set_phase(REMOVE)
            elif phase == REMOVE:
                if step["old"]:
                    self.provider.pool_node_remove(self.cluster, step["old"])
                    self.log(f"{self._where()}: {step['old']} drained and removed")
                self.state["step"] += 1
                self._set_phase(SURGE)

    def _drain(self, node: str) -> bool:
        """One pass of the drain; True when nothing is left to move."""
        pods = evictable_pods(self.api, node)
        if pods.drained:
            return True
        if self.deadline_passed():
            uncordon(self.api, node)
            summary = blocked_summary(pods, self.state.get("blocked") or {})
            raise UpdateFailed(
                f"{self._where()}: {node} not drained within "
                f"{settings.KEELSON_POOL_DRAIN_TIMEOUT} s ({summary or 'pods still there'}). "
                f"It was not removed and is schedulable again"
                + (
                    f"; its replacement {self.state['steps'][self.state['step']]['new']} stays"
                    if self.state["steps"][self.state["step"]]["new"]
                    else ""
                )
            )
        budgets: dict[str, str] = {}
        version = eviction_version_of(self.api) if pods.evict else ""
        for pod in pods.evict:
            result = evict(self.api, pod, version=version)
            if result.outcome == "evicted":
                self.log(f"{self._where()}: evicted {pod}")
            elif result.outcome == "blocked":
                budgets[str(pod)] = result.budget
        if budgets != (self.state.get("blocked") or {}):
            for pod_name, budget in sorted(budgets.items()):
                self.log(
                    f"{self._where()}: eviction of {pod_name} refused: PodDisruptionBudget "
                    f"{budget or '(unnamed)'} allows no disruption now; trying again",
                    level=LogLevel.WARNING,
                )
        self.state["refused"] = self.state.get("refused", 0) + len(budgets)
        self.state["blocked"] = budgets
        summary = blocked_summary(pods, budgets)
        self.report(f"{self._where()}: draining" + (f" ({summary})" if summary else ""))
        return False

    def _settle(self) -> float | None:
        """Done when the pool's nodes are all Ready and the replaced ones gone."""
        names = self.provider.pool_nodes(self.cluster, self.pool)
        waiting = [name for name in names if not _is_ready(_read_node(self.api, name))]
        waiting += [
            s["old"] for s in self.state["steps"] if s["old"] and _read_node(self.api, s["old"])
        ]
        if not waiting:
            return None
        if self.deadline_passed():
            raise UpdateFailed(f"the pool did not settle: {', '.join(waiting)} not as wanted")
        self.report(f"Waiting for the pool to settle ({', '.join(waiting)})")
        return POLL_SECONDS

    def uncordon_current(self) -> None:
        """On cancel: the node being drained goes back to work."""
        steps = self.state.get("steps") or []
        if self.state.get("phase") == DRAIN and self.state["step"] < len(steps):
            uncordon(self.api, steps[self.state["step"]]["old"])


def _finish(check: _Check, state: OperationState, *, message: str = "", error: str = "") -> None:
    ClusterProvisioning.objects.filter(cluster=check.cluster).update(lifecycle=Lifecycle.ACTIVE)
    operation_finish(
        operation_id=check.operation.pk,
        state=state,
        message=message or ("Failed" if state == OperationState.FAILED else ""),
        error=error,
        result=check.state,
    )


def _succeed(check: _Check) -> None:
    pool = check.spec.pool(check.pool)
    with transaction.atomic():
        ClusterProvisioning.objects.filter(cluster=check.cluster).update(
            spec=check.spec.as_json(), lifecycle=Lifecycle.ACTIVE, updated_at=timezone.now()
        )
        operation_finish(
            operation_id=check.operation.pk,
            state=OperationState.SUCCEEDED,
            message=f"Node pool {check.pool} of {check.cluster.name}: {pool.count} node(s) "
            f"on {pool.describe(check.spec.kubernetes_version)}",
            result=check.state | {"nodes": check.provider.pool_nodes(check.cluster, check.pool)},
        )
    clusters_collect(cluster_ids=[check.cluster.pk])


def _save(check: _Check, tick: int, delay: float) -> None:
    """Record where the update stands and send the next check, unless another check has
    moved it on meanwhile (then this one's work was a harmless repeat)."""
    state = check.state | {
        "tick": tick + 1,
        "check_at": (timezone.now() + timedelta(seconds=delay)).isoformat(),
    }
    with transaction.atomic():
        saved = (
            Operation.objects.filter(pk=check.operation.pk, result__tick=tick)
            .exclude(state__in=FINAL_STATES)
            .update(result=state, updated_at=timezone.now())
        )
        if saved:
            operation_check_later(check.operation, tick=tick + 1, countdown=delay)


@exclusive_operation
def cluster_pool_update_run(*, operation_id: UUID, tick: int | None = None) -> None:
    """One check of a pool update. `tick` is the check a message was sent for; None (the
    first message, a resend by the operations sweeper) does the check that is due."""
    if not operation_claim(operation_id=operation_id):
        lifecycle_settle_unclaimed(operation_id)
        return
    operation = Operation.objects.get(pk=operation_id)
    current = int((operation.result or {}).get("tick", 0))
    if tick is not None and tick != current:
        return  # a duplicate of a check already done
    check_at = (operation.result or {}).get("check_at")
    if tick is None and check_at:
        wait = (datetime.fromisoformat(check_at) - timezone.now()).total_seconds()
        if wait > 0:  # not due: stand in for a lost message of this tick
            operation_check_later(operation, tick=current, countdown=wait)
            return
    cluster = Cluster.objects.filter(pk=operation.params["cluster_id"]).first()
    if cluster is None:
        operation_finish(
            operation_id=operation_id, state=OperationState.FAILED, message="The cluster is gone"
        )
        return
    check = _Check(operation, cluster)
    try:
        if "steps" not in check.state and not operation_should_stop(operation_id=operation_id):
            check.plan()
        delay = check.advance()
    except UpdateFailed as failure:
        _fail(check, str(failure))
        return
    except PermanentError as error:
        _fail(check, str(error))
        return
    except ClusterConnectError as error:
        if not error.transient or check.deadline_passed():
            _fail(check, f"{check.cluster.name}: {error.message}")
            return
        # Unreachable for now: the next check tries again, within the phase's deadline.
        check.log(f"{check.cluster.name}: {error.message}; trying again", level=LogLevel.WARNING)
        delay = POLL_SECONDS
    if delay is None:
        _succeed(check)
        return
    _save(check, current, delay)


def _fail(check: _Check, reason: str) -> None:
    if reason == "canceled":
        try:
            check.uncordon_current()
        except ClusterConnectError:
            logger.warning("could not uncordon after cancel of %s", check.operation.pk)
        _finish(
            check,
            OperationState.CANCELED,
            message="Canceled; nodes replaced so far stay, the node being drained is "
            "schedulable again",
        )
        return
    _finish(check, OperationState.FAILED, error=f"Node pool {check.pool} update failed: {reason}")
