"""Seeding the benchmark database: simulated push clusters (real credential store), pull
clusters with enrolled agents (real registration services), a synthetic fleet for
placement, a user with an API token and a session for the web benchmarks."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from accounts.choices import Role
from accounts.models import Team
from accounts.services import membership_set, team_create
from benchmarks.simulator import (
    INSTANCE_TYPES,
    KUBE_VERSION,
    LEGACY_VERSION,
    PROFILES,
    TLSFiles,
    Variant,
    agent_inventory,
    cluster_token,
    cluster_url,
)
from clusters.choices import ClusterMode, ClusterStatus, CredentialKind
from clusters.models import Cluster, ClusterInventory
from clusters.services.credentials import credential_store
from clusters.services.registration import ClusterFields, agent_exchange, cluster_register_pull
from kube.client import ConnectionSpec

BENCH_USER = "bench"
SIM_TEAM = "bench-sim"
PLACEMENT_TEAM = "bench-placement"
AGENT_TEAM = "bench-agents"
SWEEP_TEAM = "bench-sweep"


def reset() -> None:
    """Forget everything a previous run left (clusters and what hangs off them,
    applications, audit records); list prices and teams stay."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE clusters_cluster, placement_application, audit_auditevent, "
            "operations_operation, django_session CASCADE"
        )


def user() -> AbstractBaseUser:
    model = get_user_model()
    found = model.objects.filter(username=BENCH_USER).first()
    if found is not None:
        return found
    return model.objects.create_superuser(BENCH_USER, "bench@example.invalid", None)


def team(name: str) -> Team:
    found = Team.objects.filter(name=name).first()
    if found is None:
        found = team_create(name=name, actor=None)
    bench_user = user()
    membership_set(team=found, user=bench_user, role=Role.ADMIN, actor=None)
    return found


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed_simulated(
    *, count: int, port: int, tls: TLSFiles, team_name: str = SIM_TEAM
) -> tuple[list[int], float]:
    """`count` push clusters pointing at the simulator, rows in bulk and credentials
    through `credential_store` (encrypted like any other). Returns ids (index order)
    and the seconds it took."""
    started = time.perf_counter()
    owner = team(team_name)
    secret = tls.token_secret()
    ca = tls.ca_pem
    rows = []
    for index in range(count):
        provider, region, *_ = INSTANCE_TYPES[index % PROFILES]
        rows.append(
            Cluster(
                name=f"sim-{index:05d}",
                team=owner,
                provider=provider,
                region=region,
                environment=("prod", "staging", "dev")[index % 3],
                labels={"env": ("prod", "staging", "dev")[index % 3], "sim": "true"},
                mode=ClusterMode.PUSH,
                api_server_url=cluster_url(port, index),
                # what collection records from /version (a registered cluster has it)
                kubernetes_version=LEGACY_VERSION if Variant.of(index).legacy else KUBE_VERSION,
            )
        )
    created = Cluster.objects.bulk_create(rows, batch_size=1000)
    for batch in _chunks(list(enumerate(created)), 500):
        with transaction.atomic():
            for index, cluster in batch:
                credential_store(
                    cluster=cluster,
                    spec=ConnectionSpec(
                        server=cluster.api_server_url,
                        ca_data=ca,
                        token=cluster_token(secret, index),
                    ),
                    kind=CredentialKind.TOKEN,
                )
    return [c.pk for c in created], time.perf_counter() - started


def seed_agents(*, count: int, start: int = 0) -> tuple[list[str], float]:
    """`count` pull clusters (numbered from `start`), each registered and enrolled through
    the real services."""
    started = time.perf_counter()
    owner = team(AGENT_TEAM)
    tokens = []
    for index in range(start, start + count):
        _, bootstrap = cluster_register_pull(
            actor=None, fields=ClusterFields(name=f"agent-{index:05d}", team=owner)
        )
        _, token = agent_exchange(bootstrap_token=bootstrap)
        tokens.append(token)
    return tokens, time.perf_counter() - started


PLACEMENT_REGIONS = (
    ("aws", "eu-west-1"),
    ("aws", "us-east-1"),
    ("aws", "ap-southeast-1"),
    ("gcp", "europe-west1"),
    ("gcp", "us-central1"),
    ("azure", "westeurope"),
    ("azure", "eastus"),
    ("onprem", "dc-1"),
    ("edge", "store-1"),
)


def seed_placement(
    *, count: int, seed: int = 9, team_name: str = PLACEMENT_TEAM, prefix: str = "pl"
) -> tuple[Team, float]:
    """A synthetic fleet of `count` clusters for placement: a mix of providers, regions,
    environments, tiers, statuses, taints, capacities and inventories (for prices)."""
    started = time.perf_counter()
    owner = team(team_name)
    rng = random.Random(seed)  # noqa: S311 (a reproducible fleet, not a secret)
    rows = []
    inventories: list[dict[str, Any]] = []
    for index in range(count):
        provider, region = PLACEMENT_REGIONS[index % len(PLACEMENT_REGIONS)]
        profile = rng.randrange(PROFILES)
        inventory = agent_inventory(profile)
        for node in inventory["nodes"]:
            node["region"] = region
        nodes = inventory["nodes"]
        allocatable_cpu = sum(n["allocatable"]["cpu_millis"] for n in nodes)
        allocatable_memory = sum(n["allocatable"]["memory_bytes"] for n in nodes)
        roll = rng.random()
        status = (
            ClusterStatus.UNREACHABLE
            if roll < 0.02
            else ClusterStatus.DEGRADED
            if roll < 0.07
            else ClusterStatus.READY
        )
        taints = []
        if index % 37 == 0:
            taints.append({"key": "dedicated", "value": "gpu", "effect": "NoSelect"})
        elif index % 11 == 0:
            taints.append({"key": "spot", "value": "true", "effect": "PreferNoSelect"})
        rows.append(
            Cluster(
                name=f"{prefix}-{index:05d}",
                team=owner,
                provider=provider,
                region=region,
                zone=f"{region}-a",
                environment=("prod", "staging", "dev")[index % 3],
                labels={
                    "env": ("prod", "staging", "dev")[index % 3],
                    "tier": ("web", "api", "batch", "data")[index % 4],
                    "pci": "true" if index % 5 == 0 else "false",
                },
                taints=taints,
                mode=ClusterMode.PUSH,
                status=status,
                kubernetes_version=("v1.28.9", "v1.29.4", "v1.30.1")[index % 3],
                node_count=len(nodes),
                nodes_ready=len(nodes),
                allocatable_cpu_millis=allocatable_cpu,
                allocatable_memory_bytes=allocatable_memory,
                requested_cpu_millis=int(allocatable_cpu * rng.uniform(0.05, 0.95)),
                requested_memory_bytes=int(allocatable_memory * rng.uniform(0.05, 0.95)),
            )
        )
        inventories.append(inventory)
    created = Cluster.objects.bulk_create(rows, batch_size=1000)
    from django.utils import timezone

    now = timezone.now()
    ClusterInventory.objects.bulk_create(
        [
            ClusterInventory(cluster=cluster, collected_at=now, data=inventory)
            for cluster, inventory in zip(created, inventories, strict=True)
        ],
        batch_size=1000,
    )
    return owner, time.perf_counter() - started


def api_token() -> str:
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user_id=user().pk)
    return str(token.key)


def session_cookie() -> str:
    """A logged-in session of the bench user (for websockets)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    bench_user = user()
    session = SessionStore()
    session[SESSION_KEY] = str(bench_user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = bench_user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
