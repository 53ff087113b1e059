"""Kubernetes versions for upgrade runs (pure): parsing, which clusters an upgrade skips and
why, how long one takes, and how a version's end of life reads on the preview."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError

from clusters.providers.base import Capabilities
from updates.changes.base import ClusterPlan

# The target, exactly as ClusterSpec accepts a version (clusters/providers/base.py).
_TARGET = re.compile(r"^v?1\.\d{1,2}(\.\d{1,3})?$")
# A current version may carry a vendor suffix as collected: v1.29.4-eks-1, v1.20.2+k3s1.
_ANY = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")

# The rule behind `estimate_seconds`: Cluster API rolls control-plane machines and then each
# node pool's machines one at a time (KubeadmControlPlane and MachineDeployment default to a
# surge of one): a control plane takes about 15 minutes, each worker node about 3 (a new
# machine joins and is Ready, the old one is drained and deleted).
CONTROL_PLANE_SECONDS = 15 * 60
PER_NODE_SECONDS = 3 * 60


@dataclass(frozen=True)
class KubeVersion:
    major: int
    minor: int
    patch: int | None = None  # "v1.28": a minor version, its newest patch for the provider

    def key(self, *, patch: bool = True) -> tuple[int, ...]:
        """For comparisons; without `patch` (a target like v1.28) any 1.28.x is on it."""
        return (self.major, self.minor, self.patch or 0) if patch else (self.major, self.minor)

    @property
    def minor_name(self) -> str:
        return f"v{self.major}.{self.minor}"

    def __str__(self) -> str:
        return self.minor_name + ("" if self.patch is None else f".{self.patch}")


def parse_version(text: str) -> KubeVersion | None:
    """`v1.29.4-eks-1` → 1.29.4; None when `text` holds no version."""
    found = _ANY.match((text or "").strip())
    if found is None:
        return None
    patch = int(found[3]) if found[3] is not None else None
    return KubeVersion(int(found[1]), int(found[2]), patch)


def target_version(value: Any) -> KubeVersion:
    """The `version` parameter, validated as a cluster spec's version (`1.29` or `1.29.4`,
    with or without the leading v)."""
    # A string only: the JSON number 1.30 would read as 1.3.
    text = value.strip() if isinstance(value, str) else ""
    version = parse_version(text) if _TARGET.match(text) else None
    if value is None:
        raise ValidationError({"version": "Give the target version, e.g. 1.29.4."})
    if version is None:
        raise ValidationError(
            {"version": f"{value!r} is not a Kubernetes version like 1.29.4 (or 1.29)."}
        )
    return version


def step_problem(current: KubeVersion, target: KubeVersion) -> str:
    """Why a cluster on `current` cannot be upgraded to `target`; empty when it can."""
    if current.major != target.major:
        return f"On {current}: upgrades stay within Kubernetes {target.major}.x."
    precise = target.patch is not None
    if current.key(patch=precise) == target.key(patch=precise):
        return f"Already on {current}."
    if current.key(patch=precise) > target.key(patch=precise):
        return f"On {current}, above the target {target}: Kubernetes versions do not go down."
    # The version skew policy (https://kubernetes.io/releases/version-skew-policy/, "Supported
    # component upgrade order") upgrades kube-apiserver from 1.{n-1} to 1.n only, and kubeadm
    # refuses to skip: "Skipping MINOR versions when upgrading is unsupported"
    # (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/). EKS,
    # GKE and AKS upgrade control planes one minor version at a time too.
    if target.minor > current.minor + 1:
        skipped = ", ".join(
            f"v{current.major}.{minor}" for minor in range(current.minor + 1, target.minor)
        )
        return (
            f"{current} → {target} would skip {skipped}: Kubernetes upgrades the control plane "
            "one minor version at a time."
        )
    return ""


def already_there(current: str, target: KubeVersion) -> bool:
    parsed = parse_version(current)
    precise = target.patch is not None
    return parsed is not None and parsed.key(patch=precise) == target.key(patch=precise)


@dataclass(frozen=True)
class UpgradeFacts:
    """What the plan reads of one cluster (in one batch for all clusters)."""

    cluster_id: int
    name: str
    provisioned: bool  # created by Keelson (a ClusterProvisioning row), not registered
    provider: str  # the provider that built it: "capi", "local"
    capabilities: Capabilities | None  # None: that provider is not installed here
    version: str  # the provisioning spec's, else the collected one
    nodes: int


def skip_reason(facts: UpgradeFacts, target: KubeVersion) -> str:
    """Why the upgrade leaves this cluster alone; empty when it upgrades it."""
    if not facts.provisioned:
        return (
            f"{facts.name} was registered, not created by Keelson: its lifecycle (and its "
            "version) is managed elsewhere."
        )
    capabilities = facts.capabilities
    if capabilities is None:
        return f"Its provider {facts.provider!r} is not installed here."
    if not capabilities.upgrade:
        if capabilities.versions:
            why = f"it runs one version ({', '.join(capabilities.versions)})"
        else:
            why = capabilities.unavailable_reason or "it has no upgrade"
        return f"The {facts.provider} provider cannot upgrade clusters: {why}."
    current = parse_version(facts.version)
    if current is None:
        return "Its current version is not known yet (not collected, not in its spec)."
    return step_problem(current, target)


def estimate_seconds(nodes: int) -> int:
    return CONTROL_PLANE_SECONDS + PER_NODE_SECONDS * max(nodes, 0)


def plan_cluster(facts: UpgradeFacts, target: KubeVersion) -> ClusterPlan:
    current = parse_version(facts.version)
    return ClusterPlan(
        cluster_id=facts.cluster_id,
        cluster_name=facts.name,
        from_value=str(current) if current is not None else facts.version,
        to_value=str(target),
        skip_reason=skip_reason(facts, target),
        estimate_seconds=estimate_seconds(facts.nodes),
        detail={"provider": facts.provider, "nodes": facts.nodes},
    )


def eol_sentence(version: KubeVersion, ends: date | None, today: date) -> str:
    """`v1.27 reached end of life 2024-06-28`, as the preview shows it."""
    if ends is None:
        return f"{version.minor_name}: no end-of-life date known"
    verb = "reached" if ends <= today else "reaches"
    return f"{version.minor_name} {verb} end of life {ends.isoformat()}"
