"""The placement scheduler (pure logic): predicates, scores, spread, replica division."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from applications.manifests import ManifestError, parse_manifests, requests_of
from applications.scheduler import Candidate, PerReplica, PlacementSpec, schedule, webster

GIB = D(2**30)


def cluster(name: str, **fields: Any) -> Candidate:
    base: dict[str, Any] = {
        "labels": {"env": "prod"},
        "provider": "aws",
        "region": "eu-west-1",
        "zone": "",
        "environment": "prod",
        "version": "v1.29.4",
        "status": "ready",
        "taints": [],
        "allocatable_cpu": D(16),
        "allocatable_memory": 64 * GIB,
        "requested_cpu": D(0),
        "requested_memory": D(0),
    }
    return Candidate(name=name, **{**base, **fields})


NEED = PerReplica(cpu=D("0.5"), memory=GIB)


def test_every_exclusion_names_its_predicate() -> None:
    candidates = [
        cluster("ok"),
        cluster("down", status="unreachable"),
        cluster("dev", labels={"env": "dev"}),
        cluster("gcp", provider="gcp"),
        cluster("gpu-only", taints=[{"key": "gpu", "value": "true", "effect": "NoSelect"}]),
        cluster("full", requested_cpu=D("15.8")),
    ]
    spec = PlacementSpec(selector="env=prod", fields={"provider": ["aws"]}, replicas=2)
    decision = schedule(spec, candidates, NEED)
    assert [c["cluster"] for c in decision.chosen] == ["ok"]
    assert {e["cluster"]: e["predicate"] for e in decision.excluded} == {
        "down": "Healthy",
        "dev": "LabelSelector",
        "full": "CapacityFits",
        "gcp": "FieldSelector",
        "gpu-only": "TaintToleration",
    }
    full = next(e for e in decision.excluded if e["cluster"] == "full")
    assert "needs 1.0 CPU" in full["reason"]
    tolerated = PlacementSpec(tolerations=[{"key": "gpu"}])
    assert "gpu-only" in [c["cluster"] for c in schedule(tolerated, candidates, NEED).chosen]


def test_scores_are_normalized_weighted_and_deterministic() -> None:
    candidates = [
        cluster("busy", requested_cpu=D(12), requested_memory=48 * GIB),
        cluster("idle"),
        cluster("half", requested_cpu=D(8), requested_memory=32 * GIB),
    ]
    spec = PlacementSpec(prioritizers={"least_allocated": 2}, number_of_clusters=2)
    decision = schedule(spec, candidates, NEED)
    assert [c["cluster"] for c in decision.chosen] == ["idle", "half"]
    assert decision.chosen[0]["scores"] == {"least_allocated": 100.0}
    assert decision.chosen[0]["score"] == 200.0  # weight 2 x 100
    assert decision.not_selected == [{"cluster": "busy", "reason": "enough clusters (2)"}]
    # a negative weight inverts the preference
    packed = schedule(
        PlacementSpec(prioritizers={"least_allocated": -1}, number_of_clusters=1), candidates, NEED
    )
    assert packed.chosen[0]["cluster"] == "busy"


def test_steady_keeps_current_clusters_and_prefer_no_select_is_avoided() -> None:
    candidates = [
        cluster("a"),
        cluster("b", current=True),
        cluster("c", taints=[{"key": "spot", "value": "", "effect": "PreferNoSelect"}]),
    ]
    spec = PlacementSpec(prioritizers={"steady": 3}, number_of_clusters=2)
    assert [c["cluster"] for c in schedule(spec, candidates, NEED).chosen] == ["b", "a"]


def test_cheapest_uses_prices_when_present() -> None:
    candidates = [
        cluster("pricey", cpu_price=D("0.05"), ram_price=D("0.006")),
        cluster("cheap", cpu_price=D("0.02"), ram_price=D("0.003")),
        cluster("unknown"),
    ]
    spec = PlacementSpec(prioritizers={"cheapest": 1}, number_of_clusters=1)
    decision = schedule(spec, candidates, NEED)
    assert decision.chosen[0]["cluster"] == "cheap"


def test_spread_at_most_per_region_and_at_least_distinct() -> None:
    candidates = [
        cluster("eu-1"),
        cluster("eu-2"),
        cluster("eu-3"),
        cluster("us-1", region="us-east-1"),
    ]
    spec = PlacementSpec(max_per={"region": 2}, min_distinct={"region": 3}, number_of_clusters=3)
    decision = schedule(spec, candidates, NEED)
    assert [c["cluster"] for c in decision.chosen] == ["eu-1", "eu-2", "us-1"]
    assert decision.not_selected[0]["reason"] == "spread: at most 2 per region (eu-west-1)"
    assert decision.warnings == [
        "spread: wanted at least 3 distinct regions, the feasible clusters give 2"
    ]


def test_webster_apportionment() -> None:
    # the textbook Sainte-Laguë example: 7 seats, votes 53000/24000/23000
    assert webster(7, {"a": D(53000), "b": D(24000), "c": D(23000)}) == {"a": 3, "b": 2, "c": 2}
    # ties go to the larger weight, then the name; seats always sum to the total
    assert webster(1, {"b": D(1), "a": D(1)}) == {"a": 1, "b": 0}
    seats = webster(10, {"x": D(1), "y": D(2), "z": D(3)})
    assert sum(seats.values()) == 10 and seats == {"x": 2, "y": 3, "z": 5}


def test_divided_replicas_sum_to_the_request() -> None:
    candidates = [
        cluster("big"),
        cluster("small", allocatable_cpu=D(4), allocatable_memory=16 * GIB),
    ]
    static = schedule(
        PlacementSpec(replicas=9, division="static", static_weights={"big": 2, "small": 1}),
        candidates,
        NEED,
    )
    assert {c["cluster"]: c["replicas"] for c in static.chosen} == {"big": 6, "small": 3}
    by_capacity = schedule(PlacementSpec(replicas=10, division="capacity"), candidates, NEED)
    replicas = {c["cluster"]: c["replicas"] for c in by_capacity.chosen}
    assert sum(replicas.values()) == 10 and replicas["big"] > replicas["small"]


def test_manifests_are_checked_per_document() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: web
        image: nginx
        resources: {requests: {cpu: 250m, memory: 128Mi}}
---
kind: Service
metadata: {name: web}
---
apiVersion: v1
kind: ConfigMap
metadata: {labels: {"bad key": x}}
"""
    with pytest.raises(ManifestError) as raised:
        parse_manifests(text)
    assert raised.value.errors == [
        "Document 2: apiVersion is missing",
        "Document 3: metadata.name is missing",
    ]
    objects = parse_manifests(text.split("---")[0])
    requests = requests_of(objects)
    assert (requests.cpu, requests.memory_bytes, requests.replicas) == (
        D("0.75"),
        3 * 128 * 2**20,
        3,
    )
    with pytest.raises(ManifestError, match="Not valid YAML at line 2"):
        parse_manifests("a: [\nb")
