"""The simulated fleet's shape: cluster profiles, Kubernetes generations and the policy
violations planted every so many clusters."""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
MIB = 2**20
KUBE_VERSION = "v1.29.4"
INSTANCE_TYPES = (
    ("aws", "eu-west-1", "m5.xlarge", 4, 16),
    ("aws", "us-east-1", "m5.2xlarge", 8, 32),
    ("gcp", "europe-west1", "n2-standard-4", 4, 16),
    ("gcp", "us-central1", "n2-standard-8", 8, 32),
    ("azure", "westeurope", "Standard_D4s_v3", 4, 16),
    ("azure", "eastus", "Standard_D8s_v3", 8, 32),
    ("onprem", "dc-1", "bare-metal-16", 16, 64),
    ("edge", "store-1", "edge-small", 2, 4),
)
PROFILES = len(INSTANCE_TYPES)
# A cluster index divisible by this has one node NotReady (it reports Degraded).
DEGRADED_EVERY = 50
# Past this many open connections, the last call of a probe (warning events) answers
# "Connection: close" so the process stays under its descriptor limit.
CONNECTION_SOFT_CAP = 15000
# Every LEGACY_EVERY-th cluster runs Kubernetes 1.20 (CronJob in batch/v1beta1 only).
LEGACY_EVERY = 4
LEGACY_VERSION = "v1.20.2"
# Policy -> every how many clusters it finds a violation (cluster index divisible by it);
# everywhere else it finds none. The sweep benchmark checks its results against this.
PLANTED = {
    "pss-baseline-privileged": 7,  # a privileged debug Deployment (and its RS and Pod)
    "ops-image-tags": 5,  # the web Deployment runs an image tagged :latest
    "ops-resources": 3,  # the api Deployment's container sets no limits
    "ops-network-policy": 11,  # namespace payments has no default-deny-ingress policy
    "bench-no-load-balancer": 13,  # a Service of type LoadBalancer
    "bench-cronjob-history": 17,  # a CronJob keeping 10 successful jobs
}
# Uids and resource versions carry the cluster's index: rendered once per variant, this
# placeholder is replaced per response, so no two clusters serve identical objects.
INDEX_MARK = "@@index@@"


@dataclass(frozen=True)
class Variant:
    """What a cluster serves besides its profile: its Kubernetes generation and the
    violations planted in it (each flag: index divisible by PLANTED[policy])."""

    legacy: bool = False
    privileged: bool = False
    latest: bool = False
    no_limits: bool = False
    no_network_policy: bool = False
    load_balancer: bool = False
    cronjob_history: bool = False

    @classmethod
    def of(cls, index: int) -> Variant:
        def planted(policy: str) -> bool:
            return index % PLANTED[policy] == 0

        return cls(
            legacy=index % LEGACY_EVERY == 0,
            privileged=planted("pss-baseline-privileged"),
            latest=planted("ops-image-tags"),
            no_limits=planted("ops-resources"),
            no_network_policy=planted("ops-network-policy"),
            load_balancer=planted("bench-no-load-balancer"),
            cronjob_history=planted("bench-cronjob-history"),
        )
