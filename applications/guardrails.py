"""A team's guardrails on what its applications may contain, so that an operator's
application cannot reach outside the team's share of a cluster: only namespaces matching
the team's `allowed_namespaces` (names or shell-style globs), and cluster-scoped objects
(ClusterRole, webhooks, CRDs, ...) only when the team's `allow_cluster_scoped` is on.

Checked when manifests are saved (the error names each offending object) and again on
the rendered objects at propagation, after overrides, which could move an object.

A custom kind's scope is known only to the cluster's discovery; here the built-in
cluster-scoped kinds and every kind named `Cluster...` (ClusterIssuer, ClusterPolicy,
ClusterSecretStore, ...) count as cluster-scoped.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from accounts.models import Team
from applications.manifests import CLUSTER_SCOPED


def is_cluster_scoped(kind: str) -> bool:
    return kind in CLUSTER_SCOPED or (kind.startswith("Cluster") and kind != "Cluster")


def namespace_allowed(team: Team, namespace: str) -> bool:
    return any(fnmatchcase(namespace, str(pattern)) for pattern in team.allowed_namespaces or [])


def _allowed_list(team: Team) -> str:
    return ", ".join(map(str, team.allowed_namespaces or [])) or "none"


def guardrail_errors(*, team: Team, namespace: str, objects: Iterable[Any]) -> list[str]:
    """Why `objects` (of an application deployed into `namespace`) break the team's
    guardrails; empty when they do not."""
    errors = []
    if not namespace_allowed(team, namespace):
        errors.append(
            f"Namespace {namespace!r} is not allowed for team {team.name} "
            f"(allowed: {_allowed_list(team)})."
        )
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        kind = str(obj.get("kind", ""))
        raw = obj.get("metadata")
        metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = str(metadata.get("name", ""))
        if kind == "Namespace" and name == namespace:
            continue  # the application's own namespace, checked above
        if is_cluster_scoped(kind):
            if not team.allow_cluster_scoped:
                errors.append(
                    f"{kind} {name!r} is cluster-scoped, and team {team.name} does not allow "
                    "cluster-scoped kinds."
                )
            elif kind == "Namespace" and not namespace_allowed(team, name):
                errors.append(
                    f"Namespace {name!r} is not allowed for team {team.name} "
                    f"(allowed: {_allowed_list(team)})."
                )
            continue
        target = str(metadata.get("namespace") or namespace)
        if not namespace_allowed(team, target):
            errors.append(
                f"{kind} {name!r} is in namespace {target!r}, which team {team.name} does not "
                f"allow (allowed: {_allowed_list(team)})."
            )
    return errors
