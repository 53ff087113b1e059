"""Credentials at rest: encrypted with the key ring; every decryption is audited."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F
from django.utils import timezone
from kubernetes import client as k8s

from audit.services import audit_record, audit_records
from clusters.choices import CredentialKind
from clusters.models import Cluster, ClusterCredential
from core.crypto import DecryptionError, decrypt, encrypt
from kube.client import ClusterConnectError, ConnectionSpec, build_api_client, clients
from kube.egress import EgressDenied, check_egress


def credential_store(
    *, cluster: Cluster, spec: ConnectionSpec, kind: CredentialKind, context: str = ""
) -> ClusterCredential:
    """Create or replace the cluster's credential (call inside the caller's transaction)."""
    credential, created = ClusterCredential.objects.get_or_create(
        cluster=cluster,
        defaults={"kind": kind, "ciphertext": encrypt(spec.to_json()), "context": context},
    )
    if not created:
        ClusterCredential.objects.filter(pk=credential.pk).update(
            kind=kind,
            ciphertext=encrypt(spec.to_json()),
            context=context,
            version=F("version") + 1,
            rotated_at=timezone.now(),
        )
        credential.refresh_from_db()
    clients.drop(cluster.pk)
    return credential


def credential_read(
    *, cluster: Cluster, purpose: str, actor: AbstractBaseUser | None = None
) -> tuple[ConnectionSpec, int]:
    """Decrypt the credential (audited with its purpose) and return it with its version."""
    credential = ClusterCredential.objects.filter(cluster=cluster).first()
    if credential is None:
        raise ClusterConnectError("invalid", f"Cluster {cluster.name} has no stored credential.")
    try:
        spec = ConnectionSpec.from_json(decrypt(credential.ciphertext))
    except DecryptionError as error:
        raise ClusterConnectError("invalid", f"Cluster {cluster.name}: {error}.") from None
    audit_record(
        actor=actor,
        action="cluster.credential.read",
        target=cluster,
        team=cluster.team,
        detail={"purpose": purpose, "credential_version": credential.version},
    )
    return spec, credential.version


def cluster_api_client(*, cluster: Cluster) -> k8s.ApiClient:
    """The process's cached client for a push-mode cluster (built on first use)."""
    built, failed = cluster_api_clients(clusters=[cluster])
    if failed:
        raise failed[0][1]
    return built[0][1]


def _client_for(cluster: Cluster, spec: ConnectionSpec, version: int) -> k8s.ApiClient:
    try:
        check_egress(spec.server)
    except EgressDenied as error:
        raise ClusterConnectError("invalid", str(error)) from None
    if cluster.insecure_skip_tls_verify and not spec.insecure_skip_tls_verify:
        spec = ConnectionSpec(**{**spec.__dict__, "insecure_skip_tls_verify": True})
    api = build_api_client(spec)
    clients.put(cluster.pk, version, api)
    return api


def cluster_api_clients(
    *, clusters: list[Cluster]
) -> tuple[list[tuple[Cluster, k8s.ApiClient]], list[tuple[Cluster, ClusterConnectError]]]:
    """`cluster_api_client` for many clusters: the credential versions are read in one
    query, and only the clusters without a current cached client decrypt theirs (one
    query, one audit insert for all of them: a worker's first sweep decrypts thousands).
    Returns (cluster, client) pairs and the clusters whose client could not be built,
    with why."""
    versions = dict(
        ClusterCredential.objects.filter(cluster__in=clusters).values_list("cluster_id", "version")
    )
    cached: dict[int, k8s.ApiClient] = {}
    for cluster in clusters:
        version = versions.get(cluster.pk)
        api = clients.get(cluster.pk, version) if version is not None else None
        if api is not None:
            cached[cluster.pk] = api
    missing = [c for c in clusters if c.pk not in cached]
    credentials = {
        c.cluster_id: c
        for c in ClusterCredential.objects.filter(cluster__in=missing).only(
            "cluster_id", "ciphertext", "version"
        )
    }
    built: list[tuple[Cluster, k8s.ApiClient]] = []
    failed: list[tuple[Cluster, ClusterConnectError]] = []
    audits = []
    for cluster in clusters:
        if cluster.pk in cached:
            built.append((cluster, cached[cluster.pk]))
            continue
        credential = credentials.get(cluster.pk)
        if credential is None:
            error = ClusterConnectError(
                "invalid", f"Cluster {cluster.name} has no stored credential."
            )
            failed.append((cluster, error))
            continue
        try:
            spec = ConnectionSpec.from_json(decrypt(credential.ciphertext))
        except DecryptionError as error:
            failed.append(
                (cluster, ClusterConnectError("invalid", f"Cluster {cluster.name}: {error}."))
            )
            continue
        event = audit_record(
            actor=None,
            action="cluster.credential.read",
            target=cluster,
            detail={"purpose": "api-client", "credential_version": credential.version},
            save=False,
        )
        event.team_id = cluster.team_id  # the team row is not needed for its id
        audits.append(event)
        try:
            built.append((cluster, _client_for(cluster, spec, credential.version)))
        except ClusterConnectError as error:
            failed.append((cluster, error))
    if audits:
        audit_records(audits)
    return built, failed
