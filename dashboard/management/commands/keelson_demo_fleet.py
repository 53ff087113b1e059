"""`manage.py keelson_demo_fleet`: a small fleet of local clusters for a first look.

Runs only on an empty registry and when the Kubernetes binaries are built; each cluster
is an ordinary provisioning Operation (watch them on the home page).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.models import Team
from applications.models import Application
from applications.services import application_create
from clusters.models import Cluster
from clusters.providers.base import ClusterSpec
from clusters.providers.local import LocalProvider
from clusters.services.provisioning import cluster_create

DEMO = [
    ("demo-eu", "eu-west", "production", {"env": "prod", "tier": "web"}, [("web", "m5.large", 2)]),
    (
        "demo-us",
        "us-east",
        "production",
        {"env": "prod", "tier": "batch"},
        [("web", "m5.xlarge", 2), ("gpu", "g4dn.xlarge", 1)],
    ),
    ("demo-edge", "store-42", "edge", {"env": "edge"}, [("edge", "edge.small", 1)]),
]


DEMO_APP = """apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - name: shop
        image: nginx:1.25
        ports: [{containerPort: 80}]
        resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 128Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80}]
"""


class Command(BaseCommand):
    help = "Create a demo fleet of local clusters if no cluster is registered yet."

    def handle(self, *args: Any, **options: Any) -> None:
        if Cluster.objects.exists():
            return
        capabilities = LocalProvider().capabilities()
        if not capabilities.provision:
            self.stdout.write(f"no demo fleet: {capabilities.unavailable_reason}")
            return
        team = Team.objects.filter(name="platform").first()
        if team is None:
            self.stdout.write("no demo fleet: the 'platform' team is missing")
            return
        for name, region, environment, labels, pools in DEMO:
            spec = ClusterSpec.from_json(
                {
                    "provider": "local",
                    "region": region,
                    "kubernetes_version": capabilities.versions[0],
                    "node_pools": [
                        {"name": pool, "instance_type": kind, "count": count}
                        for pool, kind, count in pools
                    ],
                }
            )
            cluster_create(
                actor=None,
                team=team,
                name=name,
                spec=spec,
                labels=labels,
                environment=environment,
                description="Demo cluster (local provider)",
            )
        names = ", ".join(entry[0] for entry in DEMO)
        self.stdout.write(f"creating a demo fleet of local clusters: {names} (progress on /)")
        if not Application.objects.filter(name="demo-shop").exists():
            application_create(
                actor=None,
                team=team,
                name="demo-shop",
                namespace="shop",
                description="Demo application: roll it out once the demo clusters are Ready",
                manifests=DEMO_APP,
                placement={
                    "selector": "env=prod",
                    "replicas": 6,
                    "division": "capacity",
                    "prioritizers": {"least_allocated": 2, "cheapest": 1},
                },
                overrides=[{"selector": "tier=batch", "labels": {"tier": "batch"}}],
                rollout={"strategy": "canary", "canary_clusters": 1, "canary_soak_seconds": 20},
            )
            self.stdout.write("demo application demo-shop: roll it out from /applications/")
