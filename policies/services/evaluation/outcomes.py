"""Judging a read cluster: one outcome per (policy, cluster), with the digest that says
whether a new outcome is the same as the stored one."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from clusters.models import Cluster
from policies.choices import ResultStatus
from policies.engine import judge
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation.reading import Plan, Read
from policies.services.evaluation.versions import rules_at

MAX_LISTED = 500  # violations and errors listed per result; the totals are always exact
EVALUATION_COLUMNS = (
    "policy_id",
    "cluster_id",
    "cluster_name",
    "run_id",
    "status",
    "message",
    "violations",
    "errors",
    "violations_total",
    "errors_total",
    "objects_checked",
    "policy_generation",
    "inventory_stamp",
    "forced",
    "evaluated_at",
    "checked_at",
    "digest",
)
_KEYS = ("policy_id", "cluster_id")


@dataclass(slots=True)
class Outcome:
    """One (policy, cluster) result on its way to the table: a plain record, since a sweep
    makes hundreds of thousands and a model instance cost more than the judging."""

    policy: Policy
    cluster: Cluster
    run_id: uuid.UUID
    policy_generation: int
    inventory_stamp: str
    forced: bool
    evaluated_at: datetime
    checked_at: datetime
    status: str = ""
    message: str = ""
    violations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    violations_total: int = 0
    errors_total: int = 0
    objects_checked: int = 0
    digest: str = ""
    pk: int | None = None  # the stored row holding it, once known

    @property
    def policy_id(self) -> int:
        return int(self.policy.pk)

    @property
    def cluster_id(self) -> int:
        return int(self.cluster.pk)

    @property
    def cluster_name(self) -> str:
        return str(self.cluster.name)

    def values(self) -> list[Any]:
        return [getattr(self, column) for column in EVALUATION_COLUMNS]

    def model(self) -> PolicyEvaluation:
        row = PolicyEvaluation(
            policy=self.policy,
            cluster=self.cluster,
            **{c: getattr(self, c) for c in EVALUATION_COLUMNS if c not in _KEYS},
        )
        if self.pk is not None:
            row.pk = self.pk
            row._state.adding = False
            row._state.db = "default"
        return row


def judged(
    cluster: Cluster,
    policies: list[Policy],
    plans: dict[int, Plan],
    read: Read,
    run_id: uuid.UUID,
    stamps: dict[int, str],
    force: bool,
    pinned: str | None = None,
) -> list[Outcome]:
    """Each policy's outcome on a read cluster: an error for a policy needing a kind that
    could not be listed, else the judgement of its rules (for a bundled PSS policy, at the
    version the cluster's sets pin: `versions`)."""
    stamp = stamps.get(cluster.pk, "")
    rows: list[Outcome] = []
    for policy in policies:
        plan = plans[policy.pk]
        broken = sorted({read.failed[k] for k in plan.kinds if k in read.failed})
        if broken:
            rows.append(outcome(policy, cluster, run_id, stamp, force, error=broken[0]))
            continue
        judgement = judge(rules_at(policy, pinned, plan.rules), read.snapshot)
        rows.append(outcome(policy, cluster, run_id, stamp, force, judgement=judgement))
    return rows


def outcome(
    policy: Policy,
    cluster: Cluster,
    run_id: uuid.UUID,
    stamp: str,
    force: bool,
    *,
    error: str = "",
    judgement: Any = None,
) -> Outcome:
    now = timezone.now()
    row = Outcome(policy, cluster, run_id, policy.generation, stamp, force, now, now)
    if judgement is None:
        row.status = ResultStatus.ERROR
        row.message = f"The cluster could not be read: {error}"[:1000]
        row.digest = digest(row)
        return row
    return judged_row(
        row,
        checked=judgement.checked,
        violations=judgement.violations,
        errors=judgement.errors,
        violations_total=len(judgement.violations),
        errors_total=len(judgement.errors),
    )


def judged_row(
    row: Outcome,
    *,
    checked: int,
    violations: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    violations_total: int,
    errors_total: int,
) -> Outcome:
    """Fill `row` from a judgement: the hub's own, or the one a pull cluster's agent
    reported (its lists already cut to MAX_LISTED, its totals exact)."""
    row.objects_checked = checked
    row.violations = violations[:MAX_LISTED]
    row.errors = errors[:MAX_LISTED]
    row.violations_total = violations_total
    row.errors_total = errors_total
    if violations_total:
        row.status = ResultStatus.NONCOMPLIANT
        row.message = f"{violations_total} violation(s) in {checked} checked"
    elif errors_total:
        row.status = ResultStatus.ERROR
        row.message = f"{errors_total} object(s) could not be judged"
    else:
        row.status = ResultStatus.COMPLIANT
        row.message = f"{checked} checked, no violation"
    if violations_total and errors_total:
        row.message += f"; {errors_total} could not be judged"
    row.digest = digest(row)
    return row


def digest(row: Outcome) -> str:
    """What makes two outcomes the same: everything stored but the times, the run and the
    inventory stamp."""
    if not row.violations and not row.errors:  # most outcomes: json.dumps's text, by hand
        text = (
            f"[{row.policy_generation}, {_quoted(row.status)}, {_quoted(row.message)}, "
            f"{row.objects_checked}, {row.violations_total}, {row.errors_total}, [], []]"
        )
    else:
        outcome = [
            row.policy_generation,
            row.status,
            row.message,
            row.objects_checked,
            row.violations_total,
            row.errors_total,
            row.violations,
            row.errors,
        ]
        text = json.dumps(outcome, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


_quoted = json.encoder.encode_basestring_ascii
