"""Instance types: the capacity a node of each type has (simulated nodes get exactly this)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    name: str
    cpu: int
    memory_gib: int
    gpu: int = 0


_TYPES = [
    # AWS
    InstanceType("t3.medium", 2, 4),
    InstanceType("m5.large", 2, 8),
    InstanceType("m5.xlarge", 4, 16),
    InstanceType("m5.2xlarge", 8, 32),
    InstanceType("c5.xlarge", 4, 8),
    InstanceType("r5.xlarge", 4, 32),
    InstanceType("g4dn.xlarge", 4, 16, 1),
    InstanceType("m6i.large", 2, 8),
    InstanceType("m6i.xlarge", 4, 16),
    # GCP
    InstanceType("e2-standard-2", 2, 8),
    InstanceType("e2-standard-4", 4, 16),
    InstanceType("n2-standard-4", 4, 16),
    InstanceType("n2-standard-8", 8, 32),
    # Azure
    InstanceType("Standard_D2s_v5", 2, 8),
    InstanceType("Standard_D4s_v5", 4, 16),
    InstanceType("Standard_D8s_v5", 8, 32),
    # Alibaba
    InstanceType("ecs.g7.large", 2, 8),
    InstanceType("ecs.g7.xlarge", 4, 16),
    # On-premises and edge shapes
    InstanceType("onprem.medium", 8, 32),
    InstanceType("edge.small", 2, 4),
]
INSTANCE_TYPES: dict[str, InstanceType] = {t.name: t for t in _TYPES}
