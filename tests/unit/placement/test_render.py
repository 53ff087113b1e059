"""Rendering an application for a cluster: namespace, replica share, overrides in order,
owner labels; override and rollout specs rejected with the rule and field at fault."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from applications.overrides import overrides_spec
from applications.render import RenderError, Target, render
from applications.rollout import rollout_steps
from applications.spec import rollout_spec
from kube.ownership import APP_LABEL

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25"}
      - {name: sidecar, image: "envoy:1.30"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


def _render(target: Target, overrides: list[Any] | None = None) -> list[dict[str, Any]]:
    return render(
        application="shop",
        namespace="shop",
        version=4,
        manifests=MANIFESTS,
        target=target,
        overrides=overrides_spec(overrides or []),
    )


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment")


def test_render_fills_namespace_labels_and_replica_share() -> None:
    objects = _render(Target("eu-1", {"env": "prod"}, replicas=2))
    assert [o["kind"] for o in objects] == ["Namespace", "Deployment", "Service"]
    namespace, deployment, service = objects
    assert APP_LABEL not in namespace["metadata"]["labels"]  # shared: never pruned
    for obj in (deployment, service):
        assert obj["metadata"]["namespace"] == "shop"
        assert obj["metadata"]["labels"][APP_LABEL] == "shop"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "keelson"
        assert obj["metadata"]["annotations"]["keelson.io/application-version"] == "4"
    assert deployment["spec"]["replicas"] == 2
    kept = _deployment(_render(Target("eu-1", {}, replicas=None)))
    assert kept["spec"]["replicas"] == 3


def test_overrides_target_by_name_and_selector_and_apply_in_order() -> None:
    overrides = [
        {"selector": "env=prod", "image": "nginx:1.26", "labels": {"tier": "gold"}},
        {"clusters": ["eu-1"], "images": {"sidecar": "envoy:1.31"}, "replicas": 5},
        {
            "clusters": ["eu-1"],
            "patches": [
                {"op": "add", "path": "/spec/minReadySeconds", "value": 10, "kind": "Deployment"},
                {"op": "replace", "path": "/spec/ports/0/port", "value": 8080, "kind": "Service"},
            ],
        },
    ]
    eu1 = _render(Target("eu-1", {"env": "prod"}, replicas=2), overrides)
    deployment = _deployment(eu1)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["nginx:1.26", "envoy:1.31"]
    assert deployment["spec"]["replicas"] == 5  # the override wins over the share
    assert deployment["spec"]["minReadySeconds"] == 10
    assert deployment["metadata"]["labels"]["tier"] == "gold"
    assert eu1[2]["spec"]["ports"][0]["port"] == 8080
    staging = _deployment(_render(Target("st-1", {"env": "staging"}, replicas=2), overrides))
    assert staging["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert "tier" not in staging["metadata"]["labels"]


def test_a_patch_on_a_missing_path_is_a_render_error() -> None:
    overrides = [{"patches": [{"op": "replace", "path": "/spec/nothing/here", "value": 1}]}]
    with pytest.raises(RenderError, match="/spec/nothing/here"):
        _render(Target("eu-1", {}, replicas=None), overrides)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"image": 3}, "Override 1: image must be a string"),
        ({"selector": "env in (prod"}, "Override 1: selector"),
        ({"patches": [{"op": "move", "path": "/a"}]}, "patch 1: op must be one of"),
        ({"patches": [{"op": "add", "path": "spec"}]}, "JSON pointer"),
        ({"replicas": -1}, "replicas must be 0 or more"),
        ({"labels": {"bad key!": "x"}}, "labels"),
        ({"colour": "red"}, "unknown field(s) colour"),
    ],
)
def test_bad_overrides_name_the_rule_and_field(rule: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        overrides_spec([rule])
    assert any(fragment in message for message in raised.value.message_dict["overrides"])


def test_rollout_spec_and_steps() -> None:
    clusters = ["a", "b", "c", "d", "e"]
    assert rollout_steps(rollout_spec({}), clusters) == [clusters]
    rolling = rollout_spec({"strategy": "rolling", "max_concurrency": 2})
    assert rollout_steps(rolling, clusters) == [["a", "b"], ["c", "d"], ["e"]]
    canary = rollout_spec({"strategy": "canary", "canary_clusters": 1, "max_concurrency": 3})
    assert rollout_steps(canary, clusters) == [["a"], ["b", "c", "d"], ["e"]]
    with pytest.raises(ValidationError) as raised:
        rollout_spec({"strategy": "blue-green", "max_concurrency": 0, "speed": 1})
    assert set(raised.value.message_dict) == {"strategy", "max_concurrency", "rollout"}
