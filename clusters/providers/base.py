"""The provider interface, cluster specs and the context a provider action runs in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from django.core.exceptions import ValidationError

from clusters.labels import validate_labels
from clusters.models import Cluster
from clusters.providers.catalog import INSTANCE_TYPES

_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_VERSION = re.compile(r"^v?1\.\d{1,2}(\.\d{1,3})?$")
MAX_NODES_PER_POOL = 1000


@dataclass(frozen=True)
class NodePool:
    name: str
    instance_type: str
    count: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterSpec:
    """What to build. `params` holds provider-specific settings (e.g. Cluster API's
    management cluster and infrastructure)."""

    provider: str
    region: str
    kubernetes_version: str
    node_pools: tuple[NodePool, ...]
    params: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["node_pools"] = [asdict(pool) for pool in self.node_pools]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterSpec:
        """Parse and validate untrusted input, naming the field at fault."""
        if not isinstance(data, dict):
            raise ValidationError("The cluster spec must be an object.")
        pools_raw = data.get("node_pools")
        if not isinstance(pools_raw, list) or not pools_raw:
            raise ValidationError({"node_pools": "Give at least one node pool."})
        pools = []
        for position, raw in enumerate(pools_raw, start=1):
            if not isinstance(raw, dict):
                raise ValidationError({"node_pools": f"Node pool #{position} must be an object."})
            pools.append(_pool(raw, position))
        names = [pool.name for pool in pools]
        if len(set(names)) != len(names):
            raise ValidationError({"node_pools": "Node pool names must be unique."})
        version = str(data.get("kubernetes_version", ""))
        if not _VERSION.match(version):
            raise ValidationError(
                {"kubernetes_version": f"{version!r} is not a Kubernetes version like 1.29.4."}
            )
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise ValidationError({"params": "Provider parameters must be an object."})
        return cls(
            provider=str(data.get("provider", "")),
            region=str(data.get("region", ""))[:64],
            kubernetes_version=version if version.startswith("v") else f"v{version}",
            node_pools=tuple(pools),
            params=params,
        )

    def pool(self, name: str) -> NodePool:
        for pool in self.node_pools:
            if pool.name == name:
                return pool
        raise ValidationError({"pool": f"No node pool named {name!r}."})

    def with_pool_count(self, name: str, count: int) -> ClusterSpec:
        self.pool(name)
        pools = tuple(
            NodePool(p.name, p.instance_type, count, p.labels) if p.name == name else p
            for p in self.node_pools
        )
        return ClusterSpec(self.provider, self.region, self.kubernetes_version, pools, self.params)

    def with_version(self, version: str) -> ClusterSpec:
        data = self.as_json() | {"kubernetes_version": version}
        return ClusterSpec.from_json(data)

    @property
    def node_count(self) -> int:
        return sum(pool.count for pool in self.node_pools)


def _pool(raw: dict[str, Any], position: int) -> NodePool:
    name = str(raw.get("name", ""))
    if not _POOL_NAME.match(name):
        raise ValidationError(
            {"node_pools": f"Node pool #{position}: name {name!r} must be a short DNS label."}
        )
    instance_type = str(raw.get("instance_type", ""))
    if instance_type not in INSTANCE_TYPES:
        raise ValidationError(
            {
                "node_pools": f"Node pool {name}: unknown instance type {instance_type!r} "
                f"(known: {', '.join(sorted(INSTANCE_TYPES))})."
            }
        )
    count = raw.get("count")
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not 0 <= count <= MAX_NODES_PER_POOL
    ):
        raise ValidationError(
            {"node_pools": f"Node pool {name}: count must be 0 to {MAX_NODES_PER_POOL}."}
        )
    labels = raw.get("labels") or {}
    validate_labels(labels)
    return NodePool(name=name, instance_type=instance_type, count=count, labels=labels)


@dataclass(frozen=True)
class Capabilities:
    provision: bool = True
    scale: bool = True
    upgrade: bool = True
    delete: bool = True
    versions: tuple[str, ...] = ()
    unavailable_reason: str = ""


class OperationCanceled(Exception):
    """The operation was canceled; the provider stops at a safe point."""


@dataclass
class ActionContext:
    """What a provider action may do besides its work: report progress, log, and check
    for cancellation between steps."""

    cluster: Cluster
    report: Callable[[int | None, str | None, str | None], None]
    canceled: Callable[[], bool]

    def progress(self, percent: int, message: str) -> None:
        self.report(percent, message, message)

    def log(self, line: str) -> None:
        self.report(None, None, line)

    def checkpoint(self) -> None:
        if self.canceled():
            raise OperationCanceled("Canceled")


class Provider(Protocol):
    name: str

    def capabilities(self) -> Capabilities: ...

    def validate(self, spec: ClusterSpec) -> None: ...

    def provision(self, ctx: ActionContext, spec: ClusterSpec) -> None: ...

    def scale(self, ctx: ActionContext, spec: ClusterSpec) -> None: ...

    def upgrade(self, ctx: ActionContext, spec: ClusterSpec) -> None: ...

    def delete(self, ctx: ActionContext, spec: ClusterSpec) -> None: ...
