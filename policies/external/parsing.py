"""From engine objects to one finding per external policy on one cluster (pure: no
database, no network).

Policy WG reports (`wgpolicyk8s.io/v1alpha2` PolicyReport, namespaced, and
ClusterPolicyReport) hold results of many policies: each result names its `source`
(Kyverno writes "kyverno"), `policy`, `rule`, `result` and the objects it judged, in
`resources` or, in Kyverno's one-report-per-object layout (1.10 and later), the
report's `scope`. The Policy WG defines the results: pass (requirements met), fail (not
met), warn (not met, and the policy is not scored), error (could not be evaluated) and
skip (not selected). Here fail makes a violation and the policy noncompliant; error is an
object not judged; warn counts as checked and is named in the message, not a violation,
since the standard says it is not scored; skip is not checked.

Gatekeeper constraints (`constraints.gatekeeper.sh`, one kind per ConstraintTemplate)
carry the audit's outcome in `status`: `totalViolations`, `violations` (at most
`--constraint-violations-limit`, 20 by default) and `auditTimestamp`. The total is kept;
the list is partial when shorter than the total. A constraint no audit has reached yet
has no outcome: an error saying so.

Nothing changing at every audit (timestamps) enters a finding, so an unchanged cluster
gives the same finding and the ledger writes nothing new."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from policies.choices import ResultStatus, Severity, SourceEngine

MAX_SOURCE = 300  # Policy.source_name's length
MAX_LISTED = 500  # as policies.services.evaluation.outcomes: lists are cut, totals exact
REPORT_GROUP = "wgpolicyk8s.io"
CONSTRAINT_GROUP = "constraints.gatekeeper.sh"
NOT_AUDITED = "Gatekeeper has not audited this constraint yet."
_SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.LOW,
}
_COUNTED = ("pass", "fail", "warn", "error")  # results that checked an object


@dataclass
class Finding:
    """One external policy's outcome on one cluster, and what describes the policy."""

    engine: str
    source_name: str
    status: str = ResultStatus.COMPLIANT
    message: str = ""
    violations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    violations_total: int = 0
    errors_total: int = 0
    objects_checked: int = 0
    severity: str = ""  # the highest a report result gave; medium if none did
    description: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.engine, self.source_name)


def _ref(resource: dict[str, Any]) -> dict[str, str]:
    return {
        "kind": str(resource.get("kind") or ""),
        "namespace": str(resource.get("namespace") or ""),
        "name": str(resource.get("name") or ""),
    }


def _order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stable order (the engines' is not), so the same findings compare equal."""
    return sorted(
        entries,
        key=lambda e: (e["rule"], e["kind"], e["namespace"], e["name"], e["message"]),
    )


def report_source(result: dict[str, Any]) -> tuple[str, str]:
    """(engine, source name) of a report result: Kyverno's policies by name, any other
    producer's as "source/policy" under the generic policy-report engine."""
    source = str(result.get("source") or "").strip()
    policy = str(result.get("policy") or "").strip()
    if source.lower() == "kyverno":
        return SourceEngine.KYVERNO, clamp(policy)
    return SourceEngine.POLICY_REPORT, clamp(f"{source}/{policy}" if source else policy)


def clamp(name: str) -> str:
    """A source name that fits the column: a longer one is cut, with a hash of the whole
    so that two long names stay apart."""
    if len(name) <= MAX_SOURCE:
        return name
    return f"{name[: MAX_SOURCE - 17]}~{hashlib.blake2b(name.encode(), digest_size=8).hexdigest()}"


def report_findings(reports: list[dict[str, Any]]) -> dict[tuple[str, str], Finding]:
    """One finding per (engine, policy) over every PolicyReport and ClusterPolicyReport of
    a cluster."""
    found: dict[tuple[str, str], Finding] = {}
    for report in reports:
        scope = report.get("scope") if isinstance(report.get("scope"), dict) else None
        for result in report.get("results") or []:
            if not isinstance(result, dict) or not result.get("policy"):
                continue
            engine, name = report_source(result)
            finding = found.get((engine, name))
            if finding is None:
                finding = found[(engine, name)] = Finding(engine, name)
            outcome = str(result.get("result") or "").lower()
            subjects = [r for r in result.get("resources") or [] if isinstance(r, dict)]
            if not subjects:
                subjects = [scope] if scope else [{}]
            finding.counts[outcome] = finding.counts.get(outcome, 0) + len(subjects)
            severity = _SEVERITIES.get(str(result.get("severity") or "").lower())
            if severity and (not finding.severity or _rank(severity) > _rank(finding.severity)):
                finding.severity = severity
            if result.get("category") and not finding.description:
                finding.description = f"Category: {result['category']}"
            entry = {
                "rule": str(result.get("rule") or result.get("policy")),
                "message": str(result.get("message") or "")[:1000],
            }
            for subject in subjects:
                if outcome == "fail":
                    finding.violations.append({**entry, **_ref(subject), "controller": ""})
                elif outcome == "error":
                    finding.errors.append({**entry, **_ref(subject)})
    for finding in found.values():
        _conclude_report(finding)
    return found


_ORDER: list[str] = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


def _rank(severity: str) -> int:
    return _ORDER.index(severity) if severity in _ORDER else 0


def _conclude_report(finding: Finding) -> None:
    counts = finding.counts
    finding.severity = finding.severity or Severity.MEDIUM
    finding.objects_checked = sum(counts.get(c, 0) for c in _COUNTED)
    _cut(finding)
    tally = ", ".join(
        f"{counts[c]} {c}" for c in ("pass", "fail", "warn", "error", "skip") if counts.get(c)
    )
    if finding.violations_total:
        finding.status = ResultStatus.NONCOMPLIANT
    elif finding.errors_total:
        finding.status = ResultStatus.ERROR
    else:
        finding.status = ResultStatus.COMPLIANT
    finding.message = f"Reported: {tally or 'no result'}"
    if counts.get("warn"):
        finding.message += " (warn: not met, not scored)"


def _cut(finding: Finding) -> None:
    finding.violations, finding.errors = _order(finding.violations), _order(finding.errors)
    finding.violations_total, finding.errors_total = len(finding.violations), len(finding.errors)
    finding.violations = finding.violations[:MAX_LISTED]
    finding.errors = finding.errors[:MAX_LISTED]


def constraint_name(constraint: dict[str, Any]) -> str:
    """A constraint's source name: "Kind/name" (names repeat across constraint kinds)."""
    return clamp(
        f"{constraint.get('kind', '')}/{(constraint.get('metadata') or {}).get('name', '')}"
    )


def constraint_finding(constraint: dict[str, Any]) -> Finding:
    """A Gatekeeper constraint's audit outcome."""
    spec = constraint.get("spec") or {}
    status = constraint.get("status") or {}
    action = str(spec.get("enforcementAction") or "deny")
    finding = Finding(SourceEngine.GATEKEEPER, constraint_name(constraint), severity="medium")
    finding.description = (
        f"Gatekeeper constraint {constraint_name(constraint)} (enforcementAction {action})"
    )
    name = str((constraint.get("metadata") or {}).get("name") or "")
    listed = [v for v in status.get("violations") or [] if isinstance(v, dict)]
    total = status.get("totalViolations")
    pod_errors = [
        str(e.get("message") or e.get("code") or "")
        for pod in status.get("byPod") or []
        if isinstance(pod, dict)
        for e in pod.get("errors") or []
        if isinstance(e, dict)
    ]
    if not status.get("auditTimestamp") and total is None and not listed:
        finding.status = ResultStatus.ERROR
        finding.message = pod_errors[0][:900] if pod_errors else NOT_AUDITED
        return finding
    finding.violations = _order(
        [
            {
                "rule": name,
                **_ref(v),
                "message": str(v.get("message") or "")[:1000],
                "controller": "",
                "enforcementAction": str(v.get("enforcementAction") or action),
            }
            for v in listed
        ]
    )[:MAX_LISTED]
    finding.violations_total = max(_count(total), len(listed))
    if finding.violations_total:
        finding.status = ResultStatus.NONCOMPLIANT
        finding.message = f"{finding.violations_total} violation(s) in Gatekeeper's audit"
    elif pod_errors:
        finding.status = ResultStatus.ERROR
        finding.message = f"Gatekeeper could not audit: {pod_errors[0]}"[:1000]
    else:
        finding.message = "No violation in Gatekeeper's audit"
    return finding


def _count(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
