"""The plan: create, change with a field diff, unchanged, prune or orphan."""

from __future__ import annotations

from typing import Any

from gitops.documents import Desired
from gitops.plan import field_diff, make_plan, plan_summary


def _app(name: str, image: str = "nginx:1.25", replicas: int = 1) -> Desired:
    state = {
        "namespace": "shop",
        "description": "",
        "manifests": f"kind: Deployment\nimage: {image}\n",
        "placement": {"replicas": replicas},
        "overrides": [],
        "rollout": {},
    }
    return Desired("Application", name, "apps.yaml", 1, state)


def test_new_changed_unchanged_and_removed_objects() -> None:
    # given: the repository owns web, api and an old policy; git has web (new image), api, db
    owned = {
        ("Application", "web"): _app("web").state,
        ("Application", "api"): _app("api").state,
        ("Policy", "old"): {"severity": "low"},
    }
    desired = [_app("api"), _app("db"), _app("web", image="nginx:1.26", replicas=3)]

    # when
    plan = make_plan(desired, owned, prune=True)

    # then
    assert [(c.action, c.kind, c.name) for c in plan] == [
        ("unchanged", "Application", "api"),
        ("create", "Application", "db"),
        ("change", "Application", "web"),
        ("prune", "Policy", "old"),
    ]
    web = plan[2]
    assert sorted(web.diff) == ["manifests", "placement"]
    assert web.diff["placement"] == {"old": {"replicas": 1}, "new": {"replicas": 3}}
    assert "-image: nginx:1.25\n+image: nginx:1.26\n" in web.diff["manifests"]["diff"]
    assert plan_summary(plan) == {
        "create": 1,
        "adopt": 0,
        "change": 1,
        "unchanged": 1,
        "prune": 1,
        "orphan": 0,
    }


def test_without_prune_removed_objects_are_orphaned_policies_before_applications() -> None:
    owned: dict[tuple[str, str], dict[str, Any]] = {("Application", "web"): {}, ("Policy", "p"): {}}

    plan = make_plan([], owned, prune=False)

    assert [(c.action, c.kind) for c in plan] == [("orphan", "Policy"), ("orphan", "Application")]


def test_field_diff_keeps_scalars_as_old_and_new() -> None:
    assert field_diff({"a": 1, "b": "x"}, {"a": 1, "b": "y", "c": True}) == {
        "b": {"old": "x", "new": "y"},
        "c": {"old": None, "new": True},
    }
