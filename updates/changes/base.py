"""The interface every change kind implements.

The engine (updates/engine.py) never waits: it calls `start` once per cluster, then
`poll` at each check until the change is done or failed, and `revert` (then `poll`
again) when a gate fails and the kind is reversible. Each call must return in well under
a second: a change that takes long (a node pool's rolling replacement, a control-plane
upgrade) starts a child Operation and `poll` reads its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from accounts.models import Team
    from clusters.models import Cluster


@dataclass(frozen=True)
class ClusterPlan:
    """What the change does to one cluster, shown on the preview. A non-empty
    `skip_reason` means the cluster is listed but not changed (a provider that cannot
    upgrade, a cluster already on the target)."""

    cluster_id: int
    cluster_name: str
    from_value: str = ""
    to_value: str = ""
    skip_reason: str = ""
    estimate_seconds: int = 60
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """Where a started change (or revert) stands."""

    state: Literal["running", "done", "failed"]
    message: str = ""


class Change(Protocol):
    kind: ClassVar[str]
    # Whether `revert` can undo it (a Kubernetes version cannot go back).
    reversible: ClassVar[bool]

    def __init__(self, *, team: Team, params: dict[str, Any]) -> None:
        """Validate `params` for `team`; raise ValidationError naming the field."""

    def params(self) -> dict[str, Any]:
        """The normalized parameters, stored on the run."""

    def describe(self) -> str:
        """One line for pages and logs: "Kubernetes v1.29.4", "policy no-latest → enforce"."""

    def plan(self, clusters: Sequence[Cluster]) -> list[ClusterPlan]:
        """One plan per cluster, in the given order (batch reads: used by previews)."""

    def start(self, cluster: Cluster, *, actor: AbstractBaseUser | None) -> dict[str, Any]:
        """Begin the change on one cluster; returns the state `poll` and `revert` get."""

    def poll(self, cluster: Cluster, state: dict[str, Any]) -> Step:
        """Where the change (or its revert) stands; never waits."""

    def revert(
        self, cluster: Cluster, state: dict[str, Any], *, actor: AbstractBaseUser | None
    ) -> dict[str, Any]:
        """Begin undoing the change; returns the new state (then `poll` again)."""

    def finish(self, clusters: Sequence[Cluster], *, actor: AbstractBaseUser | None) -> None:
        """Called once when every stage succeeded (a policy promoted everywhere becomes
        `enforce` itself)."""

    def impact(self, clusters: Sequence[Cluster]) -> dict[str, Any]:
        """Preview extras by cluster name (a policy's objects that would be denied)."""
