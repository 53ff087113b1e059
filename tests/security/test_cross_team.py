"""Cross-team access over every endpoint of `/api/v1/` (issue 9, section 4).

Team A ("tenanta") owns one of everything: clusters (push and pull), a cluster set, a
template, a rate card, cluster pricing, a budget, an application with a version, an
operation, audit events and cost. Team B ("tenantb") owns the same. Three callers, each
with a real API token:

- owner: admin of team A;
- viewer: viewer of team A (and nothing else);
- outsider: admin of team B (and nothing in team A).

For every endpoint, method and caller: the owner's reads succeed and its writes are not
refused; the viewer reads and every write is 403; the outsider gets 404 on every detail
route and action, 403/404 on writes naming team A, and sees none of team A's objects in any
list; nothing is ever 5xx, and every 403 is in the audit log as `request.denied`.

The matrix is checked against the URL configuration: an endpoint (or an extra method on
one) that nobody put in the matrix fails `test_every_endpoint_is_in_the_matrix`.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import pytest
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, resolve
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import Team
from alerts.models import Alert, AlertRule, Silence
from alerts.services.lifecycle import rule_evaluate
from alerts.services.rules import RuleSpec, alert_rule_create
from applications.models import Application
from applications.propagation import work_target
from applications.services import application_create
from audit.models import AuditEvent
from audit.services import audit_record
from clusters.choices import ClusterMode
from clusters.models import Cluster, ClusterSet, ClusterTemplate
from clusters.services.registration import ClusterFields, agent_exchange, cluster_register_pull
from costs.models import Budget, ClusterPricing, CostAllocation, InstancePrice, RateCard
from fleet.api import urls as api_urls
from gitops.models import GitRepository
from notifications.models import Channel, Delivery
from operations.models import Operation
from operations.services import operation_create
from policies.models import (
    ComplianceReport,
    Policy,
    PolicyEvaluation,
    ReportDefinition,
    ReportFile,
)
from policies.services.policies import PolicySpec, policy_create
from tests.factories import add_member, make_team, make_user
from updates.models import (
    MaintenanceWindow,
    UpdateRun,
    UpdateRunCluster,
    UpdateRunStage,
    UpdateStrategy,
)

API = "/api/v1/"
A = "tenanta"  # every name of team A's objects contains it: a list that shows it leaks
B = "tenantb"

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", resources: {requests: {cpu: 50m, memory: 32Mi}}}
"""

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://203.0.113.10:6443"}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
"""

RULE = {
    "name": "no-host-network",
    "kind": "object",
    "match": {"kinds": ["Pod"]},
    "expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
    "message": "hostNetwork is not allowed",
}

SPEC = {
    "provider": "local",
    "region": "",
    "kubernetes_version": "v1.20.2",
    "node_pools": [{"name": "pool", "instance_type": "t3.medium", "count": 1}],
}


# ------------------------------------------------------------------------------ the world


@dataclass
class Tenant:
    team: Team
    admin: Any
    push: Cluster
    edge: Cluster
    edge_agent_token: str
    cluster_set: ClusterSet
    template: ClusterTemplate
    rate_card: RateCard
    budget: Budget
    application: Application
    operation: Operation
    audit_event: AuditEvent
    policy: Policy
    evaluation: PolicyEvaluation
    report_definition: ReportDefinition
    report: ComplianceReport
    channel: Channel
    delivery: Delivery
    alert_rule: AlertRule
    alert: Alert
    silence: Silence
    git_repository: GitRepository
    update_strategy: UpdateStrategy
    maintenance_window: MaintenanceWindow
    update_run: UpdateRun


def seed_tenant(prefix: str, admin: Any) -> Tenant:
    """One team's objects, each named after `prefix`; `admin` administers the team."""
    team = make_team(name=prefix)
    add_member(team, admin, Role.ADMIN)
    today = timezone.now().date()
    push = Cluster.objects.create(
        name=f"{prefix}-push",
        team=team,
        labels={"tier": "web", "owner": prefix},
        api_server_url="https://192.0.2.10:6443",  # TEST-NET: refused by the egress policy
    )
    edge, bootstrap = cluster_register_pull(
        actor=admin,
        fields=ClusterFields(name=f"{prefix}-edge", team=team, labels={"tier": "web"}),
    )
    _, agent_token = agent_exchange(bootstrap_token=bootstrap)
    # Its agent reported it Ready with room for the application: a rollout has somewhere
    # to go (one that would remove the application everywhere is refused, issue 20).
    Cluster.objects.filter(pk=edge.pk).update(
        status="ready", allocatable_cpu_millis=4000, allocatable_memory_bytes=8 * 2**30
    )
    cluster_set = ClusterSet.objects.create(name=f"{prefix}-set", team=team, selector="tier=web")
    cluster_set.members.add(push)
    template = ClusterTemplate.objects.create(
        name=f"{prefix}-tpl", team=team, spec=SPEC, created_by=admin
    )
    rate_card = RateCard.objects.create(
        name=f"{prefix}-card",
        team=team,
        valid_from=today,
        cpu_core_hour=Decimal("0.03"),
        ram_gb_hour=Decimal("0.004"),
    )
    ClusterPricing.objects.create(
        cluster=push, valid_from=today, rate_card=rate_card.name, created_by=admin
    )
    budget = Budget.objects.create(
        name=f"{prefix}-budget", team=team, cluster_set=cluster_set, monthly_amount=100
    )
    application = application_create(
        actor=admin,
        team=team,
        name=f"{prefix}-app",
        namespace=f"{prefix}-app",
        manifests=MANIFESTS,
        placement={"selector": "tier=web"},
    )
    work_target(application=application, cluster=edge, version=1, replicas=1)
    operation = operation_create(
        kind="cluster.provision",
        created_by=admin,
        team=team,
        target=push,
        message=f"Queued for {prefix}",
    )
    audit_event = audit_record(
        actor=admin, action="test.seed", target=push, team=team, detail={"note": prefix}
    )
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    CostAllocation.objects.create(
        cluster=push,
        cluster_name=push.name,
        hour=hour,
        namespace=f"{prefix}-app",
        team=team,
        team_name=team.name,
        provider="other",
        cpu_cost=Decimal(1),
        ram_cost=Decimal(1),
        gpu_cost=Decimal(0),
        total_cost=Decimal(2),
    )
    now = timezone.now()
    policy = policy_create(
        team=team,
        spec=PolicySpec(name=f"{prefix}-policy", cluster_selector="tier=web", rules=[RULE]),
        actor=admin,
    )
    evaluation = PolicyEvaluation.objects.create(
        policy=policy,
        cluster=push,
        run_id=uuid.uuid4(),
        status="noncompliant",
        message=f"{prefix} finding",
        policy_generation=1,
        evaluated_at=now,
    )
    report_definition = ReportDefinition.objects.create(
        team=team, name=f"{prefix}-report", formats=["json"], created_by=admin
    )
    report = ComplianceReport.objects.create(
        definition=report_definition,
        period_start=now - datetime.timedelta(days=7),
        period_end=now,
        data={"team": prefix},
    )
    ReportFile.objects.create(
        report=report,
        format="json",
        content_type="application/json",
        content=b'{"team": "%s"}' % prefix.encode(),
        size=20,
    )
    channel = Channel.objects.create(
        team=team,
        name=f"{prefix}-channel",
        kind="email",
        config={"recipients": [f"ops@{prefix}.example"]},
    )
    delivery = Delivery.objects.create(
        channel=channel,
        team=team,
        group_key=f"{prefix}-group",
        status="firing",
        severity="critical",
        title=f"{prefix} cluster down",
        payload={
            "team_id": team.pk,
            "group_key": f"{prefix}-group",
            "status": "firing",
            "severity": "critical",
            "title": f"{prefix} cluster down",
            "summary": "",
            "alerts": [],
            "rule_name": "",
            "channel_ids": None,
        },
        state="dead",
        attempts=6,
        last_error="example.invalid answered HTTP 500.",
    )
    # An alert rule, the alert it fired on the push cluster, a silence.
    Cluster.objects.filter(pk=push.pk).update(status="unreachable", status_changed_at=now)
    alert_rule = alert_rule_create(
        actor=admin, team=team, spec=RuleSpec(name=f"{prefix}-down", kind="cluster_status")
    )
    rule_evaluate(rule=alert_rule)
    alert = Alert.objects.get(rule=alert_rule)
    silence = Silence.objects.create(
        team=team,
        matchers=[f'cluster="{prefix}-edge"'],
        comment=f"{prefix} maintenance",
        starts_at=now,
        ends_at=now + datetime.timedelta(hours=1),
        created_by=admin,
    )
    git_repository = GitRepository.objects.create(
        team=team, name=f"{prefix}-git", url="git://192.0.2.10/fleet.git"
    )
    stages = [{"name": "all", "groups": [{"name": "web", "selector": "tier=web"}]}]
    update_strategy = UpdateStrategy.objects.create(
        team=team, name=f"{prefix}-strategy", stages=stages
    )
    maintenance_window = MaintenanceWindow.objects.create(
        team=team,
        name=f"{prefix}-window",
        cluster_set=cluster_set,
        days=[6],
        start_time=datetime.time(2),
        duration_minutes=120,
        timezone="Europe/Berlin",
    )
    # A draft run over the push cluster, as update_run_create leaves one.
    update_run = UpdateRun.objects.create(
        team=team,
        name=f"{prefix}-run",
        strategy=update_strategy,
        stages=[{**stages[0], "max_concurrency": 1, "soak_seconds": 0, "approval": False}],
        change_kind="node_pool",
        change_params={"pool": "pool", "image": f"{prefix}-image"},
        created_by=admin,
    )
    UpdateRunStage.objects.create(run=update_run, index=0, name="all")
    UpdateRunCluster.objects.create(
        run=update_run, stage_index=0, group="web", cluster=push, cluster_name=push.name
    )
    return Tenant(
        update_strategy=update_strategy,
        maintenance_window=maintenance_window,
        update_run=update_run,
        git_repository=git_repository,
        team=team,
        admin=admin,
        push=push,
        edge=edge,
        edge_agent_token=agent_token,
        cluster_set=cluster_set,
        template=template,
        rate_card=rate_card,
        budget=budget,
        application=application,
        operation=operation,
        audit_event=audit_event,
        policy=policy,
        evaluation=evaluation,
        report_definition=report_definition,
        report=report,
        channel=channel,
        delivery=delivery,
        alert_rule=alert_rule,
        alert=alert,
        silence=silence,
    )


@dataclass
class World:
    a: Tenant
    b: Tenant
    callers: dict[str, Any]

    def values(self) -> dict[str, Any]:
        """What the matrix's path templates name."""
        return {
            "cluster": self.a.push.name,
            "edge": self.a.edge.name,
            "set": self.a.cluster_set.name,
            "template": self.a.template.name,
            "budget": self.a.budget.name,
            "app": self.a.application.name,
            "operation": self.a.operation.pk,
            "audit": self.a.audit_event.pk,
            "team": self.a.team.name,
            "policy": self.a.policy.name,
            "evaluation": self.a.evaluation.pk,
            "definition": self.a.report_definition.name,
            "report": self.a.report.pk,
            "channel": self.a.channel.pk,
            "delivery": self.a.delivery.pk,
            "alertrule": self.a.alert_rule.pk,
            "alert": self.a.alert.pk,
            "silence": self.a.silence.pk,
            "git": self.a.git_repository.pk,
            "strategy": self.a.update_strategy.pk,
            "window": self.a.maintenance_window.pk,
            "run": self.a.update_run.pk,
            "b_cluster": self.b.push.name,
            "b_team": self.b.team.name,
        }


def seed_world() -> World:
    owner = make_user(username="a-owner")
    viewer = make_user(username="a-viewer")
    outsider = make_user(username="b-admin")
    a = seed_tenant(A, owner)
    add_member(a.team, viewer, Role.VIEWER)
    b = seed_tenant(B, outsider)
    InstancePrice.objects.create(
        provider="other",
        region="",
        instance_type="t3.medium",
        hourly=Decimal("0.0416"),
        valid_from=timezone.now().date(),
    )
    return World(a=a, b=b, callers={"owner": owner, "viewer": viewer, "outsider": outsider})


def _is_loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True  # a Unix socket path
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def guard_egress(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[Any]:
    """Nothing leaves this machine: cluster URLs are refused by the egress policy (an
    allowlist naming only a domain that cannot exist, loopback off), name lookups are
    refused, and any connection but to loopback services is recorded and refused."""
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["*.cluster.invalid"]
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    attempts: list[Any] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, f"lookups refused here: {name}") from None
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            attempts.append(address)
            raise ConnectionRefusedError(f"egress refused in this test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts  # the connections refused: the test asserts there were none


@pytest.fixture
def no_egress(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[Any]:
    return guard_egress(monkeypatch, settings)


@pytest.fixture
def world(db: None, settings: Any, no_egress: list[Any]) -> Iterator[World]:
    # users are made per test: a fast hasher keeps the matrix quick (no test logs in by
    # password here)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield seed_world()
    assert not no_egress, f"the hub tried to connect out: {no_egress}"


def token_client(user: Any) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


# ----------------------------------------------------------------------------- the matrix

Kind = Literal["read", "write"]
# detail: names one of team A's objects in its path; collection: a list, or a create that
# names team A in its body; global: not a team's (providers, list prices, team creation).
Scope = Literal["detail", "collection", "global"]


@dataclass(frozen=True)
class Endpoint:
    route: str  # the URL name under /api/v1/
    method: str
    path: str  # relative to /api/v1/, with {placeholders} from World.values()
    kind: Kind
    scope: Scope
    body: dict[str, Any] = field(default_factory=dict)  # a valid request for a write
    # A second, minimal body for writes: {} for detail writes (authorization must come
    # before validation), only the team for collection creates.
    minimal: dict[str, Any] | None = None
    viewer_reads: bool = True  # False where the design keeps it from viewers
    # The owner's valid request is a 2xx, except where the seeded object cannot take it
    # (a registered cluster's lifecycle is not Keelson's: scale/upgrade/destroy are 400).
    owner_may_400: bool = False
    note: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.route, self.method)


def _today() -> str:
    return (timezone.now().date() + datetime.timedelta(days=1)).isoformat()


def _r(route: str, path: str, scope: Scope = "detail", **kw: Any) -> Endpoint:
    return Endpoint(route=route, method="GET", path=path, kind="read", scope=scope, **kw)


def _w(route: str, method: str, path: str, scope: Scope = "detail", **kw: Any) -> Endpoint:
    if "minimal" not in kw and method != "DELETE":
        kw["minimal"] = {} if scope != "collection" else {"team": A}
    return Endpoint(route=route, method=method, path=path, kind="write", scope=scope, **kw)


ENDPOINTS: list[Endpoint] = [
    _r("api-root", "", "global"),
    # teams
    _r("team-list", "teams/", "collection"),
    _w("team-list", "POST", "teams/", "global", body={"name": "tenanta-new"}),
    _r("team-detail", "teams/{team}/"),
    _r("team-members", "teams/{team}/members/"),
    _w(
        "team-members",
        "POST",
        "teams/{team}/members/",
        # a member of the team: a team admin adds only people they share a team with
        body={"username": "a-viewer", "role": "admin"},
    ),
    _w("team-detail", "PATCH", "teams/{team}/", body={"description": "Team A's."}),
    _w("team-member", "PATCH", "teams/{team}/members/a-viewer/", body={"role": "operator"}),
    _w("team-member", "DELETE", "teams/{team}/members/a-viewer/"),
    _r("team-guardrails", "teams/{team}/guardrails/"),
    _w(
        "team-guardrails",
        "PATCH",
        "teams/{team}/guardrails/",
        body={"allowed_namespaces": ["tenanta-*"], "allow_cluster_scoped": False},
    ),
    # clusters
    _r("cluster-list", "clusters/", "collection"),
    _w(
        "cluster-list",
        "POST",
        "clusters/",
        "collection",
        body={"name": "tenanta-new", "team": A, "mode": "pull"},
    ),
    _r("cluster-detail", "clusters/{cluster}/"),
    _w("cluster-detail", "PATCH", "clusters/{cluster}/", body={"description": "changed"}),
    _w("cluster-detail", "DELETE", "clusters/{cluster}/"),
    _w(
        "cluster-provision",
        "POST",
        "clusters/provision/",
        "collection",
        body={"name": "tenanta-new", "team": A, "spec": SPEC},
    ),
    Endpoint(
        route="cluster-contexts",
        method="POST",
        path="clusters/contexts/",
        kind="read",
        scope="global",
        body={"kubeconfig": KUBECONFIG},
        note="stores nothing and names no team: a parser anyone signed in may use",
    ),
    _w(
        "cluster-scale",
        "POST",
        "clusters/{cluster}/scale/",
        body={"pool": "pool", "count": 2},
        owner_may_400=True,
    ),
    _w(
        "cluster-upgrade",
        "POST",
        "clusters/{cluster}/upgrade/",
        body={"kubernetes_version": "v1.20.2"},
        owner_may_400=True,
    ),
    _w(
        "cluster-update-pool",
        "POST",
        "clusters/{cluster}/update_pool/",
        body={"pool": "pool", "image": "ubuntu-2204-v2"},
        owner_may_400=True,
    ),
    _w(
        "cluster-destroy-cluster", "POST", "clusters/{cluster}/destroy_cluster/", owner_may_400=True
    ),
    _r("cluster-provisioning", "clusters/{cluster}/provisioning/"),
    _r("cluster-health", "clusters/{cluster}/health/"),
    _r("cluster-timeline", "clusters/{cluster}/timeline/"),
    _r("cluster-inventory", "clusters/{cluster}/inventory/"),
    _w("cluster-probe", "POST", "clusters/{cluster}/probe/"),
    _w("cluster-bootstrap-token", "POST", "clusters/{edge}/bootstrap-token/"),
    _w("cluster-revoke-agent", "POST", "clusters/{edge}/revoke-agent/"),
    _r(
        "cluster-push-identity-manifest",
        "clusters/push-identity-manifest/",
        "global",
        note="a fixed manifest: no team, no secret",
    ),
    # a GET that issues a bootstrap token: admins only, like bootstrap-token/
    _w("cluster-agent-manifest", "GET", "clusters/{edge}/agent-manifest/"),
    # cluster sets
    _r("clusterset-list", "cluster-sets/", "collection"),
    _w(
        "clusterset-list",
        "POST",
        "cluster-sets/",
        "collection",
        body={"name": "tenanta-new", "team_name": A, "selector": "tier=web"},
        minimal={"team_name": A},
    ),
    _r("clusterset-detail", "cluster-sets/{set}/"),
    _w("clusterset-detail", "PATCH", "cluster-sets/{set}/", body={"description": "changed"}),
    _w("clusterset-detail", "DELETE", "cluster-sets/{set}/"),
    _r("clusterset-clusters", "cluster-sets/{set}/clusters/"),
    # cluster templates
    _r("clustertemplate-list", "cluster-templates/", "collection"),
    _w(
        "clustertemplate-list",
        "POST",
        "cluster-templates/",
        "collection",
        body={"name": "tenanta-new", "team": A, "spec": SPEC},
    ),
    _r("clustertemplate-detail", "cluster-templates/{template}/"),
    _w(
        "clustertemplate-detail",
        "PUT",
        "cluster-templates/{template}/",
        body={"name": "tenanta-tpl", "team": A, "spec": SPEC, "description": "changed"},
    ),
    _w("clustertemplate-detail", "DELETE", "cluster-templates/{template}/"),
    _w(
        "clustertemplate-create-cluster",
        "POST",
        "cluster-templates/{template}/create-cluster/",
        body={"name": "tenanta-new", "team": A},
    ),
    # providers and prices (not a team's)
    _r("provider-list", "providers/", "global"),
    _r("instanceprice-list", "instance-prices/", "global"),
    _w(
        "instanceprice-list",
        "POST",
        "instance-prices/",
        "global",
        body={
            "provider": "other",
            "region": "",
            "instance_type": "m5.large",
            "hourly": "0.1",
            "valid_from": "2999-01-01",
        },
    ),
    _r("ratecard-list", "rate-cards/", "collection"),
    _w(
        "ratecard-list",
        "POST",
        "rate-cards/",
        "collection",
        body={
            "name": "tenanta-card",
            "team": A,
            "valid_from": "2999-01-01",
            "cpu_core_hour": "0.05",
            "ram_gb_hour": "0.005",
        },
    ),
    _r("clusterpricing-list", "cluster-pricing/", "collection"),
    _w(
        "clusterpricing-list",
        "POST",
        "cluster-pricing/",
        "collection",
        body={"cluster": "tenanta-push", "valid_from": "2999-01-01", "discount_percent": "10"},
        minimal={"cluster": "tenanta-push"},
    ),
    _r("budget-list", "budgets/", "collection"),
    _w(
        "budget-list",
        "POST",
        "budgets/",
        "collection",
        body={"name": "tenanta-new", "team": A, "monthly_amount": "50"},
    ),
    _r("budget-detail", "budgets/{budget}/"),
    _w("budget-detail", "DELETE", "budgets/{budget}/"),
    _r("costs", "costs/?group_by=cluster", "collection"),
    # applications
    _r("application-list", "applications/", "collection"),
    _w(
        "application-list",
        "POST",
        "applications/",
        "collection",
        body={
            "name": "tenanta-new",
            "team": A,
            "namespace": "tenanta-new",
            "manifests": MANIFESTS,
            "placement": {"selector": "tier=web"},
        },
    ),
    _r("application-detail", "applications/{app}/"),
    _w("application-detail", "PATCH", "applications/{app}/", body={"description": "changed"}),
    _w("application-detail", "DELETE", "applications/{app}/"),
    Endpoint(
        route="application-simulate",
        method="POST",
        path="applications/{app}/simulate/",
        kind="read",
        scope="detail",
        body={"placement": {"selector": "tier=web"}},
        note="a dry run: a read for anyone who may read the application",
    ),
    _w("application-decide", "POST", "applications/{app}/decide/"),
    _r("application-decisions", "applications/{app}/decisions/"),
    _r("application-versions", "applications/{app}/versions/"),
    _w(
        "application-versions",
        "POST",
        "applications/{app}/versions/",
        body={"manifests": MANIFESTS},
    ),
    _w("application-rollout", "POST", "applications/{app}/rollout/", body={"version": 1}),
    _r("application-status", "applications/{app}/status/"),
    _w(
        "application-evict-everywhere",
        "POST",
        "applications/{app}/evict-everywhere/",
        body={"clusters": ["tenanta-edge"]},
    ),
    # operations
    _r("operation-list", "operations/", "collection"),
    _r("operation-detail", "operations/{operation}/"),
    _r("operation-log", "operations/{operation}/log/"),
    _w("operation-cancel", "POST", "operations/{operation}/cancel/"),
    # audit log: team admins read their teams' events, viewers none (DESIGN/AuditEventViewSet)
    _r("auditevent-list", "audit-events/", "collection", viewer_reads=False),
    _r("auditevent-detail", "audit-events/{audit}/", viewer_reads=False),
    # policies, evaluations, compliance, reports
    _r("policy-list", "policies/", "collection"),
    _w(
        "policy-list",
        "POST",
        "policies/",
        "collection",
        body={"name": "tenanta-new", "team": A, "cluster_selector": "tier=web", "rules": [RULE]},
    ),
    _r("policy-detail", "policies/{policy}/"),
    _w("policy-detail", "PATCH", "policies/{policy}/", body={"description": "changed"}),
    _w("policy-detail", "DELETE", "policies/{policy}/"),
    _w("policy-evaluate", "POST", "policies/{policy}/evaluate/"),
    _w("policy-preview-enforcement", "POST", "policies/{policy}/preview-enforcement/"),
    _w("policy-enforce", "POST", "policies/{policy}/enforce/"),
    _w(
        "policy-cluster-modes",
        "POST",
        "policies/{policy}/cluster-modes/",
        body={"clusters": [f"{A}-push"], "mode": "enforce"},
    ),
    _r("policy-results", "policies/{policy}/results/"),
    _r("policy-enforce-impact", "policies/{policy}/enforce-impact/"),
    _r("policyevaluation-list", "policy-evaluations/", "collection"),
    _r("policyevaluation-detail", "policy-evaluations/{evaluation}/"),
    _r("psspin-list", "pss-pins/", "collection"),
    _r("psspin-detail", "pss-pins/{set}/"),
    _w("psspin-detail", "PUT", "pss-pins/{set}/", body={"pss_version": "v1.29"}),
    _w("psspin-detail", "DELETE", "pss-pins/{set}/"),
    _r("compliance", "compliance/", "collection"),
    _r("reportdefinition-list", "report-definitions/", "collection"),
    _w(
        "reportdefinition-list",
        "POST",
        "report-definitions/",
        "collection",
        body={"name": "tenanta-new", "team_name": A, "formats": ["json"]},
        minimal={"team_name": A},
    ),
    _r("reportdefinition-detail", "report-definitions/{definition}/"),
    _w(
        "reportdefinition-detail",
        "PATCH",
        "report-definitions/{definition}/",
        body={"period_days": 14},
    ),
    _w("reportdefinition-detail", "DELETE", "report-definitions/{definition}/"),
    _w("reportdefinition-generate", "POST", "report-definitions/{definition}/generate/"),
    _r("compliancereport-list", "compliance-reports/", "collection"),
    _r("compliancereport-detail", "compliance-reports/{report}/"),
    _r("compliancereport-download", "compliance-reports/{report}/download/json/"),
    # notification channels (admins write, operators send tests) and deliveries
    _r("notificationchannel-list", "notification-channels/", "collection"),
    _w(
        "notificationchannel-list",
        "POST",
        "notification-channels/",
        "collection",
        body={
            "name": "tenanta-new",
            "team_name": A,
            "kind": "email",
            "recipients": ["ops@tenanta.example"],
        },
        minimal={"team_name": A},
    ),
    _r("notificationchannel-detail", "notification-channels/{channel}/"),
    _w(
        "notificationchannel-detail",
        "PATCH",
        "notification-channels/{channel}/",
        body={"min_severity": "warning"},
    ),
    _w("notificationchannel-detail", "DELETE", "notification-channels/{channel}/"),
    _w("notificationchannel-test", "POST", "notification-channels/{channel}/test/"),
    _r("notificationdelivery-list", "notification-deliveries/", "collection"),
    _r("notificationdelivery-dead-letters", "notification-deliveries/dead-letters/", "collection"),
    _r("notificationdelivery-detail", "notification-deliveries/{delivery}/"),
    _w("notificationdelivery-retry", "POST", "notification-deliveries/{delivery}/retry/"),
    # alerts: viewers read, operators acknowledge and silence, admins change rules
    _r("alertrule-list", "alert-rules/", "collection"),
    _w(
        "alertrule-list",
        "POST",
        "alert-rules/",
        "collection",
        body={"name": "tenanta-new", "team": A, "kind": "version_eol"},
    ),
    _r("alertrule-detail", "alert-rules/{alertrule}/"),
    _w("alertrule-detail", "PATCH", "alert-rules/{alertrule}/", body={"description": "changed"}),
    _w("alertrule-detail", "DELETE", "alert-rules/{alertrule}/"),
    _r("alert-list", "alerts/", "collection"),
    _r("alert-detail", "alerts/{alert}/"),
    _w("alert-acknowledge", "POST", "alerts/{alert}/acknowledge/"),
    _r("silence-list", "silences/", "collection"),
    _w(
        "silence-list",
        "POST",
        "silences/",
        "collection",
        body={
            "team": A,
            "matchers": ['cluster="tenanta-push"'],
            "comment": "tenanta change",
            "ends_at": (timezone.now() + datetime.timedelta(days=1)).isoformat(),
        },
    ),
    _r("silence-detail", "silences/{silence}/"),
    _w("silence-expire", "POST", "silences/{silence}/expire/"),
    # git repositories (gitops): admins register and change them, operators sync
    _r("gitrepository-list", "git-repositories/", "collection"),
    _w(
        "gitrepository-list",
        "POST",
        "git-repositories/",
        "collection",
        body={"name": "tenanta-new", "team": A, "url": "git://git.cluster.invalid/new.git"},
    ),
    _r("gitrepository-detail", "git-repositories/{git}/"),
    _w("gitrepository-detail", "PATCH", "git-repositories/{git}/", body={"ref": "dev"}),
    _w("gitrepository-detail", "DELETE", "git-repositories/{git}/"),
    _w("gitrepository-sync", "POST", "git-repositories/{git}/sync/"),
    _w("gitrepository-preview", "POST", "git-repositories/{git}/preview/"),
    _r("gitrepository-syncs", "git-repositories/{git}/syncs/"),
    # update runs: viewers read and preview; operators manage strategies and windows and
    # run runs. A run's actions depend on its state (the seeded one is a draft) and its
    # change kind's parameters: the owner may get a 400 there, never a 403.
    _r("updatestrategy-list", "update-strategies/", "collection"),
    _w(
        "updatestrategy-list",
        "POST",
        "update-strategies/",
        "collection",
        body={
            "team": A,
            "name": "tenanta-new",
            "stages": [{"name": "all", "groups": [{"name": "g", "cluster_set": "tenanta-set"}]}],
        },
    ),
    _r("updatestrategy-detail", "update-strategies/{strategy}/"),
    _w(
        "updatestrategy-detail", "PATCH", "update-strategies/{strategy}/", body={"description": "x"}
    ),
    _w("updatestrategy-detail", "DELETE", "update-strategies/{strategy}/"),
    _r("maintenancewindow-list", "maintenance-windows/", "collection"),
    _w(
        "maintenancewindow-list",
        "POST",
        "maintenance-windows/",
        "collection",
        body={
            "team": A,
            "name": "tenanta-new",
            "cluster_set": "tenanta-set",
            "days": [7],
            "start_time": "03:00",
            "duration_minutes": 60,
            "timezone": "UTC",
        },
    ),
    _r("maintenancewindow-detail", "maintenance-windows/{window}/"),
    _w(
        "maintenancewindow-detail",
        "PATCH",
        "maintenance-windows/{window}/",
        body={"enabled": False},
    ),
    _w("maintenancewindow-detail", "DELETE", "maintenance-windows/{window}/"),
    _r("updaterun-list", "update-runs/", "collection"),
    _w(
        "updaterun-list",
        "POST",
        "update-runs/",
        "collection",
        body={
            "team": A,
            "name": "tenanta-new",
            "strategy": "tenanta-strategy",
            "change_kind": "node_pool",
            "change_params": {"pool": "pool", "image": "tenanta-image-2"},
        },
        owner_may_400=True,
    ),
    _r("updaterun-detail", "update-runs/{run}/"),
    _r("updaterun-preview", "update-runs/{run}/preview/"),
    _w("updaterun-start", "POST", "update-runs/{run}/start/", owner_may_400=True),
    _w("updaterun-pause", "POST", "update-runs/{run}/pause/", owner_may_400=True),
    _w("updaterun-resume", "POST", "update-runs/{run}/resume/", owner_may_400=True),
    _w("updaterun-abort", "POST", "update-runs/{run}/abort/"),
    _w("updaterun-skip", "POST", "update-runs/{run}/skip/", body={"cluster": "tenanta-push"}),
    _w(
        "updaterun-approve",
        "POST",
        "update-runs/{run}/approve/",
        body={"stage": 0},
        owner_may_400=True,
    ),
    _r("gitrepository-objects", "git-repositories/{git}/objects/"),
    _w(
        "gitrepository-rollback",
        "POST",
        "git-repositories/{git}/rollback/",
        body={"commit": "0" * 40, "preview": True},
        owner_may_400=True,
        note="the seeded repository never synced: no commit to roll back to",
    ),
    _w("gitrepository-unpin", "POST", "git-repositories/{git}/unpin/"),
]

# Agent endpoints take agent tokens, not users': covered by the tests at the end.
AGENT_ENDPOINTS = {
    ("agent-cleanup", "POST"),
    ("agent-policies", "GET"),
    ("agent-policies", "POST"),
    ("agent-enroll", "POST"),
    ("agent-heartbeat", "POST"),
    ("agent-rotate", "POST"),
    ("agent-work", "GET"),
    ("agent-work", "POST"),
}

# The webhook takes no user: an HMAC signature with the repository's secret
# (tests/gitops/test_sync.py shows a bad or missing one is a 403 and changes nothing).
SIGNED_ENDPOINTS = {("gitrepository-webhook", "POST")}

# A user's own API tokens belong to no team: tests/security/test_tokens_api.py shows that
# nobody sees or changes another user's tokens.
PERSONAL_ENDPOINTS = {
    ("apitoken-list", "GET"),
    ("apitoken-list", "POST"),
    ("apitoken-detail", "GET"),
    ("apitoken-detail", "DELETE"),
    ("apitoken-rotate", "POST"),
}

# Group mapping belongs to no team: only administrators (superusers) see or change it;
# tests/sso/test_team_admin.py shows every one of these refuses anyone else (403, audited).
ADMINISTRATOR_ENDPOINTS = {
    ("groupmapping-list", "GET"),
    ("groupmapping-list", "POST"),
    ("groupmapping-detail", "GET"),
    ("groupmapping-detail", "PUT"),
    ("groupmapping-detail", "PATCH"),
    ("groupmapping-detail", "DELETE"),
}

CALLERS = ["owner", "viewer", "outsider"]


def _served_endpoints() -> set[tuple[str, str]]:
    """Every (URL name, method) the /api/v1/ URL configuration serves, from the router's
    registry (with each viewset's @actions) and the extra paths."""
    served: set[tuple[str, str]] = set()

    def walk(patterns: list[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
                continue
            assert isinstance(pattern, URLPattern)
            callback: Any = pattern.callback
            cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            names = list(getattr(cls, "http_method_names", []))
            allowed = {m.upper() for m in names}
            actions = getattr(callback, "actions", None)
            if actions is not None:
                methods = {m.upper() for m in actions}
            else:
                methods = {m.upper() for m in names if hasattr(cls, m)}
            for method in methods & allowed - {"HEAD", "OPTIONS"}:
                served.add((str(pattern.name), method))

    walk(list(api_urls.urlpatterns))
    return served


def test_every_endpoint_is_in_the_matrix() -> None:
    # every viewset of the router is served, with all its @actions
    served = _served_endpoints()
    for prefix, viewset, basename in api_urls.router.registry:
        view: Any = viewset
        for extra in view.get_extra_actions():
            action: Any = extra
            for method in action.mapping:
                name = f"{basename}-{action.url_name}"
                allowed = {m.upper() for m in view.http_method_names}
                if method.upper() in allowed:
                    assert (name, method.upper()) in served, (prefix, name, method)
    covered = (
        {endpoint.key for endpoint in ENDPOINTS}
        | AGENT_ENDPOINTS
        | PERSONAL_ENDPOINTS
        | ADMINISTRATOR_ENDPOINTS
        | SIGNED_ENDPOINTS
    )
    missing = sorted(served - covered)
    assert not missing, f"endpoints without cross-team coverage: {missing}"
    stale = sorted(covered - served)
    assert not stale, f"matrix entries for endpoints that are not served: {stale}"
    assert len({e.key for e in ENDPOINTS}) == len(ENDPOINTS), "an endpoint is in twice"


def test_matrix_paths_resolve_to_their_routes() -> None:
    values = {
        "cluster": "c",
        "edge": "e",
        "set": "s",
        "template": "t",
        "budget": "b",
        "app": "a",
        "operation": "00000000-0000-0000-0000-000000000000",
        "audit": 1,
        "team": "t",
        "policy": "p",
        "evaluation": 1,
        "definition": "d",
        "report": 1,
        "channel": 1,
        "delivery": 1,
        "alertrule": 1,
        "alert": 1,
        "silence": 1,
        "git": 1,
        "strategy": 1,
        "window": 1,
        "run": "00000000-0000-0000-0000-000000000000",
    }
    for endpoint in ENDPOINTS:
        path = (API + endpoint.path.format(**values)).split("?")[0]
        assert resolve(path).url_name == endpoint.route, endpoint


def _cases() -> list[Any]:
    cases = []
    for endpoint in ENDPOINTS:
        variants = ["valid"] if endpoint.minimal is None else ["valid", "minimal"]
        for caller in CALLERS:
            for variant in variants if endpoint.kind == "write" else ["valid"]:
                suffix = (
                    f"-{variant}"
                    if endpoint.kind == "write" and endpoint.minimal is not None
                    else ""
                )
                case_id = f"{endpoint.route}-{endpoint.method}-{caller}{suffix}"
                if endpoint.kind == "write" and caller == "owner" and variant == "minimal":
                    continue  # the owner's minimal body only tests validation
                cases.append(pytest.param(endpoint, caller, variant, id=case_id))
    return cases


def _request(client: APIClient, method: str, path: str, body: dict[str, Any] | None) -> Any:
    call: Callable[..., Any] = getattr(client, method.lower())
    if method in ("GET", "DELETE"):
        return call(path)
    return call(path, body if body is not None else {}, format="json")


def _denied_recorded(user: Any, method: str, path: str) -> bool:
    return AuditEvent.objects.filter(
        action="request.denied",
        outcome="denied",
        actor_name=user.username,
        request_method=method,
        request_path=path.split("?")[0],
    ).exists()


@pytest.mark.parametrize(("endpoint", "caller", "variant"), _cases())
def test_cross_team(world: World, endpoint: Endpoint, caller: str, variant: str) -> None:
    user = world.callers[caller]
    path = API + endpoint.path.format(**world.values())
    body = endpoint.body if variant == "valid" else endpoint.minimal
    response = _request(token_client(user), endpoint.method, path, body)
    status = response.status_code
    shown = (
        f"{endpoint.method} {path} as {caller} ({variant}) -> {status}: {response.content[:400]!r}"
    )

    # never a server error
    assert status < 500, shown
    # every refusal is audited
    if status == 403:
        assert _denied_recorded(user, endpoint.method, path), "403 not audited: " + shown

    if endpoint.kind == "read":
        _check_read(world, endpoint, caller, response, shown)
    else:
        _check_write(endpoint, caller, variant, status, shown)


def _check_read(world: World, endpoint: Endpoint, caller: str, response: Any, shown: str) -> None:
    status = response.status_code
    body = response.content.decode()
    if endpoint.scope == "global":
        assert 200 <= status < 300, shown
        return
    if endpoint.scope == "detail":
        if caller == "outsider" or (caller == "viewer" and not endpoint.viewer_reads):
            assert status == 404, shown
        else:
            assert 200 <= status < 300, shown
        return
    # a list: the caller sees its own teams' objects and nothing of another team's
    assert 200 <= status < 300, shown
    if caller == "outsider":
        assert A not in body, "team A's objects in the outsider's list: " + shown
        assert str(world.a.operation.pk) not in body, shown
        assert B in body, "the outsider's own objects are missing (no control): " + shown
    elif endpoint.viewer_reads or caller == "owner":
        assert A in body, "team A's objects are missing: " + shown
        assert B not in body, "team B's objects in team A's list: " + shown
    else:
        assert A not in body and B not in body, shown


def _check_write(endpoint: Endpoint, caller: str, variant: str, status: int, shown: str) -> None:
    if endpoint.scope == "global":
        # only Keelson's administrators (superusers) create teams and list prices
        assert status == 403, shown
        return
    if caller == "owner":
        # team A's admin is allowed
        if endpoint.owner_may_400 and status == 400:
            return
        assert 200 <= status < 300, shown
        return
    if caller == "viewer":
        assert status == 403, (
            "a viewer's write must be refused as forbidden"
            + (" before its body is validated" if variant == "minimal" else "")
            + ": "
            + shown
        )
        return
    # the outsider
    if endpoint.scope == "detail":
        assert status == 404, shown
    else:
        assert status in (403, 404), (
            "a write naming another team's object must be refused (and audited): " + shown
        )


# --------------------------------------------------- cross-team references inside bodies


def test_outsider_cannot_attach_another_teams_cluster_set_to_a_budget(world: World) -> None:
    """A budget of team B over team A's cluster set would show team A's spend."""
    outsider = token_client(world.callers["outsider"])
    response = outsider.post(
        API + "budgets/",
        {
            "name": "tenantb-spy",
            "team": B,
            "cluster_set": world.a.cluster_set.pk,
            "monthly_amount": "1",
        },
        format="json",
    )
    spent = ""
    if response.status_code == 201:  # then show what it gives away
        spent = outsider.get(API + "budgets/tenantb-spy/").json()["status"]["spent"]
    assert response.status_code in (400, 403, 404), (
        f"{response.content!r}; the budget then shows team A's spend: {spent}"
    )
    assert not Budget.objects.filter(name="tenantb-spy").exists()


def test_outsider_cannot_price_with_another_teams_rate_card(world: World) -> None:
    """Pricing team B's cluster with team A's rate card uses (and reveals) A's prices."""
    outsider = token_client(world.callers["outsider"])
    response = outsider.post(
        API + "cluster-pricing/",
        {"cluster": world.b.push.name, "valid_from": _today(), "rate_card": world.a.rate_card.name},
        format="json",
    )
    assert response.status_code in (400, 403, 404), response.content
    assert not ClusterPricing.objects.filter(
        cluster=world.b.push, rate_card=world.a.rate_card.name
    ).exists()


def test_outsider_cannot_add_another_teams_cluster_to_a_set(world: World) -> None:
    outsider = token_client(world.callers["outsider"])
    response = outsider.post(
        API + "cluster-sets/",
        {"name": "tenantb-grab", "team_name": B, "members": [world.a.push.name]},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert not ClusterSet.objects.filter(name="tenantb-grab").exists()


def test_outsider_cannot_scope_a_policy_or_report_to_another_teams_objects(world: World) -> None:
    outsider = token_client(world.callers["outsider"])
    policy = outsider.post(
        API + "policies/",
        {
            "name": "tenantb-spy",
            "team": B,
            "cluster_sets": [world.a.cluster_set.name],
            "rules": [RULE],
        },
        format="json",
    )
    assert policy.status_code == 400, policy.content
    for scope, value in [("cluster_set", world.a.cluster_set.name), ("cluster", world.a.push.name)]:
        report = outsider.post(
            API + "report-definitions/",
            {"name": "tenantb-spy", "team_name": B, "scope": scope, "scope_value": value},
            format="json",
        )
        assert report.status_code == 400, report.content
    assert not Policy.objects.filter(name="tenantb-spy").exists()
    assert not ReportDefinition.objects.filter(name="tenantb-spy").exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("clusters/", {"name": "tenanta-push", "team": A, "mode": "pull"}),
        ("cluster-sets/", {"name": "tenanta-set", "team_name": A}),
        ("cluster-templates/", {"name": "tenanta-tpl", "team": A, "spec": SPEC}),
        ("budgets/", {"name": "tenanta-budget", "team": A, "monthly_amount": "1"}),
        (
            "applications/",
            {"name": "tenanta-app", "team": A, "namespace": "x", "manifests": MANIFESTS},
        ),
    ],
    ids=["cluster", "cluster-set", "template", "budget", "application"],
)
def test_outsider_cannot_probe_team_a_names(world: World, path: str, body: dict[str, Any]) -> None:
    """A create naming team A and one of its existing objects is answered exactly as the
    same create with a name nobody uses: otherwise the answer tells the name exists."""
    outsider = token_client(world.callers["outsider"])
    existing = outsider.post(API + path, body, format="json")
    fresh = outsider.post(API + path, {**body, "name": "tenanta-unused"}, format="json")
    assert existing.status_code < 500 and fresh.status_code < 500
    assert (existing.status_code, existing.json()) == (fresh.status_code, fresh.json()), (
        f"existing name -> {existing.status_code} {existing.content!r}; "
        f"unused name -> {fresh.status_code} {fresh.content!r}"
    )


def test_a_denied_detail_request_names_no_object(world: World) -> None:
    """The outsider's 404 for team A's cluster is the same as for a cluster that does not
    exist (no existence oracle)."""
    outsider = token_client(world.callers["outsider"])
    real = outsider.get(API + f"clusters/{world.a.push.name}/")
    missing = outsider.get(API + "clusters/no-such-cluster/")
    assert real.status_code == missing.status_code == 404
    assert real.json() == missing.json()


# ---------------------------------------------------------------------- agent endpoints

AGENT_REQUESTS = [
    ("agent-cleanup", "POST", "agent/cleanup"),
    ("agent-policies", "GET", "agent/policies"),
    ("agent-policies", "POST", "agent/policies"),
    ("agent-enroll", "POST", "agent/enroll"),
    ("agent-heartbeat", "POST", "agent/heartbeat"),
    ("agent-rotate", "POST", "agent/rotate"),
    ("agent-work", "GET", "agent/work"),
    ("agent-work", "POST", "agent/work"),
]


@pytest.fixture
def no_agent_throttle() -> None:
    """The agent token endpoints are rate-limited per address; start from zero."""
    cache.delete("throttle_agent-token_127.0.0.1")


@pytest.mark.parametrize("auth", ["token", "session", "user-token-as-bearer"])
@pytest.mark.parametrize(
    ("route", "method", "path"), AGENT_REQUESTS, ids=[r[0] for r in AGENT_REQUESTS]
)
def test_agent_endpoints_refuse_user_credentials(
    world: World, no_agent_throttle: None, route: str, method: str, path: str, auth: str
) -> None:
    owner = world.callers["owner"]
    token, _ = Token.objects.get_or_create(user=owner)
    client = APIClient()
    if auth == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    elif auth == "session":
        client.force_login(owner)
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    body: dict[str, Any] = {"inventory": {}}
    if route == "agent-enroll":
        body = {"bootstrap_token": token.key}  # a user's token is no bootstrap token
    response = _request(client, method, API + path, body)
    assert response.status_code == 401, response.content
    assert (
        _denied_recorded(owner, method, API + path)
        or AuditEvent.objects.filter(action="request.denied", request_path=API + path).exists()
    )


def test_team_b_agent_gets_only_its_own_cluster_work(world: World, no_agent_throttle: None) -> None:
    b_agent = APIClient()
    b_agent.credentials(HTTP_AUTHORIZATION=f"Bearer {world.b.edge_agent_token}")
    response = b_agent.get(API + "agent/work")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["cluster"] == world.b.edge.name
    assert A not in response.content.decode()
    assert [o["metadata"].get("namespace") for o in body["objects"] if o["kind"] != "Namespace"]
    assert all(
        o["metadata"].get("namespace", o["metadata"]["name"]) == world.b.application.namespace
        for o in body["objects"]
    )
    # and team A's agent sees team A's work (a control for the above)
    a_agent = APIClient()
    a_agent.credentials(HTTP_AUTHORIZATION=f"Bearer {world.a.edge_agent_token}")
    a_work = a_agent.get(API + "agent/work")
    assert a_work.status_code == 200
    assert a_work.json()["cluster"] == world.a.edge.name
    assert B not in a_work.content.decode()


def test_team_b_agent_cannot_report_work_status_for_team_a(
    world: World, no_agent_throttle: None
) -> None:
    from applications.models import ClusterWork

    before = list(ClusterWork.objects.filter(cluster=world.a.edge).values())
    b_agent = APIClient()
    b_agent.credentials(HTTP_AUTHORIZATION=f"Bearer {world.b.edge_agent_token}")
    report = {
        "applications": {
            world.a.application.name: {
                "version": "1",
                "desired": 9,
                "available": 9,
                "complete": True,
            }
        }
    }
    response = b_agent.post(API + "agent/work", report, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"cluster": world.b.edge.name, "updated": 0}
    assert list(ClusterWork.objects.filter(cluster=world.a.edge).values()) == before


def test_team_b_agent_cannot_report_for_team_a(world: World, no_agent_throttle: None) -> None:
    before = Cluster.objects.get(pk=world.a.edge.pk)
    b_agent = APIClient()
    b_agent.credentials(HTTP_AUTHORIZATION=f"Bearer {world.b.edge_agent_token}")
    # a heartbeat names no cluster: it is always the token's own
    beat = b_agent.post(API + "agent/heartbeat", {"inventory": {}}, format="json")
    assert beat.status_code < 500, beat.content
    if beat.status_code == 200:
        assert beat.json()["cluster"] == world.b.edge.name
    after = Cluster.objects.get(pk=world.a.edge.pk)
    assert after.last_seen_at == before.last_seen_at
    assert after.status == before.status
    # rotating gives a token for its own cluster only
    rotated = b_agent.post(API + "agent/rotate")
    assert rotated.status_code == 201, rotated.content
    assert rotated.json()["cluster"] == world.b.edge.name
    # the old token stops working once the new one is used, team A's keeps working
    b_new = APIClient()
    b_new.credentials(HTTP_AUTHORIZATION=f"Bearer {rotated.json()['agent_token']}")
    assert b_new.get(API + "agent/work").json()["cluster"] == world.b.edge.name
    assert b_agent.get(API + "agent/work").status_code == 401
    # it is given its own team's policies only, and a result for team A's is not stored
    listed = b_new.get(API + "agent/policies").json()["policies"]
    assert world.a.policy.pk not in {p["id"] for p in listed}
    forged = {"policy": world.a.policy.pk, "generation": world.a.policy.generation}
    report = b_new.post(API + "agent/policies", {"results": [forged]}, format="json")
    assert report.json() == {"cluster": world.b.edge.name, "stored": 0, "stale": 1, "actions": 0}
    a_agent = APIClient()
    a_agent.credentials(HTTP_AUTHORIZATION=f"Bearer {world.a.edge_agent_token}")
    assert a_agent.get(API + "agent/work").status_code == 200


def test_team_a_bootstrap_token_is_not_an_agent_token(
    world: World, no_agent_throttle: None
) -> None:
    # a fresh bootstrap token for team A's cluster, by its admin
    owner = token_client(world.callers["owner"])
    issued = owner.post(API + f"clusters/{world.a.edge.name}/bootstrap-token/")
    assert issued.status_code == 201, issued.content
    bootstrap = issued.json()["bootstrap_token"]
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {bootstrap}")
    assert agent.get(API + "agent/work").status_code == 401
    # team B's agent token cannot be exchanged as a bootstrap token either
    enroll = APIClient().post(
        API + "agent/enroll", {"bootstrap_token": world.b.edge_agent_token}, format="json"
    )
    assert enroll.status_code == 401, enroll.content
    assert world.a.edge.mode == ClusterMode.PULL
