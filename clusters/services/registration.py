"""Registering clusters: push (the hub holds a credential) and pull (an agent enrolls).

Push registration connects and checks before anything is stored: a failure at any step
raises `RegistrationError` with that step's message and leaves the database untouched.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Team
from audit.services import audit_record
from clusters.agentmanifest import PUSH_NAMESPACE, PUSH_TOKEN_SECRET
from clusters.choices import ClusterMode, CredentialKind, Provider
from clusters.labels import stamp_taints
from clusters.models import AgentToken, Cluster
from clusters.services.collection import COLLECT_TASK
from clusters.services.credentials import credential_store
from core.celery import task_send
from kube.access import AccessReport, verify_access
from kube.client import ClusterConnectError, ConnectionSpec, build_api_client
from kube.egress import EgressDenied, check_egress
from kube.kubeconfig import KubeconfigError, connection_from_kubeconfig

# Said when a kubeconfig needs an exec plugin (EKS, GKE, AKS): the way out.
PUSH_IDENTITY_HINT = (
    " Keelson can create a least-privilege ServiceAccount for itself: apply"
    " GET /api/v1/clusters/push-identity-manifest/ with kubectl (?access=read-only for a"
    f" cluster it only observes), then register with the API server URL and the token and CA"
    f" of the Secret {PUSH_NAMESPACE}/{PUSH_TOKEN_SECRET}."
)
BOOTSTRAP_PREFIX = "kbt_"
AGENT_PREFIX = "kat_"


class RegistrationError(Exception):
    """Registration refused; `code` names the failed check, `field` the input at fault."""

    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass(frozen=True)
class ClusterFields:
    """The descriptive fields an operator gives at registration."""

    name: str
    team: Team
    display_name: str = ""
    description: str = ""
    provider: str = Provider.OTHER
    region: str = ""
    zone: str = ""
    environment: str = ""
    labels: dict[str, str] | None = None
    taints: list[dict[str, str]] | None = None
    insecure_skip_tls_verify: bool = False

    @classmethod
    def from_data(cls, *, name: str, team: Team, data: Mapping[str, Any]) -> ClusterFields:
        """From a form's or serializer's cleaned data (keys it lacks keep their defaults)."""
        return cls(name=name, team=team, **{key: data[key] for key in DESCRIPTIVE if key in data})


DESCRIPTIVE = (
    "display_name",
    "description",
    "provider",
    "region",
    "zone",
    "environment",
    "labels",
    "taints",
    "insecure_skip_tls_verify",
)


def _new_cluster(fields: ClusterFields, *, mode: ClusterMode, server: str, actor: Any) -> Cluster:
    cluster = Cluster(
        name=fields.name,
        team=fields.team,
        display_name=fields.display_name,
        description=fields.description,
        provider=fields.provider,
        region=fields.region,
        zone=fields.zone,
        environment=fields.environment,
        labels=fields.labels or {},
        taints=stamp_taints(fields.taints or [], [], timezone.now()),
        mode=mode,
        api_server_url=server,
        insecure_skip_tls_verify=fields.insecure_skip_tls_verify,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    cluster.full_clean()
    return cluster


def connection_from_input(
    *,
    kubeconfig: str = "",
    context: str = "",
    server: str = "",
    token: str = "",
    ca_data: str = "",
    insecure_skip_tls_verify: bool = False,
) -> tuple[ConnectionSpec, CredentialKind]:
    """Turn the form's inputs into a connection, or say which input is wrong."""
    if kubeconfig:
        try:
            spec = connection_from_kubeconfig(kubeconfig, context or None)
        except KubeconfigError as error:
            message = str(error)
            if "exec or auth-provider" in message:
                message += PUSH_IDENTITY_HINT
            raise RegistrationError("invalid", message, "kubeconfig") from None
        if insecure_skip_tls_verify:
            spec = ConnectionSpec(**{**spec.__dict__, "insecure_skip_tls_verify": True})
        return spec, CredentialKind.KUBECONFIG
    if not server:
        raise RegistrationError("invalid", "Give a kubeconfig, or the API server URL.", "server")
    if not server.startswith("https://"):
        raise RegistrationError("invalid", "The API server URL must start with https://.", "server")
    if not token:
        raise RegistrationError("invalid", "Give the bearer token.", "token")
    if not ca_data and not insecure_skip_tls_verify:
        raise RegistrationError(
            "invalid",
            "Give the cluster's CA bundle (PEM), or explicitly skip TLS verification.",
            "ca_data",
        )
    if ca_data and "-----BEGIN CERTIFICATE-----" not in ca_data:
        raise RegistrationError("invalid", "The CA bundle is not a PEM certificate.", "ca_data")
    return (
        ConnectionSpec(
            server=server.rstrip("/"),
            ca_data=ca_data,
            token=token.strip(),
            insecure_skip_tls_verify=insecure_skip_tls_verify,
        ),
        CredentialKind.TOKEN,
    )


def cluster_check_connection(*, spec: ConnectionSpec) -> AccessReport:
    """Egress policy, reachability, TLS, authentication and permissions, in that order."""
    try:
        check_egress(spec.server)
    except EgressDenied as error:
        raise RegistrationError("forbidden_address", str(error), "server") from None
    api = build_api_client(spec, retries=0)
    try:
        return verify_access(api, spec.server)
    except ClusterConnectError as error:
        raise RegistrationError(error.code, error.message) from None
    finally:
        api.close()


def cluster_register_push(
    *,
    actor: AbstractBaseUser | None,
    fields: ClusterFields,
    spec: ConnectionSpec,
    kind: CredentialKind,
    context: str = "",
) -> tuple[Cluster, AccessReport]:
    """Check the connection, then store the cluster and its encrypted credential."""
    if Cluster.objects.filter(name=fields.name).exists():
        raise RegistrationError("invalid", f"A cluster named {fields.name!r} exists.", "name")
    # Validate the descriptive fields first: a typo in a label should not cost a probe.
    try:
        _new_cluster(fields, mode=ClusterMode.PUSH, server=spec.server, actor=actor)
    except ValidationError as error:
        raise RegistrationError("invalid", "; ".join(error.messages)) from None
    report = cluster_check_connection(spec=spec)
    with transaction.atomic():
        cluster = _new_cluster(fields, mode=ClusterMode.PUSH, server=spec.server, actor=actor)
        cluster.kubernetes_version = report.kubernetes_version
        try:
            cluster.save()
        except IntegrityError:
            raise RegistrationError(
                "invalid", f"A cluster named {fields.name!r} exists.", "name"
            ) from None
        credential_store(cluster=cluster, spec=spec, kind=kind, context=context)
        audit_record(
            actor=actor,
            action="cluster.register",
            target=cluster,
            team=cluster.team,
            detail={
                "mode": "push",
                "server": spec.server,
                "credential": kind,
                "read_only": report.read_only,
            },
        )
    _collect_soon(cluster)
    return cluster, report


def _collect_soon(cluster: Cluster) -> None:
    transaction.on_commit(lambda: task_send(COLLECT_TASK, args=[[cluster.pk]]))


# --- pull mode ---------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _mint(*, cluster: Cluster, kind: str, actor: Any, ttl: int | None) -> str:
    prefix = BOOTSTRAP_PREFIX if kind == AgentToken.Kind.BOOTSTRAP else AGENT_PREFIX
    token = prefix + secrets.token_urlsafe(32)
    AgentToken.objects.create(
        cluster=cluster,
        kind=kind,
        token_hash=token_hash(token),
        prefix=token[:10],
        created_by=actor if actor is not None and actor.is_authenticated else None,
        expires_at=timezone.now() + timedelta(seconds=ttl) if ttl else None,
    )
    return token


@transaction.atomic
def cluster_register_pull(
    *, actor: AbstractBaseUser | None, fields: ClusterFields
) -> tuple[Cluster, str]:
    """Create a pull-mode cluster (Unknown until its agent reports) and a one-time
    bootstrap token, returned once in clear and stored only as a hash."""
    if Cluster.objects.filter(name=fields.name).exists():
        raise RegistrationError("invalid", f"A cluster named {fields.name!r} exists.", "name")
    try:
        cluster = _new_cluster(fields, mode=ClusterMode.PULL, server="", actor=actor)
    except ValidationError as error:
        raise RegistrationError("invalid", "; ".join(error.messages)) from None
    cluster.save()
    token = _mint(
        cluster=cluster,
        kind=AgentToken.Kind.BOOTSTRAP,
        actor=actor,
        ttl=settings.KEELSON_BOOTSTRAP_TOKEN_TTL,
    )
    audit_record(
        actor=actor,
        action="cluster.register",
        target=cluster,
        team=cluster.team,
        detail={"mode": "pull"},
    )
    return cluster, token


@transaction.atomic
def bootstrap_token_issue(*, cluster: Cluster, actor: AbstractBaseUser | None) -> str:
    """A new one-time token to (re-)enroll the cluster's agent; older unused ones die."""
    if cluster.mode != ClusterMode.PULL:
        raise RegistrationError("invalid", "Only pull-mode clusters have agents.")
    now = timezone.now()
    AgentToken.objects.filter(
        cluster=cluster, kind=AgentToken.Kind.BOOTSTRAP, used_at=None, revoked_at=None
    ).update(revoked_at=now)
    token = _mint(
        cluster=cluster,
        kind=AgentToken.Kind.BOOTSTRAP,
        actor=actor,
        ttl=settings.KEELSON_BOOTSTRAP_TOKEN_TTL,
    )
    audit_record(
        actor=actor, action="cluster.bootstrap_token.issue", target=cluster, team=cluster.team
    )
    return token


class AgentAuthError(Exception):
    """The agent's token is unknown, expired, used or revoked."""


@transaction.atomic
def agent_exchange(*, bootstrap_token: str) -> tuple[Cluster, str]:
    """Trade a bootstrap token (once) for the cluster's long-lived agent token."""
    now = timezone.now()
    row = (
        AgentToken.objects.select_for_update()
        .select_related("cluster")
        .filter(token_hash=token_hash(bootstrap_token), kind=AgentToken.Kind.BOOTSTRAP)
        .first()
    )
    if row is None or row.revoked_at is not None:
        raise AgentAuthError("Unknown or revoked bootstrap token.")
    if row.used_at is not None:
        raise AgentAuthError("This bootstrap token has already been used.")
    if row.expires_at is not None and row.expires_at < now:
        raise AgentAuthError("This bootstrap token has expired; issue a new one.")
    row.used_at = now
    row.save(update_fields=["used_at"])
    # One agent per cluster: a re-enrollment replaces the previous agent's token.
    AgentToken.objects.filter(
        cluster=row.cluster, kind=AgentToken.Kind.AGENT, revoked_at=None
    ).update(revoked_at=now)
    token = _mint(
        cluster=row.cluster,
        kind=AgentToken.Kind.AGENT,
        actor=None,
        ttl=settings.KEELSON_AGENT_TOKEN_TTL,
    )
    audit_record(
        actor=None, action="cluster.agent.enroll", target=row.cluster, team=row.cluster.team
    )
    return row.cluster, token


def agent_authenticate(*, token: str, rotating: bool = False) -> tuple[Cluster, AgentToken]:
    """The cluster of a valid agent token. An expired token may still be traded for a new
    one (`rotating`): an agent cut off from the hub past its token's life comes back
    without re-enrolment (revoking is what cuts an agent off). The first use of a rotated
    token revokes the ones before it: until then an agent that lost the rotation's answer
    still holds a working token."""
    row = (
        AgentToken.objects.select_related("cluster")
        .filter(token_hash=token_hash(token), kind=AgentToken.Kind.AGENT)
        .first()
    )
    if row is None:
        raise AgentAuthError("Unknown agent token.")
    if row.revoked_at is not None:
        raise AgentAuthError("This agent's token has been revoked.")
    now = timezone.now()
    if not rotating and row.expires_at is not None and row.expires_at <= now:
        raise AgentAuthError(EXPIRED)
    if row.last_used_at is None:
        AgentToken.objects.filter(
            cluster_id=row.cluster_id,
            kind=AgentToken.Kind.AGENT,
            revoked_at=None,
            created_at__lt=row.created_at,
        ).update(revoked_at=now)
    return row.cluster, row


EXPIRED = "This agent's token has expired: the agent trades it for a new one at agent/rotate."


@transaction.atomic
def agent_token_rotate(*, token: str) -> tuple[Cluster, str]:
    """The agent trades its current token (even expired, not revoked) for a new one; the
    old one stops working once the new one is first used."""
    cluster, row = agent_authenticate(token=token, rotating=True)
    AgentToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    new = _mint(
        cluster=cluster,
        kind=AgentToken.Kind.AGENT,
        actor=None,
        ttl=settings.KEELSON_AGENT_TOKEN_TTL,
    )
    audit_record(actor=None, action="cluster.agent.rotate", target=cluster, team=cluster.team)
    return cluster, new


@transaction.atomic
def agent_tokens_revoke(*, cluster: Cluster, actor: AbstractBaseUser | None) -> int:
    """Revoke every agent and unused bootstrap token of the cluster."""
    revoked = AgentToken.objects.filter(cluster=cluster, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    audit_record(
        actor=actor,
        action="cluster.agent.revoke",
        target=cluster,
        team=cluster.team,
        detail={"tokens": revoked},
    )
    return revoked
