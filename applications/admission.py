"""Checks run on an application's rendered objects before Keelson applies them to a cluster
(or hands them to a pull cluster's agent): the place where Keelson controls the write, as
an admission webhook would in the cluster.

Applications sit below the apps that have rules about objects (policies), so they register
a checker here from their AppConfig.ready() instead of being imported:
`register("policies", checker)`; `run(cluster, objects)` asks every registered checker and
returns every refusal. A checker that fails is a refusal too (fail closed, as a
ValidatingAdmissionPolicy's default `failurePolicy: Fail`): an enforced rule is never
skipped because its check broke.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clusters.models import Cluster

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """One reason an object may not be written: which check, which object, why."""

    source: str  # e.g. "policy ops-image-tags, rule no-latest"
    kind: str
    namespace: str
    name: str
    message: str

    def __str__(self) -> str:
        if not self.kind:
            return f"{self.source}: {self.message}"
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}: {self.message} ({self.source})"

    def as_json(self) -> dict[str, str]:
        return {
            "source": self.source,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "message": self.message,
        }


Checker = Callable[[Cluster, list[dict[str, Any]]], list[Refusal]]
_checkers: dict[str, Checker] = {}


def register(name: str, checker: Checker) -> None:
    """Add (or replace: ready() may run twice) the checker called `name`."""
    _checkers[name] = checker


def unregister(name: str) -> None:
    _checkers.pop(name, None)


def registered() -> list[str]:
    return sorted(_checkers)


def run(cluster: Cluster, objects: list[dict[str, Any]]) -> list[Refusal]:
    """Every refusal of every registered checker for writing `objects` to `cluster`."""
    refusals: list[Refusal] = []
    for name in sorted(_checkers):
        try:
            refusals += _checkers[name](cluster, objects)
        except Exception as error:
            logger.exception("pre-apply check %s failed on cluster %s", name, cluster.name)
            refusals.append(
                Refusal(name, "", "", "", f"the check could not run ({type(error).__name__})")
            )
    return refusals


def concerning(refusals: list[Refusal], objects: list[dict[str, Any]]) -> list[Refusal]:
    """The refusals about `objects` (by kind, namespace and name), and every refusal that
    is about no object (a check that could not run)."""
    keys = {
        (
            str(o.get("kind", "")),
            str((o.get("metadata") or {}).get("namespace") or ""),
            str((o.get("metadata") or {}).get("name") or ""),
        )
        for o in objects
    }
    return [r for r in refusals if not r.kind or (r.kind, r.namespace, r.name) in keys]


def summary(refusals: list[Refusal], *, limit: int = 10) -> str:
    """The refusals as one line for an operation log or a work's message."""
    text = "; ".join(str(r) for r in refusals[:limit])
    if len(refusals) > limit:
        text += f"; and {len(refusals) - limit} more"
    return text
