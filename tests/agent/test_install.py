"""The agent's install manifest, tested for real: its RBAC applied into a real
kube-apiserver, the agent running with its ServiceAccount's token enrolls, heartbeats,
applies an application, evaluates a policy, survives a restart with a fresh state
directory, and cleans up at deregistration; SelfSubjectAccessReview shows what that
identity is refused."""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from accounts.models import Team
from agent.runner import Agent, Deregistered
from applications.models import ClusterWork, WorkState
from applications.propagation import work_target
from applications.services import application_create
from clusters.agentmanifest import NAME, NAMESPACE, STATE_SECRET
from clusters.models import Cluster
from clusters.services.lifecycle import cluster_deregister, cluster_deregister_run
from clusters.services.registration import ClusterFields, cluster_register_pull
from kube.apply import server_side_apply
from kube.ownership import MANAGED_SELECTOR
from localkube.env import LocalCluster
from policies.choices import ResultStatus
from policies.models import PolicyEvaluation
from policies.services.policies import PolicySpec, policy_create
from tests.factories import Member
from tests.placement.test_propagation import manifests

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]

# (verb, group, resource, subresource, namespace): what the agent must be able to do
NEEDED = [
    ("list", "", "nodes", "", ""),
    ("list", "", "pods", "", ""),
    ("list", "", "events", "", ""),
    ("list", "metrics.k8s.io", "pods", "", ""),
    ("patch", "apps", "deployments", "", "shop"),
    ("delete", "", "services", "", "shop"),
    ("create", "", "namespaces", "", ""),
    ("patch", "networking.k8s.io", "networkpolicies", "", "shop"),
    ("patch", "", "secrets", "", NAMESPACE),
    ("list", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
]
# ... and what it must be refused
REFUSED = [
    ("create", "", "pods", "exec", "shop"),
    ("patch", "", "nodes", "", ""),
    ("delete", "", "nodes", "", ""),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", ""),
    ("impersonate", "", "users", "", ""),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", "", ""),
    ("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""),
    ("update", "certificates.k8s.io", "certificatesigningrequests", "approval", ""),
    ("create", "", "serviceaccounts", "token", NAMESPACE),
]


def _allowed(api: k8s.ApiClient, check: tuple[str, str, str, str, str]) -> bool:
    verb, group, resource, subresource, namespace = check
    review = k8s.AuthorizationV1Api(api).create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": subresource,
                    "namespace": namespace,
                }
            }
        }
    )
    return bool(review.status.allowed)


@pytest.fixture
def installed_rbac(kube_cluster: LocalCluster) -> Iterator[list[dict[str, Any]]]:
    """Removes what the test installs, whatever happens."""
    objects: list[dict[str, Any]] = []
    yield objects
    admin = kube_cluster.control_plane.api_client()
    rbac = k8s.RbacAuthorizationV1Api(admin)
    for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
        delete(NAME, _preload_content=False)
    k8s.CoreV1Api(admin).delete_namespace(NAMESPACE, _preload_content=False)


def _as_service_account(local: LocalCluster) -> k8s.ApiClient:
    admin = local.control_plane.api_client()
    request = k8s.CoreV1Api(admin).create_namespaced_service_account_token(
        NAME, NAMESPACE, {"spec": {"expirationSeconds": 3600}}
    )
    configuration = copy.copy(admin.configuration)
    configuration.api_key = {"authorization": f"Bearer {request.status.token}"}
    return k8s.ApiClient(configuration)


def test_the_agent_runs_with_the_manifests_least_privilege_identity(
    asgi_server: str,
    kube_cluster: LocalCluster,
    team: Team,
    owner: Member,
    viewer: Member,
    tmp_path: Path,
    installed_rbac: list[dict[str, Any]],
) -> None:
    # given a pull cluster; its admin fetches the install manifest (a viewer may not)
    cluster, _ = cluster_register_pull(actor=None, fields=ClusterFields(name="edge-sa", team=team))
    url = "/api/v1/clusters/edge-sa/agent-manifest/"
    assert viewer.api.get(url).status_code == 403
    response = owner.api.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml"
    assert response["Cache-Control"] == "no-store"
    objects = list(yaml.safe_load_all(response.content))
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert [o["kind"] for o in objects] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
        "Secret",
        "Deployment",
    ]
    bootstrap = by_kind[("Secret", "keelson-agent-bootstrap")]["stringData"]["token"]
    assert bootstrap.startswith("kbt_")
    pod = by_kind[("Deployment", NAME)]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["serviceAccountName"] == NAME
    assert container["args"][:2] == ["--hub", "http://testserver"]
    assert "*" not in str(by_kind[("ClusterRole", NAME)]["rules"])

    # when its identity and Secrets are applied into a real cluster (not the Deployment:
    # the agent runs here, with the ServiceAccount's token)
    admin = kube_cluster.control_plane.api_client()
    for obj in objects[:-1]:
        installed_rbac.append(obj)
        server_side_apply(admin, obj)
    api = _as_service_account(kube_cluster)

    # then SelfSubjectAccessReview shows it may do what it needs and nothing else
    assert [c for c in NEEDED if not _allowed(api, c)] == []
    assert [c for c in REFUSED if _allowed(api, c)] == []

    # when the agent runs with that identity, an application and a policy placed on it
    name = f"sa-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None, team=team, name=name, namespace=name, manifests=manifests()
    )
    work = work_target(application=application, cluster=cluster, version=1, replicas=1)
    rule = {
        "name": "no-host-network",
        "kind": "object",
        "match": {"kinds": ["Pod"], "namespaces": [name]},
        "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
    }
    policy = policy_create(team=team, actor=None, spec=PolicySpec(name="hostnet", rules=[rule]))
    state = f"{NAMESPACE}/{STATE_SECRET}"
    agent = Agent(hub=asgi_server, state_dir=tmp_path / "a", api=api, state_secret=state)
    agent.enroll_if_needed(bootstrap)
    agent.heartbeat()

    # then it enrolled, heartbeats, applied the application and the hub has its result
    cluster.refresh_from_db()
    assert cluster.status == "ready"
    apps = k8s.AppsV1Api(admin)
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 1
    assert ClusterWork.objects.get(pk=work.pk).state != WorkState.FAILED
    result = PolicyEvaluation.objects.get(policy=policy, cluster=cluster)
    assert result.status == ResultStatus.COMPLIANT
    # and its credential is in the state Secret: a restarted container (empty state
    # directory) carries on without the bootstrap token
    secret = k8s.CoreV1Api(admin).read_namespaced_secret(STATE_SECRET, NAMESPACE)
    assert "kat_" in base64.b64decode(secret.data["agent.json"]).decode()
    restarted = Agent(hub=asgi_server, state_dir=tmp_path / "b", api=api, state_secret=state)
    assert restarted.state["cluster"] == "edge-sa"
    restarted.heartbeat()

    # when the cluster is deregistered with cleanup
    operation = cluster_deregister(cluster=cluster, actor=None, cleanup=True)
    cluster_deregister_run(operation_id=operation.pk)
    with pytest.raises(Deregistered):
        restarted.heartbeat()

    # then nothing of Keelson's is left in the cluster and the hub forgot it
    assert not apps.list_deployment_for_all_namespaces(label_selector=MANAGED_SELECTOR).items
    core = k8s.CoreV1Api(admin)
    assert not core.list_service_for_all_namespaces(label_selector=MANAGED_SELECTOR).items
    assert not Cluster.objects.filter(pk=cluster.pk).exists()


@pytest.mark.django_db
def test_the_cluster_page_shows_admins_the_install_command(
    team: Team, owner: Member, viewer: Member
) -> None:
    cluster_register_pull(actor=None, fields=ClusterFields(name="edge-page", team=team))
    command = (
        'curl -fsS -H "Authorization: Bearer $KEELSON_API_TOKEN" '
        "http://testserver/api/v1/clusters/edge-page/agent-manifest/ | kubectl apply -f -"
    )
    page = owner.page.get("/clusters/edge-page/")
    assert page.status_code == 200
    assert command in page.content.decode()
    assert "kubectl apply" not in viewer.page.get("/clusters/edge-page/").content.decode()
