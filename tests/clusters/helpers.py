"""Registering a local test cluster in the hub without going through the API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from clusters.choices import CredentialKind, Provider
from clusters.kube.kubeconfig import connection_from_kubeconfig
from clusters.localkube.env import LocalCluster
from clusters.models import Cluster
from clusters.services.credentials import credential_store
from fleet.accounts.models import Team


def register_local(local: LocalCluster, *, team: Team, name: str | None = None) -> Cluster:
    spec = connection_from_kubeconfig(yaml.safe_dump(local.control_plane.kubeconfig()))
    cluster = Cluster.objects.create(
        name=name or local.name,
        team=team,
        provider=Provider.LOCAL,
        api_server_url=spec.server,
    )
    credential_store(cluster=cluster, spec=spec, kind=CredentialKind.KUBECONFIG)
    return cluster


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
