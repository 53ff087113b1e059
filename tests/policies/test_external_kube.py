"""Kyverno / Policy WG reports and Gatekeeper constraints read from a real kube-apiserver
into the ledger. The CRDs (tests/fixtures/crds) carry the engines' real groups, versions
and kinds; reports and constraint statuses are written as the engines write them.

Expectations by hand, from the Policy WG's result definitions ("fail: the policy
requirements are not met", "warn: ... not met, and the policy is not scored", "error: the
policy could not be evaluated", "skip: the policy was not selected") and Gatekeeper's
audit ("totalViolations" the full count, "violations" capped at 20 by default)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from accounts.models import Team
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from clusters.services.credentials import cluster_api_clients
from kube.apply import apply_manifest
from localkube.env import LocalCluster
from policies.choices import ResultStatus
from policies.external.reading import forget_engine_groups, read_engines
from policies.models import Policy, PolicyEvaluation
from policies.selectors import compliance_summary
from policies.services.evaluation import cluster_reader
from policies.services.evaluation.reading import discovery_key
from policies.services.external import NOT_REPORTED, clusters_external_collect
from tests.clusters.helpers import register_local, wait_for
from tests.factories import Member, make_team

pytestmark = [pytest.mark.django_db, pytest.mark.kube]
CRDS = Path(__file__).parent.parent / "fixtures" / "crds"
REPORTS = ("wgpolicyk8s.io", "v1alpha2")
CONSTRAINTS = ("constraints.gatekeeper.sh", "v1beta1")


def _manifests(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((CRDS / name).read_text()) if doc]


@pytest.fixture(scope="module")
def engines(kube_cluster: LocalCluster) -> Iterator[k8s.CustomObjectsApi]:
    """The engines' CRDs installed, once served; removed afterwards."""
    api = kube_cluster.control_plane.api_client()
    crds = _manifests("wgpolicyk8s.io.yaml") + _manifests("gatekeeper-constraints.yaml")
    for crd in crds:
        apply_manifest(api, crd)
    custom = k8s.CustomObjectsApi(api)

    def served() -> bool:
        try:
            custom.list_cluster_custom_object(*REPORTS, "policyreports")
            custom.list_cluster_custom_object(*REPORTS, "clusterpolicyreports")
            custom.list_cluster_custom_object(*CONSTRAINTS, "k8srequiredlabels")
            custom.list_cluster_custom_object(*CONSTRAINTS, "k8sallowedrepos")
        except ApiException:
            return False
        return True

    wait_for(served, timeout=60, what="the engines' CRDs to be served")
    yield custom
    extensions = k8s.ApiextensionsV1Api(api)
    for crd in crds:
        extensions.delete_custom_resource_definition(crd["metadata"]["name"])


@pytest.fixture
def cluster(kube_cluster: LocalCluster, team: Team) -> Cluster:
    cluster = register_local(kube_cluster, team=team, name=f"ext-{uuid.uuid4().hex[:6]}")
    forget_engine_groups(discovery_key(cluster))
    return cluster


@pytest.fixture
def namespace(kube_cluster: LocalCluster) -> Iterator[str]:
    core = k8s.CoreV1Api(kube_cluster.control_plane.api_client())
    name = f"ext-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _pod(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace}


def _result(policy: str, result: str, resource: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "source": "kyverno",
        "policy": policy,
        "rule": f"check-{policy}",
        "result": result,
        "message": f"{policy}: {result}",
        "resources": [resource],
        "scored": result != "warn",
        "severity": "medium",
        "category": "Best Practices",
        "timestamp": {"seconds": 1764936000, "nanos": 0},
        **extra,
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, int]:
    return {
        k: sum(1 for r in results if r["result"] == k)
        for k in ("pass", "fail", "warn", "error", "skip")
    }


def _violation(i: int) -> dict[str, Any]:
    return {
        "enforcementAction": "deny",
        "group": "",
        "version": "v1",
        "kind": "Namespace",
        "name": f"team-{i:02}",
        "message": 'you must provide labels: {"owner"}',
    }


def _set_status(
    custom: k8s.CustomObjectsApi, plural: str, name: str, status: dict[str, Any]
) -> None:
    current = custom.get_cluster_custom_object(*CONSTRAINTS, plural, name)
    current["status"] = status
    custom.replace_cluster_custom_object_status(*CONSTRAINTS, plural, name, current)


def _constraint(custom: k8s.CustomObjectsApi, plural: str, kind: str, name: str) -> None:
    custom.create_cluster_custom_object(
        *CONSTRAINTS,
        plural,
        {
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": {"enforcementAction": "deny", "match": {"kinds": [{"kinds": ["Namespace"]}]}},
        },
    )


def _rows(cluster: Cluster) -> int:
    return PolicyEvaluation.objects.filter(cluster=cluster).count()


def _newest(team: Team, engine: str, source: str, cluster: Cluster) -> PolicyEvaluation:
    policy = Policy.objects.get(team=team, source_engine=engine, source_name=source)
    row = PolicyEvaluation.objects.filter(policy=policy, cluster=cluster).select_related("policy")
    return row.first() or pytest.fail(f"no result of {source}")


def test_a_cluster_without_the_engines_records_nothing_and_remembers_it(
    kube_cluster: LocalCluster, team: Team
) -> None:
    # given a cluster without the CRDs (this test runs before the module installs them)
    cluster = register_local(kube_cluster, team=team, name=f"none-{uuid.uuid4().hex[:6]}")
    forget_engine_groups(discovery_key(cluster))
    # when its engines are read
    counts = clusters_external_collect(cluster_ids=[cluster.pk])
    # then nothing is recorded, and the one discovery answer is kept: the next read asks
    # nothing (a reader on a client that refuses every request still reads "none")
    assert counts == {"clusters": 1, "results_written": 0, "failed": 0}
    assert not Policy.objects.filter(team=team).exclude(source_engine="").exists()
    (target,), _ = cluster_api_clients(clusters=[cluster])
    reader = cluster_reader(cluster, target[1])
    reader.api = None  # any request would now fail
    read = read_engines(reader, discovery_key(cluster))
    assert (read.groups, read.reports, read.constraints) == ([], [], [])


def test_reports_and_constraints_become_external_policies_with_results(
    engines: k8s.CustomObjectsApi, cluster: Cluster, namespace: str, team: Team, owner: Member
) -> None:
    tag = uuid.uuid4().hex[:6]
    labels, latest, hostpath, probes = (
        f"{p}-{tag}" for p in ("labels", "latest", "hostpath", "probes")
    )
    # given a namespaced report as Kyverno writes it ...
    results = [
        _result(labels, "fail", _pod("a", namespace)),
        _result(labels, "pass", _pod("b", namespace)),
        _result(latest, "pass", _pod("a", namespace)),
        _result(latest, "pass", _pod("b", namespace)),
        _result(hostpath, "warn", _pod("a", namespace)),
        _result(hostpath, "skip", _pod("b", namespace)),
        _result(probes, "error", _pod("a", namespace)),
    ]
    engines.create_namespaced_custom_object(
        *REPORTS,
        namespace,
        "policyreports",
        {
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {"name": f"polr-ns-{namespace}", "namespace": namespace},
            "summary": _summary(results),
            "results": results,
        },
    )
    # ... a cluster report on the namespace itself ...
    ns_result = _result(
        labels, "pass", {"apiVersion": "v1", "kind": "Namespace", "name": namespace}
    )
    engines.create_cluster_custom_object(
        *REPORTS,
        "clusterpolicyreports",
        {
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "ClusterPolicyReport",
            "metadata": {"name": f"cpolr-{tag}"},
            "summary": _summary([ns_result]),
            "results": [ns_result],
        },
    )
    # ... and two Gatekeeper constraints the audit reached: 57 violations (20 listed) and none
    required, repos = f"ns-must-have-owner-{tag}", f"repos-{tag}"
    _constraint(engines, "k8srequiredlabels", "K8sRequiredLabels", required)
    _constraint(engines, "k8sallowedrepos", "K8sAllowedRepos", repos)
    audited = {"auditTimestamp": "2026-12-05T12:00:00Z", "byPod": [{"id": "gatekeeper-audit-1"}]}
    _set_status(
        engines,
        "k8srequiredlabels",
        required,
        {**audited, "totalViolations": 57, "violations": [_violation(i) for i in range(20)]},
    )
    _set_status(engines, "k8sallowedrepos", repos, {**audited, "totalViolations": 0})
    try:
        # when the cluster's engines are read
        counts = clusters_external_collect(cluster_ids=[cluster.pk])
        # then each external policy is a read-only policy of the team with one result
        external = Policy.objects.filter(team=team).exclude(source_engine="")
        assert sorted(external.values_list("source_engine", "source_name")) == sorted(
            [
                ("kyverno", labels),
                ("kyverno", latest),
                ("kyverno", hostpath),
                ("kyverno", probes),
                ("gatekeeper", f"K8sRequiredLabels/{required}"),
                ("gatekeeper", f"K8sAllowedRepos/{repos}"),
            ]
        )
        assert counts == {"clusters": 1, "results_written": 6, "failed": 0}
        row = _newest(team, "kyverno", labels, cluster)
        assert row.policy.name == f"kyverno-{labels}"
        assert (row.status, row.objects_checked, row.violations_total) == ("noncompliant", 3, 1)
        assert [(v["kind"], v["namespace"], v["name"]) for v in row.violations] == [
            ("Pod", namespace, "a")
        ]
        assert row.message == "Reported: 2 pass, 1 fail"
        assert _newest(team, "kyverno", latest, cluster).status == ResultStatus.COMPLIANT
        assert _newest(team, "kyverno", hostpath, cluster).status == ResultStatus.COMPLIANT
        assert _newest(team, "kyverno", probes, cluster).status == ResultStatus.ERROR
        gk = _newest(team, "gatekeeper", f"K8sRequiredLabels/{required}", cluster)
        assert (gk.status, gk.violations_total, len(gk.violations)) == ("noncompliant", 57, 20)
        assert gk.listing_note == "20 of 57 (Gatekeeper lists 20)"
        assert (
            _newest(team, "gatekeeper", f"K8sAllowedRepos/{repos}", cluster).status == "compliant"
        )
        # and compliance counts them like Keelson's own: 3 compliant, 2 noncompliant, 1 error
        summary = compliance_summary(external)
        assert {k: summary.overall[k] for k in ("compliant", "noncompliant", "error")} == {
            "compliant": 3,
            "noncompliant": 2,
            "error": 1,
        }
        assert summary.overall["percent"] == 60.0

        # the pages show the engine, the source and Gatekeeper's cap; no edit button
        page = owner.page.get(f"/policies/{team.name}/{gk.policy.name}/")
        html = page.content.decode()
        assert page.status_code == 200
        assert 'data-field="engine">Gatekeeper<' in html
        assert f"K8sRequiredLabels/{required}" in html
        assert "20 of 57 (Gatekeeper lists 20)" in html
        assert f"/policies/{team.name}/{gk.policy.name}/edit/" not in html
        listing = owner.page.get("/policies/").content.decode()
        assert 'data-field="engine"' in listing

        # when nothing changed but Gatekeeper audited again, a re-read writes nothing
        before = _rows(cluster)
        _set_status(
            engines,
            "k8srequiredlabels",
            required,
            {
                **audited,
                "auditTimestamp": "2026-12-05T12:01:00Z",
                "totalViolations": 57,
                "violations": [_violation(i) for i in range(20)],
            },
        )
        again = clusters_external_collect(cluster_ids=[cluster.pk])
        assert again["results_written"] == 0
        assert _rows(cluster) == before

        # when pod a is fixed and the `latest` policy is removed from the cluster
        report = engines.get_namespaced_custom_object(
            *REPORTS, namespace, "policyreports", f"polr-ns-{namespace}"
        )
        fixed = [_result(labels, "pass", _pod("a", namespace))] + [
            r for r in results[1:] if r["policy"] != latest
        ]
        report["results"], report["summary"] = fixed, _summary(fixed)
        engines.replace_namespaced_custom_object(
            *REPORTS, namespace, "policyreports", f"polr-ns-{namespace}", report
        )
        changed = clusters_external_collect(cluster_ids=[cluster.pk])
        # then labels has a new compliant result (history kept), latest is no longer
        # reported here and, on no cluster of the team any more, gone
        assert changed["results_written"] == 2
        history = list(
            PolicyEvaluation.objects.filter(
                policy__source_name=labels, cluster=cluster
            ).values_list("status", flat=True)
        )
        assert history == ["compliant", "noncompliant"]
        gone = _newest(team, "kyverno", latest, cluster)
        assert (gone.status, gone.message) == ("error", NOT_REPORTED)
        assert Policy.objects.get(source_name=latest).gone_at is not None
        assert Policy.objects.get(source_name=labels).gone_at is None
    finally:
        engines.delete_cluster_custom_object(*REPORTS, "clusterpolicyreports", f"cpolr-{tag}")
        engines.delete_cluster_custom_object(*CONSTRAINTS, "k8srequiredlabels", required)
        engines.delete_cluster_custom_object(*CONSTRAINTS, "k8sallowedrepos", repos)


def test_external_policies_cannot_be_changed_deleted_or_evaluated(
    engines: k8s.CustomObjectsApi, cluster: Cluster, team: Team, owner: Member
) -> None:
    # given a constraint the audit found clean, recorded as an external policy
    name = f"clean-{uuid.uuid4().hex[:6]}"
    _constraint(engines, "k8srequiredlabels", "K8sRequiredLabels", name)
    try:
        _set_status(
            engines,
            "k8srequiredlabels",
            name,
            {"auditTimestamp": "2026-12-05T12:00:00Z", "totalViolations": 0},
        )
        clusters_external_collect(cluster_ids=[cluster.pk])
        policy = Policy.objects.get(team=team, source_name=f"K8sRequiredLabels/{name}")
        url = f"/api/v1/policies/{policy.name}/?team={team.name}"
        # then the API shows where it comes from ...
        shown = owner.api.get(url).json()
        assert (shown["source_engine"], shown["source_name"]) == (
            "gatekeeper",
            f"K8sRequiredLabels/{name}",
        )

        # ... lists it under its engine, not among Keelson's own ...
        def names(engine: str) -> set[str]:
            found = owner.api.get(f"/api/v1/policies/?team={team.name}&engine={engine}").json()
            return {p["name"] for p in found["results"]}

        assert policy.name in names("gatekeeper")
        assert policy.name not in names("keelson") | names("kyverno")
        # ... and refuses to change, delete or evaluate it, saying why; nothing changes
        refused = "is an external policy: Gatekeeper judges it on the clusters"
        patch = owner.api.patch(url, {"severity": "high"}, format="json")
        assert patch.status_code == 400 and refused in patch.content.decode()
        delete = owner.api.delete(url)
        assert delete.status_code == 400 and refused in delete.content.decode()
        evaluate = owner.api.post(
            f"/api/v1/policies/{policy.name}/evaluate/?team={team.name}", format="json"
        )
        assert evaluate.status_code == 400 and refused in evaluate.content.decode()
        policy.refresh_from_db()
        assert (policy.severity, policy.deleted_at, policy.generation) == ("medium", None, 1)
        # the edit page refuses too, back to the policy with the reason
        edit = owner.page.get(f"/policies/{team.name}/{policy.name}/edit/", follow=True)
        assert refused in edit.content.decode()
    finally:
        engines.delete_cluster_custom_object(*CONSTRAINTS, "k8srequiredlabels", name)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_each_collection_reads_the_engines_through_the_worker(
    engines: k8s.CustomObjectsApi, kube_cluster: LocalCluster
) -> None:
    # given a team's cluster where Gatekeeper found one violation
    team = make_team()
    cluster = register_local(kube_cluster, team=team, name=f"col-{uuid.uuid4().hex[:6]}")
    forget_engine_groups(discovery_key(cluster))
    name = f"collected-{uuid.uuid4().hex[:6]}"
    _constraint(engines, "k8srequiredlabels", "K8sRequiredLabels", name)
    try:
        _set_status(
            engines,
            "k8srequiredlabels",
            name,
            {
                "auditTimestamp": "2026-12-05T12:00:00Z",
                "totalViolations": 1,
                "violations": [_violation(1)],
            },
        )
        # when the cluster is collected (as the periodic collection does)
        clusters_collect(cluster_ids=[cluster.pk])
        # then the collection queued the engines' read and a worker recorded the result
        row = wait_for(
            lambda: PolicyEvaluation.objects.filter(
                cluster=cluster, policy__source_name=f"K8sRequiredLabels/{name}"
            ).first(),
            timeout=90,
            what="the constraint's result recorded after collection",
        )
        assert (row.status, row.violations_total) == ("noncompliant", 1)
        assert row.violations[0]["name"] == "team-01"
    finally:
        engines.delete_cluster_custom_object(*CONSTRAINTS, "k8srequiredlabels", name)
