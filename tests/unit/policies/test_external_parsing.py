"""Policy WG reports and Gatekeeper constraints into findings, worked out by hand from the
Policy WG's PolicyReport API (wgpolicyk8s.io/v1alpha2) and Gatekeeper's audit docs.

Policy WG, `PolicyResult`: "pass: indicates that the policy requirements are met; fail:
indicates that the policy requirements are not met; warn: indicates that the policy
requirements and not met, and the policy is not scored; error: indicates that the policy
could not be evaluated; skip: indicates that the policy was not selected based on user
inputs or applicability."

Gatekeeper audit: "violations: ... The number of violations listed is capped by
--constraint-violations-limit (default 20)", with "totalViolations" the full count."""

from __future__ import annotations

from typing import Any

from policies.choices import ResultStatus, Severity, SourceEngine
from policies.external.parsing import (
    NOT_AUDITED,
    constraint_finding,
    report_findings,
    report_source,
)
from policies.services.external import external_name


def _pod(name: str, namespace: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace}


def _result(policy: str, result: str, *resources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "source": "kyverno",
        "policy": policy,
        "rule": f"{policy}-rule",
        "result": result,
        "message": f"{policy} {result}",
        "resources": list(resources),
        "timestamp": {"seconds": 1733390000, "nanos": 0},
        **extra,
    }


def _report(*results: dict[str, Any], scope: dict[str, Any] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "polr-ns-shop", "namespace": "shop"},
        "results": list(results),
        "summary": {},
    }
    if scope:
        report["scope"] = scope
    return report


def test_fail_makes_violations_and_noncompliance_pass_counts_as_checked() -> None:
    # given a report where require-labels fails on two pods and passes on one
    report = _report(
        _result("require-labels", "fail", _pod("a"), _pod("b")),
        _result("require-labels", "pass", _pod("c")),
        _result("disallow-latest", "pass", _pod("a"), _pod("b"), _pod("c")),
    )
    # when it is read
    found = report_findings([report])
    # then require-labels is noncompliant with both pods listed (3 checked), and
    # disallow-latest compliant with 3 checked
    labels = found[(SourceEngine.KYVERNO, "require-labels")]
    assert labels.status == ResultStatus.NONCOMPLIANT
    assert labels.objects_checked == 3
    assert labels.violations_total == 2
    assert [(v["kind"], v["namespace"], v["name"]) for v in labels.violations] == [
        ("Pod", "shop", "a"),
        ("Pod", "shop", "b"),
    ]
    assert labels.violations[0]["rule"] == "require-labels-rule"
    assert labels.violations[0]["message"] == "require-labels fail"
    assert labels.message == "Reported: 1 pass, 2 fail"
    latest = found[(SourceEngine.KYVERNO, "disallow-latest")]
    assert (latest.status, latest.objects_checked, latest.violations) == (
        ResultStatus.COMPLIANT,
        3,
        [],
    )


def test_warn_is_not_scored_error_is_not_judged_skip_is_not_checked() -> None:
    # given warn, error and skip results only
    report = _report(
        _result("host-path", "warn", _pod("a")),
        _result("host-path", "skip", _pod("b")),
        _result("probes", "error", _pod("a")),
        _result("probes", "pass", _pod("b")),
    )
    found = report_findings([report])
    # then warn is checked but no violation (not scored): compliant, and the message says so
    warn = found[(SourceEngine.KYVERNO, "host-path")]
    assert (warn.status, warn.objects_checked, warn.violations_total) == ("compliant", 1, 0)
    assert warn.message == "Reported: 1 warn, 1 skip (warn: not met, not scored)"
    # and an error alone is an error: one object not judged, one checked and passed
    error = found[(SourceEngine.KYVERNO, "probes")]
    assert (error.status, error.objects_checked, error.errors_total) == ("error", 2, 1)
    assert error.errors == [
        {
            "rule": "probes-rule",
            "message": "probes error",
            "kind": "Pod",
            "namespace": "shop",
            "name": "a",
        }
    ]


def test_per_resource_reports_use_their_scope_and_merge_with_cluster_reports() -> None:
    # given Kyverno 1.10+'s layout: one report per object, results without resources,
    # and a ClusterPolicyReport about a namespace
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop"}
    per_object = _report(_result("require-labels", "fail"), scope=deployment)
    cluster_report = {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "ClusterPolicyReport",
        "metadata": {"name": "cpol-require-labels"},
        "results": [
            _result(
                "require-labels", "pass", {"apiVersion": "v1", "kind": "Namespace", "name": "shop"}
            )
        ],
    }
    found = report_findings([per_object, cluster_report])
    finding = found[(SourceEngine.KYVERNO, "require-labels")]
    # then the scope is the violating object, and both reports count
    assert finding.objects_checked == 2
    assert [(v["kind"], v["name"]) for v in finding.violations] == [("Deployment", "web")]


def test_other_producers_are_policy_reports_named_by_source() -> None:
    assert report_source({"source": "kyverno", "policy": "p"}) == ("kyverno", "p")
    assert report_source({"source": "Kyverno", "policy": "p"}) == ("kyverno", "p")
    assert report_source({"source": "kube-bench", "policy": "1.1.1"}) == (
        "policy-report",
        "kube-bench/1.1.1",
    )
    assert report_source({"policy": "p"}) == ("policy-report", "p")
    # a name longer than the column is cut with a hash of the whole: two stay apart
    long_a, long_b = report_source({"policy": "a" * 400}), report_source({"policy": "a" * 401})
    assert len(long_a[1]) == len(long_b[1]) == 300 and long_a != long_b


def test_severity_is_the_highest_reported_and_medium_without_one() -> None:
    report = _report(
        _result("a", "pass", _pod("x"), severity="low"),
        _result("a", "fail", _pod("y"), severity="high"),
        _result("b", "pass", _pod("x")),
        _result("c", "pass", _pod("x"), severity="info", category="Pod Security"),
    )
    found = report_findings([report])
    assert found[("kyverno", "a")].severity == Severity.HIGH
    assert found[("kyverno", "b")].severity == Severity.MEDIUM
    assert found[("kyverno", "c")].severity == Severity.LOW
    assert found[("kyverno", "c")].description == "Category: Pod Security"


def test_timestamps_and_order_do_not_change_a_finding() -> None:
    first = _report(_result("p", "fail", _pod("a"), _pod("b")))
    later = _report(
        _result("p", "fail", _pod("b"), _pod("a"), timestamp={"seconds": 1733399999, "nanos": 5})
    )
    assert report_findings([first]) == report_findings([later])


def _constraint(status: dict[str, Any] | None, action: str = "deny") -> dict[str, Any]:
    constraint: dict[str, Any] = {
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sRequiredLabels",
        "metadata": {"name": "ns-must-have-gk"},
        "spec": {"enforcementAction": action, "match": {"kinds": [{"kinds": ["Namespace"]}]}},
    }
    if status is not None:
        constraint["status"] = status
    return constraint


def _violation(name: str) -> dict[str, Any]:
    return {
        "enforcementAction": "deny",
        "group": "",
        "version": "v1",
        "kind": "Namespace",
        "name": name,
        "message": 'you must provide labels: {"gatekeeper"}',
    }


def test_gatekeeper_total_beyond_the_listed_twenty_is_kept() -> None:
    # given an audit that found 57 violations and listed 20 (the default limit)
    listed = [_violation(f"ns-{i:02}") for i in range(20)]
    status = {
        "auditTimestamp": "2026-12-05T12:00:00Z",
        "totalViolations": 57,
        "violations": listed,
    }
    finding = constraint_finding(_constraint(status))
    # then the total is 57, 20 listed: noncompliant, and a partial list
    assert finding.key == ("gatekeeper", "K8sRequiredLabels/ns-must-have-gk")
    assert finding.status == ResultStatus.NONCOMPLIANT
    assert (finding.violations_total, len(finding.violations)) == (57, 20)
    assert finding.message == "57 violation(s) in Gatekeeper's audit"
    assert finding.violations[0] == {
        "rule": "ns-must-have-gk",
        "kind": "Namespace",
        "namespace": "",
        "name": "ns-00",
        "message": 'you must provide labels: {"gatekeeper"}',
        "controller": "",
        "enforcementAction": "deny",
    }
    assert "enforcementAction deny" in finding.description


def test_gatekeeper_clean_audit_unaudited_and_audit_errors() -> None:
    clean = constraint_finding(
        _constraint({"auditTimestamp": "2026-12-05T12:00:00Z", "totalViolations": 0})
    )
    assert (clean.status, clean.violations_total, clean.message) == (
        "compliant",
        0,
        "No violation in Gatekeeper's audit",
    )
    # a constraint the audit has not reached: no outcome yet
    fresh = constraint_finding(_constraint({"byPod": [{"id": "gatekeeper-audit"}]}))
    assert (fresh.status, fresh.message) == ("error", NOT_AUDITED)
    assert constraint_finding(_constraint(None)).status == "error"
    broken = constraint_finding(
        _constraint(
            {
                "auditTimestamp": "2026-12-05T12:00:00Z",
                "byPod": [{"id": "gatekeeper-audit", "errors": [{"message": "bad rego"}]}],
            }
        )
    )
    assert (broken.status, broken.message) == ("error", "Gatekeeper could not audit: bad rego")


def test_gatekeeper_audit_timestamp_does_not_change_a_finding() -> None:
    one = {"auditTimestamp": "2026-12-05T12:00:00Z", "totalViolations": 1}
    two = {**one, "auditTimestamp": "2026-12-05T12:01:00Z"}
    one["violations"] = two["violations"] = [_violation("a")]
    assert constraint_finding(_constraint(one)) == constraint_finding(_constraint(two))


def test_external_names_are_slugs_prefixed_by_engine() -> None:
    assert external_name("kyverno", "require-labels", set()) == "kyverno-require-labels"
    assert (
        external_name("gatekeeper", "K8sRequiredLabels/ns-must-have-gk", set())
        == "gatekeeper-k8srequiredlabels-ns-must-have-gk"
    )
    assert external_name("policy-report", "kube-bench/1.1.1", set()) == "report-kube-bench-1-1-1"
    # a taken name or one too long gets a hash of the source: stable, unique, at most 63
    taken = external_name("kyverno", "require-labels", {"kyverno-require-labels"})
    assert taken.startswith("kyverno-require-labels-") and len(taken) == 31
    long = external_name("kyverno", "x" * 100, set())
    assert len(long) == 63 and long == external_name("kyverno", "x" * 100, set())
    assert long != external_name("kyverno", "x" * 101, set())
