"""List prices shipped with Keelson: on-demand USD per hour in each provider's reference
region, and regional multipliers. Loaded into the database by `manage.py cost_load_prices`
(and the migration that creates the table); operators override them per cluster with
rate cards and discounts. Figures are public list prices, rounded; check your contract.
"""

from __future__ import annotations

from decimal import Decimal

REFERENCE_PRICES: dict[str, dict[str, str]] = {
    "aws": {  # us-east-1, Linux on-demand
        "t3.medium": "0.0416",
        "m5.large": "0.096",
        "m5.xlarge": "0.192",
        "m5.2xlarge": "0.384",
        "m6i.large": "0.096",
        "m6i.xlarge": "0.192",
        "c5.xlarge": "0.17",
        "r5.xlarge": "0.252",
        "g4dn.xlarge": "0.526",
    },
    "gcp": {  # us-central1
        "e2-standard-2": "0.067",
        "e2-standard-4": "0.134",
        "n2-standard-4": "0.1942",
        "n2-standard-8": "0.3885",
    },
    "azure": {  # eastus, Linux pay-as-you-go
        "Standard_D2s_v5": "0.096",
        "Standard_D4s_v5": "0.192",
        "Standard_D8s_v5": "0.384",
    },
    "alibaba": {  # us-west-1 (Silicon Valley), pay-as-you-go
        "ecs.g7.large": "0.1",
        "ecs.g7.xlarge": "0.2",
    },
}

REGION_MULTIPLIERS: dict[str, dict[str, str]] = {
    "aws": {
        "us-east-1": "1",
        "us-east-2": "1",
        "us-west-2": "1",
        "eu-west-1": "1.07",
        "eu-central-1": "1.15",
        "ap-northeast-1": "1.29",
        "ap-southeast-1": "1.25",
    },
    "gcp": {
        "us-central1": "1",
        "us-east1": "1",
        "europe-west1": "1.1",
        "europe-west4": "1.1",
        "asia-east1": "1.15",
    },
    "azure": {"eastus": "1", "westus2": "1", "westeurope": "1.1", "northeurope": "1.05"},
    "alibaba": {"us-west-1": "1", "eu-central-1": "1.05", "cn-hangzhou": "0.9"},
}

# Managed control-plane fee per month (USD), by managed service: EKS standard support and
# GKE standard $0.10/h; AKS's free tier $0 (its Standard tier, $0.10/h, is set per cluster).
# A self-managed control plane (kubeadm, k3s, Rancher, ...) has no fee: its machines are
# nodes and are priced as nodes.
CONTROL_PLANE_MONTHLY: dict[str, Decimal] = {
    "eks": Decimal("73"),
    "gke": Decimal("73"),
    "aks": Decimal("0"),
}
HOURS_PER_MONTH = Decimal(730)

# Block storage per GB-month (USD) by the storage classes each provider's managed
# Kubernetes creates by default (EBS gp3/gp2/io1/st1/sc1; GCE PD standard/balanced/SSD;
# Azure Standard SSD / Premium SSD managed disks). Other classes: the default price.
STORAGE_CLASS_GB_MONTH: dict[str, dict[str, Decimal]] = {
    "aws": {
        "gp3": Decimal("0.08"),
        "gp2": Decimal("0.10"),
        "io1": Decimal("0.125"),
        "st1": Decimal("0.045"),
        "sc1": Decimal("0.015"),
    },
    "gcp": {
        "standard": Decimal("0.04"),
        "standard-rwo": Decimal("0.10"),
        "premium-rwo": Decimal("0.17"),
    },
    "azure": {
        "default": Decimal("0.075"),
        "managed-csi": Decimal("0.075"),
        "managed-premium": Decimal("0.135"),
        "managed-csi-premium": Decimal("0.135"),
    },
}

# A Service of type LoadBalancer, per hour (USD), by provider: AWS Network Load Balancer
# $0.0225/h, GCP forwarding rule (first five) $0.025/h, Azure Standard Load Balancer (first
# five rules) $0.025/h; traffic (LCUs, data processed) is not counted. Elsewhere (on-premises
# MetalLB, local): 0.
LOAD_BALANCER_HOURLY: dict[str, Decimal] = {
    "aws": Decimal("0.0225"),
    "gcp": Decimal("0.025"),
    "azure": Decimal("0.025"),
}


def list_prices() -> list[tuple[str, str, str, Decimal]]:
    """(provider, region, instance type, hourly) for every region we know, and the
    reference price under region "" (any other region)."""
    rows = []
    for provider, prices in REFERENCE_PRICES.items():
        for instance_type, price in prices.items():
            base = Decimal(price)
            rows.append((provider, "", instance_type, base))
            for region, multiplier in REGION_MULTIPLIERS.get(provider, {}).items():
                rows.append(
                    (
                        provider,
                        region,
                        instance_type,
                        (base * Decimal(multiplier)).quantize(Decimal("0.000001")),
                    )
                )
    return rows
