"""`tolerationSeconds` with Karmada's NoExecute semantics (pkg/util/helper/taint.go,
GetMinTolerationTime): a NoExecute taint that a placement does not tolerate excludes the
cluster and evicts the application from it; one it tolerates without seconds is tolerated
for ever; with seconds, the cluster stays eligible until timeAdded + the fewest seconds of
the tolerations that match it carrying any, then the application is evicted. Expected
answers are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from applications.guard import running_clusters
from applications.models import Application, PlacementDecision
from applications.reconcile import placement_reconcile
from applications.scheduler import PlacementSpec, schedule
from applications.spec import placement_spec
from applications.table import Table
from clusters.labels import stamp_taints, validate_taints
from clusters.models import Cluster
from clusters.services.lifecycle import cluster_update
from operations.models import Operation
from tests.factories import add_member, make_team, make_user
from tests.placement.helpers import drive_rollout
from tests.placement.pull import pull_cluster
from tests.placement.test_rollout_api import client_for, create_app
from tests.placement.test_unschedulable import deploy
from tests.unit.placement.test_karmada_ocm_cases import ONE_CPU, cluster

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADDED = T0.isoformat()
MAINTENANCE = [{"key": "maintenance", "value": "", "effect": "NoExecute", "timeAdded": ADDED}]


def chosen(tolerations: list[dict[str, Any]], seconds_after: float, current: bool) -> bool:
    """Is the tainted cluster chosen `seconds_after` T0 (already running the app or not)?"""
    spec = placement_spec({"tolerations": tolerations})
    candidate = cluster("x", taints=MAINTENANCE, current=current, held=int(current))
    decision = schedule(spec, [candidate], ONE_CPU, now=T0.timestamp() + seconds_after)
    return bool(decision.chosen)


EXISTS: dict[str, Any] = {"key": "maintenance", "operator": "Exists"}


@pytest.mark.parametrize(
    ("tolerations", "seconds_after", "selected"),
    [
        # not tolerated: excluded at once, new or current (Karmada evicts it)
        ([], 0, False),
        # tolerated without seconds: for ever (10^7 s later still chosen)
        ([EXISTS], 10**7, True),
        # 300 s: chosen at T0 + 299, evicted at T0 + 300 (trigger time = timeAdded + 300)
        ([{**EXISTS, "tolerationSeconds": 300}], 299, True),
        ([{**EXISTS, "tolerationSeconds": 300}], 300, False),
        # 0 s: the trigger time is timeAdded itself: evicted at once
        ([{**EXISTS, "tolerationSeconds": 0}], 0, False),
        # one matching toleration without seconds and one with 60: the one with seconds
        # sets the trigger (Karmada collects trigger times only from those with seconds)
        ([EXISTS, {**EXISTS, "tolerationSeconds": 60}], 59, True),
        ([EXISTS, {**EXISTS, "tolerationSeconds": 60}], 60, False),
        # 120 and 60: the earliest trigger, T0 + 60
        ([{**EXISTS, "tolerationSeconds": 120}, {**EXISTS, "tolerationSeconds": 60}], 90, False),
        # effect NoExecute given explicitly: the same
        ([{**EXISTS, "effect": "NoExecute", "tolerationSeconds": 60}], 30, True),
        # a toleration of another effect does not tolerate a NoExecute taint
        ([{**EXISTS, "effect": "NoSelect"}], 0, False),
        # seconds on a toleration that does not match this taint count for nothing
        ([EXISTS, {"key": "other", "operator": "Exists", "tolerationSeconds": 1}], 10**6, True),
    ],
)
@pytest.mark.parametrize("current", [False, True])
def test_no_execute_tolerations_expire_at_time_added_plus_seconds(
    tolerations: list[dict[str, Any]], seconds_after: float, selected: bool, current: bool
) -> None:
    assert chosen(tolerations, seconds_after, current) is selected


def test_an_expired_toleration_is_named_in_the_exclusion() -> None:
    spec = placement_spec({"tolerations": [{**EXISTS, "tolerationSeconds": 300}]})
    decision = schedule(spec, [cluster("x", taints=MAINTENANCE)], ONE_CPU, now=T0.timestamp() + 301)
    assert decision.excluded == [
        {
            "cluster": "x",
            "predicate": "TaintToleration",
            "reason": "taint maintenance=:NoExecute was tolerated for 300s "
            "(tolerationSeconds); that has expired",
        }
    ]


def test_a_verdict_kept_between_calls_expires_with_its_toleration() -> None:
    # The table keeps each profile's verdict for a placement's predicates: a toleration
    # that expires between two calls must be judged again (same table, same spec).
    table = Table.of([cluster("x", taints=MAINTENANCE)])
    spec = PlacementSpec(tolerations=[{**EXISTS, "tolerationSeconds": 60}])
    assert schedule(spec, table, ONE_CPU, now=T0.timestamp() + 59).chosen
    assert not schedule(spec, table, ONE_CPU, now=T0.timestamp() + 60).chosen


@pytest.mark.parametrize(
    ("toleration", "text"),
    [
        ({**EXISTS, "tolerationSeconds": -1}, "from 0 to"),
        ({**EXISTS, "tolerationSeconds": "60"}, "from 0 to"),
        ({**EXISTS, "tolerationSeconds": True}, "from 0 to"),
        ({**EXISTS, "effect": "NoSelect", "tolerationSeconds": 60}, "NoExecute taints only"),
        ({**EXISTS, "tolerationSecond": 60}, "did you mean 'tolerationSeconds'?"),
    ],
)
def test_bad_toleration_seconds_are_refused(toleration: dict[str, Any], text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        placement_spec({"tolerations": [toleration]})
    assert text in raised.value.message_dict["tolerations"][0]


def test_no_execute_taints_carry_the_time_they_were_added() -> None:
    now = T0 + timedelta(hours=1)
    new = [{"key": "maintenance", "value": "", "effect": "NoExecute"}]
    # a new NoExecute taint is stamped now; other effects are not stamped
    stamped = stamp_taints([*new, {"key": "gpu", "value": "", "effect": "NoSelect"}], [], now)
    assert stamped[0]["timeAdded"] == now.isoformat() and "timeAdded" not in stamped[1]
    # the same taint given again (a form does not show the time) keeps its first time
    assert stamp_taints(new, MAINTENANCE, now)[0]["timeAdded"] == ADDED
    # another value is another taint: stamped anew
    changed = [{**new[0], "value": "soon"}]
    assert stamp_taints(changed, MAINTENANCE, now)[0]["timeAdded"] == now.isoformat()
    validate_taints(MAINTENANCE)
    with pytest.raises(ValidationError):  # timeAdded only on NoExecute taints
        validate_taints([{"key": "gpu", "value": "", "effect": "NoSelect", "timeAdded": ADDED}])
    with pytest.raises(ValidationError):  # with its offset
        validate_taints([{**MAINTENANCE[0], "timeAdded": "2026-12-01T12:00:00"}])


# --- the whole lifecycle: deployed, tainted, tolerated for a while, evicted ---------------


@pytest.fixture
def team() -> Team:
    return make_team(name="shop-team")


@pytest.fixture
def operator(team: Team) -> APIClient:
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    return client_for(user)


def _taint_added(cluster_row: Cluster, seconds_ago: int) -> None:
    """Move the NoExecute taint's timeAdded back: the time that has passed since."""
    taints = [
        {**t, "timeAdded": (timezone.now() - timedelta(seconds=seconds_ago)).isoformat()}
        if t["effect"] == "NoExecute"
        else t
        for t in cluster_row.taints
    ]
    Cluster.objects.filter(pk=cluster_row.pk).update(taints=taints)


@pytest.mark.django_db
def test_a_tolerated_no_execute_taint_evicts_the_application_when_it_expires(
    operator: APIClient, team: Team
) -> None:
    edges = [pull_cluster(team, name, {"tier": "edge"}) for name in ("edge-1", "edge-2")]
    # given shop on both edge clusters, tolerating maintenance for 600 s
    tolerations = [{"key": "maintenance", "operator": "Exists", "tolerationSeconds": 600}]
    create_app(
        operator, team.name, "shop", placement={"selector": "tier=edge", "tolerations": tolerations}
    )
    shop = Application.objects.get(name="shop")
    assert deploy(shop, edges).state == "succeeded"
    assert running_clusters(shop) == ["edge-1", "edge-2"]

    # when edge-2 is tainted maintenance:NoExecute (through the service, which stamps it)
    edge2 = cluster_update(
        cluster=edges[1],
        actor=None,
        changes={"taints": [{"key": "maintenance", "value": "", "effect": "NoExecute"}]},
    )
    added = datetime.fromisoformat(edge2.taints[0]["timeAdded"])
    assert abs((timezone.now() - added).total_seconds()) < 60

    # then, within the 600 s, reconcile keeps shop on both (several passes)
    assert [placement_reconcile(application=shop) for _ in range(3)] == ["synced"] * 3
    assert running_clusters(shop) == ["edge-1", "edge-2"]
    # and 599 s after the taint was added, still
    _taint_added(edge2, 599)
    assert placement_reconcile(application=shop) == "synced"
    assert running_clusters(shop) == ["edge-1", "edge-2"]

    # when 600 s have passed since the taint was added
    _taint_added(edge2, 600)
    # then reconcile reschedules away from edge-2 only
    assert placement_reconcile(application=shop) == "rescheduled"
    operation = Operation.objects.filter(params__reason__startswith="reschedule").get()
    assert operation.params["reason"] == "reschedule; left: edge-2"
    assert drive_rollout(operation).state == "succeeded"
    decision = PlacementDecision.objects.filter(application=shop)[0].decision
    assert [c["cluster"] for c in decision["chosen"]] == ["edge-1"]
    assert "was tolerated for 600s" in decision["excluded"][0]["reason"]
    # and shop runs on edge-1 alone, and stays there on the next passes
    assert running_clusters(shop) == ["edge-1"]
    assert [placement_reconcile(application=shop) for _ in range(2)] == ["synced"] * 2
    assert running_clusters(shop) == ["edge-1"]

    # when the taint is removed, edge-2 is eligible again: the next pass places it back
    cluster_update(cluster=Cluster.objects.get(pk=edge2.pk), actor=None, changes={"taints": []})
    assert placement_reconcile(application=shop) == "rescheduled"
