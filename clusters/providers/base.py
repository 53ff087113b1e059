"""The provider interface, cluster specs and the context a provider action runs in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from django.core.exceptions import ValidationError

from clusters.labels import validate_labels
from clusters.models import Cluster
from clusters.providers.catalog import INSTANCE_TYPES

_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_VERSION = re.compile(r"^v?1\.\d{1,2}(\.\d{1,3})?$")
# A node image's name as providers show it ("ubuntu-2204-v3", "al2023-1.29.3"), not a URL.
_IMAGE = re.compile(r"^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$")
MAX_NODES_PER_POOL = 1000
# The version skew policy: a kubelet may be up to two minor versions older than the API
# server, never newer.
KUBELET_MAX_MINORS_BEHIND = 2


@dataclass(frozen=True)
class NodePool:
    """`image` is the node image ("" for the provider's default); `version` the kubelet's
    Kubernetes version ("" for the cluster's)."""

    name: str
    instance_type: str
    count: int
    labels: dict[str, str] = field(default_factory=dict)
    image: str = ""
    version: str = ""

    def kubelet_version(self, cluster_version: str) -> str:
        return self.version or cluster_version

    def runs(self, cluster_version: str) -> dict[str, str]:
        """What the pool's nodes run: equal for two pools whose nodes are alike."""
        return {
            "instance_type": self.instance_type,
            "image": self.image or "default",
            "version": self.kubelet_version(cluster_version),
        }

    def describe(self, cluster_version: str) -> str:
        """Like "m5.large, image ubuntu-2204-v3, kubelet v1.20.2"."""
        runs = self.runs(cluster_version)
        return f"{runs['instance_type']}, image {runs['image']}, kubelet {runs['version']}"


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
        version = version if version.startswith("v") else f"v{version}"
        for pool in pools:
            _check_skew(pool, version)
        return cls(
            provider=str(data.get("provider", "")),
            region=str(data.get("region", ""))[:64],
            kubernetes_version=version,
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
        pools = tuple(replace(p, count=count) if p.name == name else p for p in self.node_pools)
        return ClusterSpec(self.provider, self.region, self.kubernetes_version, pools, self.params)

    def with_pool(self, name: str, **changes: str) -> ClusterSpec:
        """The spec with pool `name`'s image, instance_type and/or version changed,
        validated as any spec (ValidationError names the field)."""
        self.pool(name)
        data = self.as_json()
        for raw in data["node_pools"]:
            if raw["name"] == name:
                raw.update(changes)
        return ClusterSpec.from_json(data)

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
    try:
        image = clean_image(raw.get("image"))
        version = clean_pool_version(raw.get("version"))
    except ValueError as error:
        raise ValidationError({"node_pools": f"Node pool {name}: {error}"}) from None
    return NodePool(
        name=name,
        instance_type=instance_type,
        count=count,
        labels=labels,
        image=image,
        version=version,
    )


def clean_image(value: Any) -> str:
    """A node image name, or "" for the provider's default; ValueError says what is wrong."""
    image = str(value or "")
    if image and not _IMAGE.match(image):
        raise ValueError(
            f"image {image!r} must be a node image name (lowercase letters, digits, '-', "
            "'.', '_'; at most 63 characters)."
        )
    return image


def clean_pool_version(value: Any) -> str:
    """A kubelet version with its leading v, or "" for the cluster's."""
    version = str(value or "")
    if version and not _VERSION.match(version):
        raise ValueError(f"version {version!r} is not a Kubernetes version like 1.29.4.")
    return version if not version or version.startswith("v") else f"v{version}"


def _minor(version: str) -> int:
    return int(version.lstrip("v").split(".")[1])


def _check_skew(pool: NodePool, cluster_version: str) -> None:
    """A pool pinned to its own version stays within the kubelet version skew policy."""
    if not pool.version:
        return
    behind = _minor(cluster_version) - _minor(pool.version)
    if not 0 <= behind <= KUBELET_MAX_MINORS_BEHIND:
        raise ValidationError(
            {
                "node_pools": f"Node pool {pool.name}: kubelet {pool.version} with control "
                f"plane {cluster_version}: a kubelet may be up to {KUBELET_MAX_MINORS_BEHIND} "
                "minor versions older than the control plane, never newer."
            }
        )


@dataclass(frozen=True)
class Capabilities:
    provision: bool = True
    scale: bool = True
    upgrade: bool = True
    delete: bool = True
    versions: tuple[str, ...] = ()
    unavailable_reason: str = ""
    # Rolling replacement of a pool's nodes (new image, instance type or kubelet version)
    # driven by Keelson: the provider implements `PoolNodes`.
    update_pool: bool = False
    update_pool_reason: str = ""


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


@runtime_checkable
class PoolNodes(Protocol):
    """What a provider with `Capabilities.update_pool` offers: quick, idempotent steps on
    single nodes (Keelson itself cordons, drains and sequences them). None of them waits."""

    def pool_nodes(self, cluster: Cluster, pool: str) -> list[str]:
        """The names of the nodes the provider runs for `pool` now, in order."""

    def pool_node_name(self, cluster: Cluster, spec: ClusterSpec, pool: str, index: int) -> str:
        """The name node `index` of `pool` has under `spec` (a new image, type or version
        gives new names, so replacements can run beside the nodes they replace)."""

    def pool_node_add(self, cluster: Cluster, spec: ClusterSpec, pool: str, name: str) -> None:
        """Start a node of `pool` as `spec` describes it, named `name` (nothing if it runs)."""

    def pool_node_remove(self, cluster: Cluster, name: str) -> None:
        """Stop and deregister node `name` (nothing if it is gone)."""
