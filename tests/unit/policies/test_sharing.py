"""Verdicts shared across rules and clusters (cel.Verdicts, engine.share) never change a
judgement: every bundled and benchmark policy over the simulator's clusters, judged with
sharing, cluster after cluster, gives exactly what each cluster judged alone gives."""

from __future__ import annotations

from typing import Any

from benchmarks.simulator import PROFILES, Variant, cluster_objects
from benchmarks.sweep import generated_specs
from policies import cel
from policies.engine import Judgement, Snapshot, judge, share, subject_key
from policies.library import library
from policies.objects import group_of
from policies.services.policies import build_rules

RULES = [build_rules(p["rules"]) for p in library()] + [
    build_rules(spec.rules) for spec in generated_specs(40)
]
FACTS = {
    "name": "c",
    "labels": {"env": "prod"},
    "provider": "aws",
    "region": "eu",
    "environment": "prod",
    "version": {"major": 1, "minor": 29, "gitVersion": "v1.29.4"},
    "nodeCount": 3,
    "nodesReady": 3,
    "capacity": {"cpuMillis": 4000, "memoryBytes": 2**33, "pods": 110},
    "allocatable": {"cpuMillis": 3800, "memoryBytes": 2**33, "pods": 110},
}


def snapshot(index: int, sharing: Any) -> Snapshot:
    """Cluster `index` of the simulator as the evaluation service reads it."""
    objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
    variant = Variant.of(index)
    for path, answer in cluster_objects(index % PROFILES, index % 5 == 0, variant).items():
        if not isinstance(answer, dict) or "items" not in answer:
            continue
        parts = path.strip("/").split("/")
        group = "" if parts[0] == "api" else group_of("/".join(parts[1:3]))
        kind = str(answer.get("kind", "")).removesuffix("List")
        objects.setdefault((group, kind), []).extend(answer["items"])
    namespaced = dict.fromkeys(objects, True)
    return Snapshot(objects, namespaced, {**FACTS, "name": f"c{index}"}, sharing=sharing)


def _fields(expression: str) -> set[str]:
    shape = cel.reads(expression, "object")
    return set(shape.fields) if shape is not None else set()


def outcome(judgement: Judgement) -> Any:
    return (judgement.checked, judgement.violations, judgement.errors)


def test_rules_reading_the_same_objects_share_one_key_without_metadata() -> None:
    sharing = share(rule for rules in RULES for rule in rules)
    key = next(key for key in sharing if '"Pod"' in key[0] and key[1])
    union, covered = sharing[key]
    assert "metadata" not in union.fields and len(covered) > 5
    # while the Pod rules reading annotations keep their own keys
    readers = [
        r.expression
        for rules in RULES
        for r in rules
        if subject_key(r) == key and "metadata" in _fields(r.expression)
    ]
    assert readers and not set(readers) & covered


def test_sharing_changes_no_judgement_across_clusters() -> None:
    sharing = share(rule for rules in RULES for rule in rules)
    shared = cel.Verdicts()
    for index in range(0, 3 * PROFILES, 3):
        alone_snapshot = snapshot(index, {})
        shared_snapshot = snapshot(index, sharing)
        alone_snapshot._memo = cel.Memo(cel.Verdicts())  # this cluster's own verdicts only
        shared_snapshot._memo = cel.Memo(shared)  # every cluster's so far
        for rules in RULES:
            assert outcome(judge(rules, shared_snapshot)) == outcome(
                judge(rules, alone_snapshot)
            ), (index, rules[0].name)
    assert len(shared) > 0
