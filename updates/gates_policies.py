"""The policies gate: no critical policy finds more on a cluster after its change than
before. Read from the newest result of each (policy, cluster) pair that the evaluations
stored (push sweeps and pull agents alike); an evaluation the change triggers shows up
at the engine's next check."""

from __future__ import annotations

from typing import Any

from clusters.models import Cluster
from policies.choices import Severity
from policies.models import PolicyEvaluation

# Violating objects kept per policy in a baseline (the totals are exact).
KEPT_OBJECTS = 200
SHOWN_OBJECTS = 3


def _object(violation: Any) -> str:
    if not isinstance(violation, dict):
        return str(violation)
    where = violation.get("namespace") or ""
    name = f"{where}/{violation.get('name', '')}" if where else str(violation.get("name", ""))
    return f"{violation.get('kind', 'object')} {name}"


def critical_violations(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Per live, enabled critical policy judged on `cluster` (by id): its name, the
    violations its newest result counts, and the violating objects it lists."""
    newest = (
        PolicyEvaluation.objects.filter(
            cluster=cluster,
            policy__severity=Severity.CRITICAL,
            policy__deleted_at__isnull=True,
            policy__enabled=True,
        )
        .order_by("policy_id", "-evaluated_at", "-id")
        .distinct("policy_id")
        .values_list("policy_id", "policy__name", "violations_total", "violations")
    )
    found: dict[str, dict[str, Any]] = {}
    for policy_id, name, total, violations in newest:
        listed = [_object(v) for v in (violations or [])]
        found[str(policy_id)] = {
            "name": name,
            "violations": total,
            "objects": sorted(set(listed))[:KEPT_OBJECTS],
            "complete": len(listed) >= total and len(listed) <= KEPT_OBJECTS,
        }
    return found


def policies_gate(cluster: Cluster, before: dict[str, dict[str, Any]]) -> list[str]:
    """A sentence per critical policy with a violation that was not there before."""
    failed = []
    for key, now in sorted(critical_violations(cluster).items(), key=lambda i: i[1]["name"]):
        was = before.get(key) or {"violations": 0, "objects": [], "complete": True}
        new = sorted(set(now["objects"]) - set(was.get("objects") or []))
        comparable = bool(was.get("complete")) and bool(now["complete"])
        if now["violations"] <= was["violations"] and not (new and comparable):
            continue
        shown = ", ".join(new[:SHOWN_OBJECTS]) + (" …" if len(new) > SHOWN_OBJECTS else "")
        failed.append(
            f"Critical policy {now['name']} finds {now['violations']} violation"
            f"{'s' if now['violations'] != 1 else ''} on {cluster.name} (was "
            f"{was['violations']} before the change)" + (f": {shown}." if new else ".")
        )
    return failed
