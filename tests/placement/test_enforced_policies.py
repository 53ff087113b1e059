"""Issue 26, "Enforce, honestly", on a real kube-apiserver: an application whose Deployment
uses `nginx:latest`, placed on a cluster where the team enforces "no latest tags"
(ops-image-tags in enforce mode), fails its rollout with the violation and nothing is
created in the cluster (not even its namespace); with the image fixed it rolls out."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from applications.services import application_create, application_version_add
from localkube.env import LocalCluster
from operations.choices import OperationState
from policies.choices import Mode
from policies.models import Policy
from policies.services.library import library_load
from policies.services.policies import PolicySpec, policy_update
from tests.factories import make_team
from tests.placement.test_propagation import deployment, manifests, register, roll_out

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def namespace_exists(local: LocalCluster, name: str) -> bool:
    try:
        k8s.CoreV1Api(local.control_plane.api_client()).read_namespace(name)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_an_enforced_no_latest_rule_blocks_the_rollout_until_the_image_is_fixed(
    kube_cluster: LocalCluster,
) -> None:
    # given a cluster labelled shop=yes and "no latest tags" enforced on such clusters
    team = make_team()
    register(kube_cluster, team, {"shop": "yes"})
    library_load(team=team)
    tags = Policy.objects.get(team=team, name="ops-image-tags")
    policy_update(
        policy=tags,
        spec=PolicySpec(
            **{**PolicySpec.of(tags).__dict__, "mode": Mode.ENFORCE, "cluster_selector": "shop=yes"}
        ),
        actor=None,
    )
    name = f"web-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None,
        team=team,
        name=name,
        namespace=name,
        manifests=manifests(image="nginx:latest"),
        placement={"selector": "shop=yes"},
    )

    # when it is rolled out
    operation = roll_out(application)

    # then the rollout failed with the violation, and nothing was created in the cluster
    assert operation.state == OperationState.FAILED
    assert (
        f"{kube_cluster.name}: refused before apply: Deployment {name}/web: Images must have "
        "a tag other than latest (or a digest). (policy ops-image-tags, rule no-latest)"
    ) in operation.error
    assert deployment(kube_cluster, name) is None
    assert not namespace_exists(kube_cluster, name)

    # when the image is fixed in a new version and rolled out
    application_version_add(
        actor=None, application=application, manifests=manifests(image="nginx:1.25")
    )
    fixed = roll_out(application)

    # then it rolled out
    assert fixed.state == OperationState.SUCCEEDED, fixed.error
    running = deployment(kube_cluster, name)
    assert running.spec.template.spec.containers[0].image == "nginx:1.25"
    assert running.status.available_replicas == 1
