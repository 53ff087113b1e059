"""Pure rule logic: CEL compile errors, pod templates as Pods, templates, the library."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from policies import cel
from policies.engine import Snapshot, judge
from policies.library import library
from policies.models import PolicyRule
from policies.services.policies import build_rules


def _pod(name: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "web", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.25", **container}]},
    }


def _deployment(name: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "web", "uid": f"uid-{name}"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25", **container}]},
            }
        },
    }


def _library_rules(name: str) -> list[PolicyRule]:
    entry = next(p for p in library() if p["name"] == name)
    return build_rules(entry["rules"])


def test_a_syntax_error_names_line_column_and_reason() -> None:
    # when an expression with a doubled operator is compiled
    with pytest.raises(ValidationError) as raised:
        cel.compile_expression("object.spec.replicas ==== 1")
    # then the message says where and why
    assert raised.value.messages == ["Invalid CEL at line 1, column 24: unexpected '=='."]


def test_an_unclosed_call_points_past_the_end() -> None:
    with pytest.raises(ValidationError) as raised:
        cel.compile_expression("object.spec.containers.all(c, has(c.image)")
    assert raised.value.messages == [
        "Invalid CEL at line 1, column 42: unexpected end of expression (expected ')' or ',')."
    ]


def test_every_bundled_expression_compiles_and_the_library_covers_pss() -> None:
    names = {p["name"] for p in library()}
    for entry in library():
        build_rules(entry["rules"])  # raises on any invalid rule
    baseline = {
        "host-process",
        "host-namespaces",
        "privileged",
        "capabilities",
        "host-path",
        "host-ports",
        "apparmor",
        "selinux",
        "proc-mount",
        "seccomp",
        "sysctls",
    }
    restricted = {
        "volume-types",
        "privilege-escalation",
        "run-as-non-root",
        "run-as-user",
        "seccomp",
        "capabilities",
    }
    assert {f"pss-baseline-{n}" for n in baseline} <= names
    assert {f"pss-restricted-{n}" for n in restricted} <= names


def test_privileged_pod_and_deployment_template_are_reported_with_controller() -> None:
    # given a privileged pod owned by a ReplicaSet of a Deployment, a privileged
    # Deployment, and compliant ones
    rs = {
        "metadata": {
            "name": "priv-rs",
            "namespace": "web",
            "uid": "uid-rs",
            "ownerReferences": [
                {"kind": "Deployment", "name": "priv", "uid": "uid-priv", "controller": True}
            ],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}},
    }
    owned = _pod("owned", securityContext={"privileged": True})
    owned["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "priv-rs", "uid": "uid-rs", "controller": True}
    ]
    snapshot = Snapshot(
        objects={
            ("", "Pod"): [owned, _pod("fine", securityContext={"privileged": False})],
            ("apps", "Deployment"): [
                _deployment("priv", securityContext={"privileged": True}),
                _deployment("ok"),
            ],
            ("apps", "ReplicaSet"): [rs],
        },
        namespaced={},
        cluster={},
    )
    # when judged by the PSS baseline privileged policy
    judgement = judge(_library_rules("pss-baseline-privileged"), snapshot)
    # then the privileged pod (naming its Deployment) and the Deployment are reported
    found = {(v["kind"], v["name"], v["controller"]) for v in judgement.violations}
    assert found == {("Pod", "owned", "Deployment/priv"), ("Deployment", "priv", "")}
    assert judgement.checked == 5
    assert judgement.errors == []


def test_one_object_that_cannot_be_judged_is_an_error_not_a_crash() -> None:
    rules = build_rules(
        [
            {
                "name": "r",
                "kind": "object",
                "match": {"kinds": ["Pod"]},
                "expression": "object.spec.x == 1",
            }
        ]
    )
    snapshot = Snapshot(
        objects={("", "Pod"): [_pod("a"), {**_pod("b"), "spec": {"x": 2}}]},
        namespaced={},
        cluster={},
    )
    judgement = judge(rules, snapshot)
    assert [e["name"] for e in judgement.errors] == ["a"]
    assert "no such member" in judgement.errors[0]["message"]
    assert [v["name"] for v in judgement.violations] == ["b"]


def test_templates_musthave_and_mustnothave_plan_fixes() -> None:
    rules = build_rules(
        [
            *next(p for p in library() if p["name"] == "ops-network-policy")["rules"],
            {
                "name": "no-debug",
                "kind": "template",
                "compliance_type": "mustnothave",
                "object_template": {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "debug"},
                },
            },
        ]
    )
    netpol = {
        "metadata": {"name": "default-deny-ingress", "namespace": "a"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    namespaces = [{"metadata": {"name": n}} for n in ("a", "b", "kube-system")]
    snapshot = Snapshot(
        objects={
            ("", "Namespace"): namespaces,
            ("networking.k8s.io", "NetworkPolicy"): [netpol],
            ("", "ConfigMap"): [{"metadata": {"name": "debug", "namespace": "a"}}],
        },
        namespaced={("networking.k8s.io", "NetworkPolicy"): True, ("", "ConfigMap"): True},
        cluster={},
    )
    judgement = judge(rules, snapshot)
    fixes = {(f.action, f.kind, f.namespace, f.name) for f in judgement.fixes}
    assert fixes == {
        ("apply", "NetworkPolicy", "b", "default-deny-ingress"),
        ("delete", "ConfigMap", "a", "debug"),
    }


def test_cluster_rule_sees_the_version() -> None:
    rules = _library_rules("ops-min-kubernetes-version")
    old = Snapshot({}, {}, {"name": "c", "version": {"major": 1, "minor": 20}})
    new = Snapshot({}, {}, {"name": "c", "version": {"major": 1, "minor": 31}})
    assert [v["kind"] for v in judge(rules, old).violations] == ["Cluster"]
    assert judge(rules, new).violations == []


def test_mustonlyhave_wants_exactly_the_listed_items_and_tolerates_defaults() -> None:
    from policies.objects import contains, matches_only

    actual = {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "extra": 1}}
    wanted = {"spec": {"policyTypes": ["Ingress"]}}
    assert contains(actual, wanted)
    assert not matches_only(actual, wanted)
    assert matches_only(actual, {"spec": {"policyTypes": ["Egress", "Ingress"]}})


def test_the_served_version_ranks_stable_over_beta_over_alpha() -> None:
    from kube.discovery import version_rank as _version_rank

    versions = ["v1beta1", "v1", "v2alpha1", "v1beta2", "v2"]
    assert sorted(versions, key=_version_rank, reverse=True) == [
        "v2",
        "v1",
        "v1beta2",
        "v1beta1",
        "v2alpha1",
    ]
