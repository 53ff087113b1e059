"""For a policy a commit creates or changes: the clusters and objects that would become
non-compliant. The declared rules are judged by the policy engine against what each
targeted push-mode cluster holds now, read-only (a list per kind the rules need, as an
evaluation reads); nothing is stored. Pull-mode clusters are evaluated by their agent
and are listed as not previewed."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import Team
from applications.models import ClusterWork
from clusters.choices import ClusterMode
from clusters.labels import LabelSelector
from clusters.models import Cluster, ClusterSet
from clusters.services.credentials import cluster_api_clients
from clusters.services.lifecycle import cluster_set_clusters
from gitops.documents import Desired
from kube.client import ClusterConnectError
from policies.choices import ResultStatus
from policies.engine import Snapshot, judge, kinds_needed, share
from policies.models import Policy
from policies.selectors import latest_evaluations
from policies.services.evaluation.reading import cluster_facts, cluster_reader
from policies.services.policies import build_rules

logger = logging.getLogger(__name__)
# A preview reads at most this many clusters and lists this many objects per cluster.
MAX_CLUSTERS = 20
MAX_OBJECTS = 10


def targeted(team: Team, state: dict[str, Any]) -> list[Cluster]:
    """The clusters the declared policy would target (policies' `policy_clusters`, for a
    spec that is not saved)."""
    query = Cluster.objects.filter(team=team)
    if state.get("placement"):
        query = query.filter(
            pk__in=ClusterWork.objects.filter(
                application__team=team, application__name=state["placement"]
            ).values("cluster_id")
        )
    if state.get("cluster_sets"):
        members = Cluster.objects.none()
        for cluster_set in ClusterSet.objects.filter(team=team, name__in=state["cluster_sets"]):
            members = members | cluster_set_clusters(cluster_set=cluster_set)
        query = query.filter(pk__in=members.values("pk"))
    if state.get("cluster_selector"):
        query = query.filter(LabelSelector.parse(state["cluster_selector"]).to_q())
    return list(query.order_by("name"))


def _already_noncompliant(team: Team, name: str) -> set[str]:
    current = Policy.objects.filter(team=team, name=name)
    return {
        row.cluster.name
        for row in latest_evaluations(current).select_related("cluster")
        if row.cluster is not None and row.status == ResultStatus.NONCOMPLIANT
    }


def policy_impact(team: Team, name: str, item: Desired) -> dict[str, Any]:
    """{"clusters": [{"cluster", "violations", "objects", "new"}], "not_previewed":
    [{"cluster", "reason"}]}: per targeted cluster that would be non-compliant, how many
    violations, the first objects, and whether it is newly non-compliant."""
    state = item.state
    if not state.get("enabled", True):
        return {"clusters": [], "not_previewed": [], "note": "disabled"}
    try:
        rules = build_rules(state.get("rules") or [])
    except ValidationError:
        return {"clusters": [], "not_previewed": [], "note": "rules from a bundled standard"}
    kinds = list(dict.fromkeys(k for rule in rules for k in kinds_needed(rule)))
    clusters = targeted(team, state)
    skipped = [
        {"cluster": c.name, "reason": "pull mode: its agent evaluates it"}
        for c in clusters
        if c.mode != ClusterMode.PUSH
    ]
    push = [c for c in clusters if c.mode == ClusterMode.PUSH]
    skipped += [{"cluster": c.name, "reason": "not read"} for c in push[MAX_CLUSTERS:]]
    readable, unbuilt = cluster_api_clients(clusters=push[:MAX_CLUSTERS])
    skipped += [{"cluster": c.name, "reason": error.message} for c, error in unbuilt]
    before = _already_noncompliant(team, item.name)
    found = []
    for cluster, api in readable:
        try:
            reader = cluster_reader(cluster, api)
            objects, namespaced, _ = reader.list_kinds(kinds)
            facts = cluster_facts(cluster, reader.version())
            snapshot = Snapshot(objects, namespaced, facts, sharing=share(rules))
            judgement = judge(rules, snapshot)
        except ClusterConnectError as error:
            skipped.append({"cluster": cluster.name, "reason": error.message})
            continue
        except Exception:  # one cluster's failure never stops the preview
            logger.exception("policy preview on cluster %s failed", cluster.name)
            skipped.append({"cluster": cluster.name, "reason": "could not be judged"})
            continue
        if judgement.violations:
            found.append(
                {
                    "cluster": cluster.name,
                    "violations": len(judgement.violations),
                    "objects": [
                        f"{v['kind']} {v['namespace'] + '/' if v['namespace'] else ''}{v['name']}"
                        for v in judgement.violations[:MAX_OBJECTS]
                    ],
                    "new": cluster.name not in before,
                }
            )
    return {"clusters": found, "not_previewed": sorted(skipped, key=lambda s: s["cluster"])}
