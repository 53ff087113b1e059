"""What enforcing a policy on a cluster would do, read from its newest evaluation there
(no cluster is read or changed): the preview of a staged promotion.

Enforcement acts per rule kind (`choices.ENFORCE_EFFECT`), so each violating object the
evaluation listed is one of:
- remediated: a template rule's object is applied (must-have, must-only-have) or
  deleted (must-not-have) by the sweep after the next evaluation;
- denied: an object rule's violating object that a Keelson application wrote to the
  cluster (or a pod it controls): the application's next write there is refused (its
  work is marked failed and drift is no longer corrected until it is fixed);
- reported: any other violation (an object written by another tool, a cluster rule):
  enforce mode does nothing Keelson could do about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from applications.models import ClusterWork
from clusters.models import Cluster
from policies.choices import ComplianceType, RuleKind
from policies.models import Policy, PolicyEvaluation

LISTED = 10  # objects named per cluster; the counts cover every listed violation


@dataclass
class ClusterImpact:
    cluster: str
    status: str = ""  # the newest result's status; "" when never evaluated
    evaluated_at: str | None = None
    remediated: int = 0
    denied: int = 0
    reported: int = 0
    objects: list[dict[str, str]] = field(default_factory=list)
    note: str = ""

    @property
    def count(self) -> int:
        """Objects that enforcement would change or refuse."""
        return self.remediated + self.denied

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "status": self.status,
            "evaluated_at": self.evaluated_at,
            "count": self.count,
            "remediated": self.remediated,
            "denied": self.denied,
            "reported": self.reported,
            "objects": self.objects,
            "note": self.note,
        }


def _effects(policy: Policy) -> dict[str, str]:
    """Rule name → what enforcing it does to a violating object."""
    effects: dict[str, str] = {}
    for rule in policy.rules.all():
        if rule.kind == RuleKind.TEMPLATE:
            delete = rule.compliance_type == ComplianceType.MUSTNOTHAVE
            effects[rule.name] = "delete" if delete else "apply"
        elif rule.kind == RuleKind.OBJECT:
            effects[rule.name] = "deny"
    return effects


def _written_by_keelson(cluster_ids: list[int]) -> dict[tuple[int, str, str, str], str]:
    """(cluster id, kind, namespace, name) → the application that applied the object."""
    written: dict[tuple[int, str, str, str], str] = {}
    works = ClusterWork.objects.filter(cluster_id__in=cluster_ids).values_list(
        "cluster_id", "application__name", "applied_objects"
    )
    for cluster_id, application, refs in works:
        for ref in refs or []:
            key = (cluster_id, ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""))
            written[key] = application
    return written


def _application(
    written: dict[tuple[int, str, str, str], str], cluster_id: int, violation: dict[str, Any]
) -> str:
    """The Keelson application that wrote the violating object or its controller, if any."""
    namespace = str(violation.get("namespace", ""))
    found = written.get(
        (cluster_id, violation.get("kind", ""), namespace, violation.get("name", ""))
    )
    controller = str(violation.get("controller") or "")
    if not found and "/" in controller:
        kind, name = controller.split("/", 1)
        found = written.get((cluster_id, kind, namespace, name))
    return found or ""


def _judge(
    row: PolicyEvaluation,
    policy: Policy,
    effects: dict[str, str],
    written: dict[tuple[int, str, str, str], str],
) -> ClusterImpact:
    impact = ClusterImpact(
        cluster=row.cluster_label, status=row.status, evaluated_at=row.evaluated_at.isoformat()
    )
    assert row.cluster_id is not None
    for violation in row.violations:
        effect = effects.get(str(violation.get("rule", "")), "")
        application = ""
        if effect == "deny":
            application = _application(written, row.cluster_id, violation)
            effect = "deny" if application else ""
        if not effect:
            impact.reported += 1
            continue
        if effect == "deny":
            impact.denied += 1
        else:
            impact.remediated += 1
        if len(impact.objects) < LISTED:
            impact.objects.append(
                {
                    "kind": str(violation.get("kind", "")),
                    "namespace": str(violation.get("namespace", "")),
                    "name": str(violation.get("name", "")),
                    "rule": str(violation.get("rule", "")),
                    "effect": effect,
                    "application": application,
                }
            )
    notes = []
    if row.violations_partial:
        notes.append(f"counted over the first {len(row.violations)} of {row.violations_total}")
    if row.policy_generation != policy.generation:
        notes.append(
            f"judged at generation {row.policy_generation}; the policy is at {policy.generation}"
        )
    impact.note = "; ".join(notes)
    return impact


def policy_enforce_impact(
    *, policy: Policy, clusters: Sequence[Cluster]
) -> dict[str, ClusterImpact]:
    """By cluster name: what enforcing `policy` there would remediate or deny, from the
    newest evaluation of the policy on each cluster. A constant number of queries."""
    ids = [c.pk for c in clusters]
    newest = {
        row.cluster_id: row
        for row in PolicyEvaluation.objects.filter(policy=policy, cluster_id__in=ids)
        .select_related("cluster")
        .order_by("cluster_id", "-evaluated_at", "-id")
        .distinct("cluster_id")
    }
    effects = _effects(policy)
    written = _written_by_keelson(ids) if "deny" in effects.values() else {}
    impacts: dict[str, ClusterImpact] = {}
    for cluster in clusters:
        row = newest.get(cluster.pk)
        impacts[cluster.name] = (
            _judge(row, policy, effects, written)
            if row is not None
            else ClusterImpact(cluster=cluster.name, note="not evaluated yet")
        )
    return impacts
