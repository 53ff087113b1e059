"""The application-version change of update runs: one cluster at a time through the
propagation path rollouts use, judged as rollouts judge health, reverted to what the cluster
ran; the run holds the application meanwhile, and its end records the current version.

Pull-mode clusters (the test plays their agents) need no API server; push clusters are real
kube-apiservers with simulated nodes (a crash-looping version is annotated so)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Team
from applications.models import Application, ClusterWork
from applications.reconcile import placement_reconcile
from applications.rollout import (
    application_delete_start,
    application_evict_everywhere_start,
    rollout_run,
    rollout_start,
)
from applications.services import application_create, application_version_add
from audit.models import AuditEvent
from clusters.models import Cluster
from localkube.env import LocalCluster, LocalKubeEnv
from operations.models import Operation
from tests.clusters.helpers import wait_for
from tests.factories import make_cluster, make_team
from tests.placement.helpers import drive_rollout
from tests.placement.pull import agent_reports, pull_cluster
from tests.placement.test_propagation import deployment, manifests, register
from updates.changes import change_for
from updates.changes.base import Change, Step
from updates.choices import RunState
from updates.models import UpdateRun


def new_app(team: Team, selector: str, **kwargs: Any) -> Application:
    name = f"web-{uuid.uuid4().hex[:6]}"
    return application_create(
        actor=None,
        team=team,
        name=name,
        namespace=name,
        manifests=manifests(),
        placement={"selector": selector, "prioritizers": {}},
        **kwargs,
    )


def versions(application: Application) -> dict[str, tuple[int, int | None]]:
    return {
        w.cluster.name: (w.desired_version, w.applied_version)
        for w in ClusterWork.objects.filter(application=application).select_related("cluster")
    }


def settle(change: Change, cluster: Cluster, state: dict[str, Any]) -> Step:
    """Poll as the engine's checks do, until the change is no longer running."""

    def ended() -> Step | None:
        step = change.poll(cluster, state)
        return None if step.state == "running" else step

    found: Step = wait_for(ended, timeout=90, what=f"the change on {cluster.name} to end")
    return found


@pytest.mark.django_db
def test_parameters_name_the_field_at_fault() -> None:
    team = make_team()
    pull_cluster(team, "pull-p", {"ring": "p"})
    application = new_app(team, "ring=p")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"application": "nope", "version": 1}, "application"),
        ({"application": application.name, "version": 2}, "version"),
        ({"application": application.name, "version": "two"}, "version"),
        ({"application": application.name, "version": True}, "version"),
        ({"application": application.name, "version": 1, "image": "x"}, "change_params"),
    ]
    for params, field in cases:
        with pytest.raises(ValidationError) as refused:
            change_for("application_version", team=team, params=params)
        assert field in refused.value.message_dict, params
    change = change_for(
        "application_version", team=team, params={"application": application.name, "version": "1"}
    )
    assert change.params() == {"application": application.name, "version": 1}
    assert change.describe() == f"application {application.name} → version 1"
    # another team's application is not found
    with pytest.raises(ValidationError) as refused:
        change_for("application_version", team=make_team(), params=change.params())
    assert "application" in refused.value.message_dict


@pytest.mark.django_db
def test_pull_clusters_move_through_their_agent_while_the_run_holds_the_application() -> None:
    # given version 1 on two pull clusters, and a version 2
    team = make_team()
    one, two = (pull_cluster(team, name, {"ring": "kinds"}) for name in ("pull-1", "pull-2"))
    application = new_app(team, "ring=kinds")
    rollout = rollout_start(application=application, actor=None)
    rollout_run(operation_id=rollout.pk)  # delivers version 1 to both agents
    agent_reports(one, application)
    agent_reports(two, application)
    assert drive_rollout(rollout).state == "succeeded"
    application_version_add(actor=None, application=application, manifests=manifests(image="x:2"))
    run = UpdateRun.objects.create(
        team=team,
        name="web-to-2",
        change_kind="application_version",
        change_params={"application": application.name, "version": 2},
        state=RunState.RUNNING,
    )
    change = change_for("application_version", team=team, params=run.change_params)

    # when a run is under way, then reconcile leaves the application alone and no rollout starts
    assert placement_reconcile(application=application) == "busy"
    with pytest.raises(ValidationError) as refused:
        rollout_start(application=application, actor=None)
    held = (
        f"Update run 'web-to-2' (running) is moving {application.name} to version 2 cluster "
        "by cluster; wait for it to end, or abort it."
    )
    assert refused.value.messages == [held]
    # and neither an eviction nor a deletion starts
    with pytest.raises(ValidationError, match="Update run 'web-to-2'"):
        application_evict_everywhere_start(
            application=application, actor=None, clusters=["pull-1", "pull-2"]
        )
    with pytest.raises(ValidationError, match="Update run 'web-to-2'"):
        application_delete_start(application=application, actor=None)

    # when version 2 starts on pull-1, then it waits for the agent's fetch and report
    state = change.start(one, actor=None)
    assert state["from"] == 1
    assert change.poll(one, state) == Step(
        "running", "pull-1: Waiting for the agent to fetch the work"
    )
    agent_reports(one, application)
    assert change.poll(one, state) == Step("done", "Version 2 available on pull-1.")
    assert versions(application) == {"pull-1": (2, 2), "pull-2": (1, 1)}
    audit = AuditEvent.objects.get(action="application.cluster_version")
    assert audit.detail == {"cluster": "pull-1", "from": 1, "to": 2}

    # when pull-2's agent reports an error, then the change fails at once and reverts to 1
    failing = change.start(two, actor=None)
    agent_reports(two, application, error="ImagePullBackOff: x:2")
    assert change.poll(two, failing) == Step("failed", "pull-2: ImagePullBackOff: x:2")
    back = change.revert(two, failing, actor=None)
    agent_reports(two, application)
    assert change.poll(two, back) == Step("done", "Version 1 available on pull-2.")
    assert versions(application) == {"pull-1": (2, 2), "pull-2": (1, 1)}

    # when pull-2 gets version 2 after all and the run succeeds
    state = change.start(two, actor=None)
    agent_reports(two, application)
    assert change.poll(two, state).state == "done"
    UpdateRun.objects.filter(pk=run.pk).update(state=RunState.SUCCEEDED)
    change.finish([one, two], actor=None)

    # then version 2 is the application's current version: reconcile no longer waits, and a
    # cluster that joins gets version 2, not the version 1 of the rollout before the run
    assert application.decisions.first().application_version == 2  # type: ignore[union-attr]
    assert AuditEvent.objects.filter(action="application.current_version").count() == 1
    assert placement_reconcile(application=application) == "synced"
    pull_cluster(team, "pull-3", {"ring": "kinds"})
    assert placement_reconcile(application=application) == "rescheduled"
    reschedule = Operation.objects.filter(kind="application.rollout").order_by("-created_at")[0]
    assert reschedule.params["version"] == 2


@pytest.fixture(scope="module")
def second(kube_env: LocalKubeEnv) -> Iterator[LocalCluster]:
    local = kube_env.start_cluster("kinds-b")
    yield local
    kube_env.stop_cluster("kinds-b", remove_data=True)


def image(local: LocalCluster, application: Application) -> str:
    found = deployment(local, application.namespace)
    return str(found.spec.template.spec.containers[0].image)


@pytest.mark.django_db
@pytest.mark.kube
def test_one_push_cluster_moves_to_a_version_and_back_when_the_next_crash_loops(
    kube_cluster: LocalCluster, second: LocalCluster
) -> None:
    # given version 1 (nginx:1.25) on two clusters, a version 2 and a crash-looping version 3
    team = make_team()
    a = register(kube_cluster, team, {"kinds": "yes"})
    b = register(second, team, {"kinds": "yes"})
    elsewhere = make_cluster(team=team, name="kinds-c")
    application = new_app(team, "kinds=yes", rollout={"health_timeout_seconds": 10})
    assert drive_rollout(rollout_start(application=application, actor=None)).state == "succeeded"
    application_version_add(
        actor=None, application=application, manifests=manifests(image="nginx:1.26")
    )
    application_version_add(
        actor=None, application=application, manifests=manifests(image="nginx:bad", crash=True)
    )
    to_2 = change_for(
        "application_version", team=team, params={"application": application.name, "version": 2}
    )

    # when the change is previewed, then a and b go 1 → 2, the third cluster is skipped
    plans = {p.cluster_name: p for p in to_2.plan([a, b, elsewhere])}
    assert (plans[a.name].from_value, plans[a.name].to_value) == ("version 1", "version 2")
    assert plans[a.name].skip_reason == plans[b.name].skip_reason == ""
    assert plans["kinds-c"].skip_reason == f"{application.name} is not placed on kinds-c."
    assert plans[a.name].estimate_seconds == 10  # at most the health timeout

    # when version 2 goes to a only
    state = to_2.start(a, actor=None)

    # then a runs version 2's image and b still version 1's
    assert settle(to_2, a, state) == Step("done", f"Version 2 available on {a.name}.")
    assert image(kube_cluster, application) == "nginx:1.26"
    assert image(second, application) == "nginx:1.25"
    assert versions(application) == {a.name: (2, 2), b.name: (1, 1)}
    assert to_2.plan([a])[0].skip_reason == "Already runs version 2."

    # when version 3, whose pods crash-loop, goes to a
    to_3 = change_for(
        "application_version", team=team, params={"application": application.name, "version": 3}
    )
    broken = to_3.start(a, actor=None)

    # then it fails as a rollout's health wait does: not available within the timeout
    step = settle(to_3, a, broken)
    assert step.state == "failed"
    assert step.message.startswith(f"{a.name}: not available within 10s (")
    assert image(kube_cluster, application) == "nginx:bad"

    # when it is reverted, then a runs version 2 again, available
    back = to_3.revert(a, broken, actor=None)
    assert settle(to_3, a, back) == Step("done", f"Version 2 available on {a.name}.")
    assert image(kube_cluster, application) == "nginx:1.26"
    assert versions(application) == {a.name: (2, 2), b.name: (1, 1)}
