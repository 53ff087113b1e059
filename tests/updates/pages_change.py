"""A change kind for the page tests that need the engine (registered in place of
kubernetes_version by the test): every cluster goes from "old" to "new", and a change is
done at its first poll. The real kinds are tested in their own modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from updates.changes.base import ClusterPlan, Step


class InstantChange:
    kind: ClassVar[str] = "kubernetes_version"
    reversible: ClassVar[bool] = True

    def __init__(self, *, team: Any, params: dict[str, Any]) -> None:
        self.team, self._params = team, dict(params)

    def params(self) -> dict[str, Any]:
        return self._params

    def describe(self) -> str:
        return f"test change to {self._params.get('version', 'new')}"

    def plan(self, clusters: Sequence[Any]) -> list[ClusterPlan]:
        return [ClusterPlan(c.pk, c.name, "old", "new", estimate_seconds=60) for c in clusters]

    def start(self, cluster: Any, *, actor: Any) -> dict[str, Any]:
        return {"started": True}

    def poll(self, cluster: Any, state: dict[str, Any]) -> Step:
        return Step("done")

    def revert(self, cluster: Any, state: dict[str, Any], *, actor: Any) -> dict[str, Any]:
        return {"reverted": True}

    def finish(self, clusters: Sequence[Any], *, actor: Any) -> None:
        return None

    def impact(self, clusters: Sequence[Any]) -> dict[str, Any]:
        return {
            c.name: {"denied": 1, "objects": [{"kind": "Deployment", "name": f"web-{c.name}"}]}
            for c in clusters
        }
