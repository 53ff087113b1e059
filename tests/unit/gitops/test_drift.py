"""An object's sync state from what the last applied commit declared, its state now, a
failure and what is pending; and which objects a sync's errors name."""

from __future__ import annotations

from gitops.drift import named_objects, object_status, planned_changes

DECLARED = {"namespace": "shop", "placement": {"selector": "env=prod"}, "overrides": []}


def test_as_declared_is_synced() -> None:
    status = object_status(declared=DECLARED, current=dict(DECLARED))
    assert (status.status, status.reason, status.diff) == ("synced", "", {})


def test_a_field_changed_since_is_drift_with_now_and_in_git() -> None:
    current = {**DECLARED, "placement": {"selector": "env=dev"}}

    status = object_status(declared=DECLARED, current=current)

    assert status.status == "drifted"
    assert status.reason == "changed outside Git: placement"
    assert status.diff == {
        "placement": {"old": {"selector": "env=dev"}, "new": {"selector": "env=prod"}}
    }


def test_an_object_gone_or_released_is_drift() -> None:
    status = object_status(declared=DECLARED, current=None)
    assert (status.status, status.reason) == ("drifted", "deleted or released outside Git")


def test_failure_wins_over_drift_which_wins_over_pending_and_the_diff_stays() -> None:
    current = {**DECLARED, "overrides": [{"cluster": "a"}]}

    failed = object_status(
        declared=DECLARED, current=current, failure="x.yaml:1: boom", pending="p"
    )
    drifted = object_status(declared=DECLARED, current=current, pending="would change at abc")
    pending = object_status(declared=DECLARED, current=DECLARED, pending="rolling out")

    assert (failed.status, failed.reason, list(failed.diff)) == (
        "failed",
        "x.yaml:1: boom",
        ["overrides"],
    )
    assert drifted.status == "drifted"
    assert (pending.status, pending.reason) == ("pending", "rolling out")


def test_never_applied_is_pending() -> None:
    status = object_status(declared=None, current=None, pending="would create at abc1234")
    assert (status.status, status.reason) == ("pending", "would create at abc1234")
    assert object_status(declared=None, current=None).reason == "not applied yet"


def test_the_objects_errors_name() -> None:
    errors = [
        "fleet/web.yaml:20: Placement web: placement: Unknown field(s): clusterSelector",
        "fleet/p.yaml:1: Policy no-latest: cluster_sets: No such cluster set in the team: x.",
        "fleet/p.yaml:9: Policy no-latest: severity: not a choice",
        "fleet/s.yaml:1: ClusterSet prod exists and is not managed by this repository",
        "Application api: not rolled out: a rollout is in progress",
        "main has moved to abc1234 since the approved plan of def5678; preview again.",
        "git fetch failed: fatal: unable to connect",
        "fleet/x.yaml:3: apiVersion must be keelson.io/v1",
    ]

    assert named_objects(errors) == {
        ("Application", "web"): errors[0],  # a Placement is part of its application
        ("Policy", "no-latest"): errors[1],  # the first error of each
        ("ClusterSet", "prod"): errors[3],
        ("Application", "api"): errors[4],
    }


def test_a_plan_waiting_for_approval_says_what_it_would_do() -> None:
    plan = [
        {"action": "change", "kind": "Application", "name": "web"},
        {"action": "unchanged", "kind": "Policy", "name": "p"},
        {"action": "create", "kind": "ClusterSet", "name": "prod"},
    ]
    assert planned_changes(plan, "0123456789abcdef") == {
        ("Application", "web"): "would change at 0123456",
        ("ClusterSet", "prod"): "would create at 0123456",
    }
