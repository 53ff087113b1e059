"""Node pools' image and kubelet version: validation, normalization, round trip."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clusters.providers.base import ClusterSpec
from clusters.services.provisioning import pool_changes


def _spec(cluster_version: str = "1.29.4", **pool: Any) -> ClusterSpec:
    return ClusterSpec.from_json(
        {
            "provider": "local",
            "region": "lab",
            "kubernetes_version": cluster_version,
            "node_pools": [{"name": "workers", "instance_type": "m5.large", "count": 3, **pool}],
        }
    )


def test_image_and_version_are_kept_and_the_version_gets_its_v() -> None:
    pool = _spec(image="ubuntu-2204-v3", version="1.28.2").pool("workers")
    assert (pool.image, pool.version) == ("ubuntu-2204-v3", "v1.28.2")
    assert pool.kubelet_version("v1.29.4") == "v1.28.2"


def test_a_spec_stored_before_the_fields_existed_still_parses() -> None:
    pool = _spec().pool("workers")
    assert (pool.image, pool.version) == ("", "")
    # an empty version means the cluster's
    assert pool.kubelet_version("v1.29.4") == "v1.29.4"


def test_as_json_and_from_json_round_trip() -> None:
    spec = _spec(image="al2023.1-x", version="v1.27.9")
    data = spec.as_json()
    assert data["node_pools"][0]["image"] == "al2023.1-x"
    assert data["node_pools"][0]["version"] == "v1.27.9"
    assert ClusterSpec.from_json(data) == spec


@pytest.mark.parametrize(
    ("pool", "fragment"),
    [
        ({"image": "Ubuntu 22.04"}, "Node pool workers: image 'Ubuntu 22.04' must be a node image"),
        ({"image": "-leading-dash"}, "image '-leading-dash'"),
        ({"image": "x" * 64}, "at most 63 characters"),
        ({"version": "2.0.1"}, "version '2.0.1' is not a Kubernetes version"),
        ({"version": "latest"}, "version 'latest'"),
        # the version skew policy: a kubelet is never newer than the control plane ...
        ({"version": "1.30.0"}, "kubelet v1.30.0 with control plane v1.29.4"),
        # ... and at most two minor versions older
        ({"version": "1.26.15"}, "up to 2 minor versions older"),
    ],
)
def test_invalid_pools_are_refused_naming_the_pool(pool: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _spec(**pool)
    assert "node_pools" in raised.value.message_dict
    assert fragment in raised.value.message_dict["node_pools"][0]


def test_two_minor_versions_behind_is_allowed() -> None:
    assert _spec("1.29.4", version="1.27.0").pool("workers").version == "v1.27.0"


def test_with_pool_changes_one_pool_and_validates() -> None:
    spec = _spec()
    changed = spec.with_pool("workers", image="ubuntu-2204-v4", instance_type="m5.xlarge")
    pool = changed.pool("workers")
    assert (pool.image, pool.instance_type, pool.count) == ("ubuntu-2204-v4", "m5.xlarge", 3)
    assert spec.pool("workers").image == ""  # specs are values
    with pytest.raises(ValidationError, match="No node pool named 'gpu'"):
        spec.with_pool("gpu", image="x")


def test_the_same_nodes_run_whatever_spells_the_version() -> None:
    # "" (the cluster's) and the cluster's version itself run the same kubelet
    implicit = _spec("1.29.4").pool("workers")
    explicit = _spec("1.29.4", version="v1.29.4").pool("workers")
    assert implicit.runs("v1.29.4") == explicit.runs("v1.29.4")


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"image": "Bad Image"}, "image"),
        ({"version": "one"}, "version"),
        ({"instance_type": "huge"}, "instance_type"),
    ],
)
def test_pool_changes_name_the_field_at_fault(given: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        pool_changes(given.get("image"), given.get("instance_type"), given.get("version"))
    assert list(raised.value.message_dict) == [field]


def test_pool_changes_need_something_to_change() -> None:
    with pytest.raises(ValidationError, match="Give a new image, instance type or version"):
        pool_changes(None, None, None)
    # "" is a change: back to the default image, the cluster's version
    assert pool_changes("", None, "") == {"image": "", "version": ""}
    assert pool_changes(None, None, "1.28.1") == {"version": "v1.28.1"}


def test_the_node_pool_change_validates_its_parameters() -> None:
    from updates.changes.node_pool import NodePoolChange

    team: Any = None  # validation needs no team
    change = NodePoolChange(team=team, params={"pool": "workers", "version": "1.28.3", "image": ""})
    assert change.params() == {"pool": "workers", "image": "", "version": "v1.28.3"}
    assert change.describe() == "node pool workers → image (default), version v1.28.3"
    assert NodePoolChange.kind == "node_pool" and NodePoolChange.reversible
    cases: list[tuple[dict[str, Any], str]] = [
        ({"pool": "Workers!", "image": "x"}, "pool"),
        ({"pool": "workers", "image": "x", "count": 3}, "change_params"),
        ({"pool": "workers", "instance_type": "huge"}, "instance_type"),
    ]
    for params, field in cases:
        with pytest.raises(ValidationError) as raised:
            NodePoolChange(team=team, params=params)
        assert list(raised.value.message_dict) == [field]
    with pytest.raises(ValidationError, match="Give a new image, instance type or version"):
        NodePoolChange(team=team, params={"pool": "workers"})
