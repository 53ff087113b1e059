"""An application's life on real clusters (kube-apiservers with simulated nodes), with
collection running between reconcile passes as it does in production (issue 20).

- Deployed, collected, reconciled again and again: it stays where it was placed.
- Bug 6: when nothing matches any more, reconcile keeps it running on its clusters and marks
  it Unschedulable; a rollout is refused; only the confirmed evict-everywhere removes it.
- Bug 1 (the scheduler's part, fixed on the `placement` branch): its own pods' requests, once
  collected, must not push it out of its cluster.
- Bug 2: a divided placement asking for more replicas than its clusters fit deploys only what
  fits, says how many do not, and stays put once its pods are collected."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from applications.models import Application, ClusterWork, PlacementStatus, WorkState
from applications.reconcile import placement_reconcile
from applications.services import application_create
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from localkube.env import LocalCluster, LocalKubeEnv
from localkube.simulator import NodeSpec
from operations.models import Operation
from tests.clusters.helpers import wait_for
from tests.factories import add_member, make_team, make_user
from tests.placement.helpers import drive_rollout
from tests.placement.test_propagation import deployment, register, roll_out
from tests.placement.test_rollout_api import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.kube]

RECONCILE_PASSES = 3


@pytest.fixture(scope="module")
def life(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    """A cluster of this module's own (two simulated nodes of 4 CPU and 8 GiB each)."""
    local = kube_env.start_cluster("life-a")
    yield local
    kube_env.stop_cluster("life-a", remove_data=True)


@pytest.fixture(scope="module")
def spare(kube_env: LocalKubeEnv) -> Iterator[dict[str, LocalCluster]]:
    """Two empty clusters for the overcommit test alone (the other tests leave their
    applications running on theirs): over-a of two nodes x 4 CPU, over-b of one 4-CPU node."""
    started = {
        "over-a": kube_env.start_cluster("over-a"),
        "over-b": kube_env.start_cluster("over-b", nodes=[NodeSpec(name="over-b-1", cpu="4")]),
    }
    yield started
    for name in started:
        kube_env.stop_cluster(name, remove_data=True)


def web(*, replicas: int, cpu: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - {{name: web, image: "nginx:1.25", resources: {{requests: {{cpu: "{cpu}", memory: 64Mi}}}}}}
"""


def new_app(team: Team, *, placement: dict[str, Any], replicas: int, cpu: str) -> Application:
    name = f"life-{uuid.uuid4().hex[:6]}"
    return application_create(
        actor=None,
        team=team,
        name=name,
        namespace=name,
        manifests=web(replicas=replicas, cpu=cpu),
        placement=placement,
    )


def collect(clusters: list[Cluster]) -> None:
    clusters_collect(cluster_ids=[c.pk for c in clusters])
    for cluster in clusters:
        cluster.refresh_from_db()
        assert cluster.status == "ready", cluster.status_message


def available(local: LocalCluster, namespace: str) -> int:
    live = deployment(local, namespace)
    return int(live.status.available_replicas or 0) if live is not None else 0


def works_of(application: Application) -> dict[str, str]:
    return dict(
        ClusterWork.objects.filter(application=application).values_list("cluster__name", "state")
    )


def test_an_application_stays_placed_and_is_kept_when_nothing_matches_until_evicted(
    life: LocalCluster, kube_cluster: LocalCluster
) -> None:
    # given two real clusters labelled for the application, collected
    team = make_team()
    clusters = [
        register(life, team, {"life": "yes"}),
        register(kube_cluster, team, {"life": "yes"}),
    ]
    application = new_app(team, placement={"selector": "life=yes"}, replicas=1, cpu="100m")
    namespace = application.namespace
    # when it is deployed (every matching cluster, one replica each)
    assert roll_out(application).state == "succeeded"
    assert available(life, namespace) == available(kube_cluster, namespace) == 1
    rollouts = Operation.objects.filter(kind="application.rollout").count()

    # when collection sees its pods and reconcile runs, again and again
    outcomes = []
    for _ in range(RECONCILE_PASSES):
        collect(clusters)
        outcomes.append(placement_reconcile(application=application))

    # then it stays where it was placed: nothing rescheduled, both still running it
    assert outcomes == ["synced"] * RECONCILE_PASSES
    assert Operation.objects.filter(kind="application.rollout").count() == rollouts
    assert works_of(application) == {"life-a": "available", "member-1": "available"}
    assert available(life, namespace) == available(kube_cluster, namespace) == 1

    # when the clusters' labels change so that nothing matches (bug 6)
    Cluster.objects.filter(pk__in=[c.pk for c in clusters]).update(labels={"life": "no"})
    outcomes = []
    for _ in range(RECONCILE_PASSES):
        collect(clusters)
        outcomes.append(placement_reconcile(application=application))

    # then reconcile keeps it running on both and marks it Unschedulable with the reason
    assert outcomes == ["unschedulable"] * RECONCILE_PASSES
    assert Operation.objects.filter(kind="application.rollout").count() == rollouts
    assert works_of(application) == {"life-a": "available", "member-1": "available"}
    assert available(life, namespace) == available(kube_cluster, namespace) == 1
    application.placement.refresh_from_db()
    assert application.placement.status == PlacementStatus.UNSCHEDULABLE
    assert application.placement.status_reason == (
        "No cluster fits the placement: 2 excluded (2 by LabelSelector); e.g. life-a: labels "
        "do not match 'life=yes'. Still running on life-a, member-1."
    )

    # and through the API: the status says so, and a rollout is refused
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    api: APIClient = client_for(user)
    url = f"/api/v1/applications/{application.name}/"
    assert api.get(url).json()["placement_status"]["state"] == "unschedulable"
    refused = api.post(url + "rollout/", {}, format="json")
    assert refused.status_code == 400
    assert "keeps running on life-a, member-1" in refused.json()["error"]["message"]
    assert available(life, namespace) == available(kube_cluster, namespace) == 1

    # when the user confirms the removal naming both clusters
    evict = api.post(url + "evict-everywhere/", {"clusters": ["life-a", "member-1"]}, format="json")
    assert evict.status_code == 202, evict.content
    operation = drive_rollout(Operation.objects.get(pk=evict.json()["operation"]))

    # then it is removed from both clusters, and the application is kept
    assert operation.state == "succeeded", operation.error
    for local in (life, kube_cluster):
        wait_for(
            lambda local=local: deployment(local, namespace) is None,  # type: ignore[misc]
            timeout=30,
            what=f"the deployment to leave {local.name}",
        )
    assert works_of(application) == {}
    assert api.get(url).json()["placement_status"]["state"] == "scheduled"
    assert placement_reconcile(application=application) == "idle"


def test_its_own_collected_pods_do_not_push_an_application_out(life: LocalCluster) -> None:
    # given one cluster of 2 nodes x 4 CPU = 8 CPU, and 3 replicas x 2 CPU = 6 CPU: it fits
    # while the cluster is empty (6 <= 8 free)
    team = make_team()
    cluster = register(life, team, {"own": "yes"})
    application = new_app(
        team, placement={"selector": "own=yes", "replicas": 3}, replicas=3, cpu="2"
    )
    namespace = application.namespace
    operation = roll_out(application)
    assert operation.state == "succeeded", operation.error
    assert available(life, namespace) == 3
    # when collection reports the 6 CPU its own pods request (free: 8 - 6 = 2 < 6), and
    # reconcile runs, again and again
    outcomes = []
    for _ in range(RECONCILE_PASSES):
        collect([cluster])
        outcomes.append(placement_reconcile(application=application))
    cluster.refresh_from_db()
    assert cluster.requested_cpu_millis >= 6000  # collection did see its pods
    # then, whatever the scheduler decides, it is never removed (bug 6's guard) ...
    assert works_of(application) == {"life-a": WorkState.AVAILABLE}
    assert available(life, namespace) == 3
    assert not Operation.objects.filter(params__reason__startswith="reschedule").exists()
    # ... and with bug 1 fixed, nothing changed at all: its own 6 CPU are added back
    # (free for it: 2 + 6 = 8 >= 6), so the placement is still Scheduled.
    application.placement.refresh_from_db()
    assert outcomes == ["synced"] * RECONCILE_PASSES, application.placement.status_reason
    assert not application.placement.status_reason
    assert application.placement.status == PlacementStatus.SCHEDULED


def test_a_divided_placement_never_overcommits_and_stays_put(
    spare: dict[str, LocalCluster],
) -> None:
    # given two empty clusters: over-a of 2 nodes x 4 CPU, over-b of 1 node x 4 CPU
    big, small = spare["over-a"], spare["over-b"]
    team = make_team()
    clusters = [register(big, team, {"over": "yes"}), register(small, team, {"over": "yes"})]
    assert [c.requested_cpu_millis for c in clusters] == [0, 0]
    assert [c.allocatable_cpu_millis for c in clusters] == [8000, 4000]
    # and 9 replicas of 2 CPU divided by capacity: over-a fits 8 / 2 = 4, over-b
    # 4 / 2 = 2 (each node fits exactly 2, so the kube-scheduler places every one), 6 in all,
    # so 9 - 6 = 3 fit nowhere. (Dividing 9 by room 4 : 2 without caps would give 6 and 3.)
    application = new_app(
        team,
        placement={"selector": "over=yes", "replicas": 9, "division": "capacity"},
        replicas=1,
        cpu="2",
    )
    namespace = application.namespace

    # when it is rolled out
    operation = roll_out(application)

    # then the decision gives each cluster what fits and says 3 replicas do not fit
    assert operation.state == "succeeded", operation.error
    decision = application.decisions.first()
    assert decision is not None
    shares = {c["cluster"]: c["replicas"] for c in decision.decision["chosen"]}
    assert shares == {"over-a": 4, "over-b": 2}
    assert decision.decision["unschedulable"] == 3
    assert any(w.startswith("Unschedulable: 3 of 9") for w in decision.decision["warnings"])
    # and each cluster's Deployment asks for exactly its share, all of it available
    assert deployment(big, namespace).spec.replicas == 4
    assert deployment(small, namespace).spec.replicas == 2
    assert available(big, namespace) == 4
    assert available(small, namespace) == 2
    rollouts = Operation.objects.filter(kind="application.rollout").count()

    # when collection sees its pods (over-a 8 of 8 CPU requested, over-b 4 of 4) and
    # reconcile runs, again and again
    outcomes = []
    for _ in range(RECONCILE_PASSES):
        collect(clusters)
        outcomes.append(placement_reconcile(application=application))
    assert [c.requested_cpu_millis for c in clusters] == [8000, 4000]

    # then nothing moves: its own pods are its room (0 free + 4 x 2 = 8 CPU, 0 + 2 x 2 = 4),
    # so the decision is the same and no rollout started
    assert outcomes == ["synced"] * RECONCILE_PASSES
    assert Operation.objects.filter(kind="application.rollout").count() == rollouts
    assert works_of(application) == {"over-a": "available", "over-b": "available"}
    assert deployment(big, namespace).spec.replicas == 4
    assert deployment(small, namespace).spec.replicas == 2
    # and the API's simulate says the same: 4 and 2, 3 unschedulable
    user = make_user()
    add_member(team, user, Role.VIEWER)
    answer = client_for(user).post(
        f"/api/v1/applications/{application.name}/simulate/", {}, format="json"
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert {c["cluster"]: c["replicas"] for c in body["chosen"]} == shares
    assert body["unschedulable"] == 3
