"""Push mode's least-privilege identity: for kubeconfigs that need an exec plugin (EKS,
GKE, AKS), the hub serves a ServiceAccount manifest; tested for real, the hub with that
ServiceAccount's token registers, collects, evaluates, enforces and propagates, and
SelfSubjectAccessReview shows it is refused the rest."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client as k8s

from accounts.models import Team
from applications.propagation import work_sync, work_target
from applications.services import application_create
from clusters.agentmanifest import PUSH_NAME, PUSH_NAMESPACE
from clusters.services.collection import clusters_collect
from clusters.services.registration import (
    ClusterFields,
    RegistrationError,
    cluster_register_push,
    connection_from_input,
)
from kube.apply import server_side_apply
from localkube.env import LocalCluster
from policies.choices import Mode, ResultStatus
from policies.services.enforcement import clusters_enforce
from policies.services.evaluation import cluster_evaluate
from policies.services.policies import PolicySpec, policy_create
from tests.agent.test_install import NEEDED, REFUSED, _allowed
from tests.factories import Member
from tests.placement.test_propagation import manifests

EXEC_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: eks, cluster: {server: "https://eks.example:443"}}]
users: [{name: aws, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1,
  command: aws, args: [eks, get-token, --cluster-name, prod]}}}]
contexts: [{name: eks, context: {cluster: eks, user: aws}}]
current-context: eks
"""


@pytest.mark.django_db
def test_an_exec_plugin_kubeconfig_is_offered_the_push_identity(owner: Member, team: Team) -> None:
    with pytest.raises(RegistrationError) as refused:
        connection_from_input(kubeconfig=EXEC_KUBECONFIG)
    assert "GET /api/v1/clusters/push-identity-manifest/" in refused.value.message
    page = owner.page.post(
        "/clusters/register/",
        {
            "name": "eks-prod",
            "team": team.name,
            "provider": "edge",
            "method": "kubeconfig",
            "kubeconfig": EXEC_KUBECONFIG,
        },
    )
    assert page.status_code == 400
    body = page.content.decode()
    assert "push-identity-manifest/ | kubectl apply -f -" in body
    assert "push-identity-manifest/?access=read-only | kubectl apply -f -" in body
    assert "keelson-hub-token" in body


@pytest.fixture
def installed(kube_cluster: LocalCluster) -> Iterator[None]:
    yield
    admin = kube_cluster.control_plane.api_client()
    rbac = k8s.RbacAuthorizationV1Api(admin)
    for name in (PUSH_NAME, f"{PUSH_NAME}-read-only"):
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            with contextlib.suppress(k8s.ApiException):
                delete(name, _preload_content=False)
    k8s.CoreV1Api(admin).delete_namespace(PUSH_NAMESPACE, _preload_content=False)


@pytest.mark.kube
@pytest.mark.django_db
def test_the_hub_works_with_the_push_identity_and_is_refused_the_rest(
    kube_cluster: LocalCluster, team: Team, viewer: Member, installed: None
) -> None:
    # given the manifest (any signed-in user: it holds no secret), and its read-only variant
    response = viewer.api.get("/api/v1/clusters/push-identity-manifest/")
    assert response.status_code == 200
    objects = list(yaml.safe_load_all(response.content))
    assert [o["kind"] for o in objects] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    ]
    assert objects[-1]["type"] == "kubernetes.io/service-account-token"
    observe = viewer.api.get("/api/v1/clusters/push-identity-manifest/?access=read-only")
    [role] = [o for o in yaml.safe_load_all(observe.content) if o["kind"] == "ClusterRole"]
    assert {v for rule in role["rules"] for v in rule["verbs"]} <= {"get", "list", "watch"}
    assert viewer.api.get("/api/v1/clusters/push-identity-manifest/?access=all").status_code == 400

    # when applied into a real cluster, with a token of that ServiceAccount
    admin = kube_cluster.control_plane.api_client()
    for obj in objects:
        server_side_apply(admin, obj)
    token = (
        k8s.CoreV1Api(admin)
        .create_namespaced_service_account_token(
            PUSH_NAME, PUSH_NAMESPACE, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    configuration = copy.copy(admin.configuration)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    api = k8s.ApiClient(configuration)

    # then it may do what the hub does in push mode, and nothing else
    needed = [check for check in NEEDED if check[4] != "keelson-agent"]
    assert [c for c in needed if not _allowed(api, c)] == []
    assert [c for c in REFUSED if c[4] != "keelson-agent" and _allowed(api, c)] == []

    # and the hub registers the cluster with it, read-write
    plane = kube_cluster.control_plane
    ca = plane.ca_file.read_text()
    spec, kind = connection_from_input(server=plane.server, token=token, ca_data=ca)
    cluster, report = cluster_register_push(
        actor=None,
        fields=ClusterFields(name=f"sa-{uuid.uuid4().hex[:6]}", team=team),
        spec=spec,
        kind=kind,
    )
    assert not report.read_only

    # and collects, evaluates, enforces and propagates through it
    clusters_collect(cluster_ids=[cluster.pk])
    cluster.refresh_from_db()
    assert cluster.status == "ready"
    name = f"sa-{uuid.uuid4().hex[:6]}"
    k8s.CoreV1Api(admin).create_namespace({"metadata": {"name": name}})
    rule = {
        "name": "default-deny",
        "kind": "template",
        "compliance_type": "musthave",
        "match": {"namespaces": [name]},
        "object_template": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny-ingress"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    }
    policy = policy_create(
        team=team, actor=None, spec=PolicySpec(name="iso", mode=Mode.ENFORCE, rules=[rule])
    )
    [before] = cluster_evaluate(cluster=cluster, policy_ids=[policy.pk], force=True)
    assert before.status == ResultStatus.NONCOMPLIANT
    assert clusters_enforce(cluster_ids=[cluster.pk]) == 1
    k8s.NetworkingV1Api(admin).read_namespaced_network_policy("default-deny-ingress", name)
    application = application_create(
        actor=None, team=team, name=name, namespace=name, manifests=manifests()
    )
    work = work_target(application=application, cluster=cluster, version=1, replicas=1)
    assert work_sync(work).ok
    assert k8s.AppsV1Api(admin).read_namespaced_deployment("web", name).spec.replicas == 1
    k8s.CoreV1Api(admin).delete_namespace(name, _preload_content=False)
