"""Query budgets of the API's list endpoints (issue 22, item 7).

Every list route of `/api/v1/` answers in a number of queries that does not depend on how
many rows it lists: the test lists N rows, then 3N, and the two responses must have run
the same number of queries. A serializer field that reads a relation per row (the
application list read each application's newest version with a query of its own) makes
the second count larger by at least 2N.

The same holds for the lists a detail route serves (a team's members, an application's
versions, a cluster's timeline...). `test_every_list_route_has_a_budget` and
`test_every_nested_list_has_a_budget` keep the tables complete: a new list route that
nobody seeded here fails them.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.choices import Role
from accounts.models import GroupMapping, Team
from accounts.tokens import api_token_create
from alerts.models import Alert
from alerts.services.lifecycle import alert_acknowledge, rule_evaluate
from alerts.services.rules import RuleSpec, alert_rule_create
from alerts.services.silences import silence_create
from applications.models import Application, PlacementDecision
from applications.propagation import work_target
from applications.services import application_create, application_version_add
from audit.services import audit_record
from clusters.models import ClusterSet, ClusterTemplate, ClusterTransition
from costs.models import Budget, ClusterPricing, InstancePrice, RateCard
from gitops.models import GitObject, GitRepository, GitSync
from notifications.models import Channel, Delivery
from operations.models import OperationLogLine
from operations.services import operation_create
from policies.models import ClusterSetPin, ComplianceReport, ReportDefinition, ReportFile
from policies.services.cluster_modes import policy_cluster_modes_set
from policies.services.policies import PolicySpec, policy_create
from tests.factories import (
    Member,
    add_member,
    make_cluster,
    make_evaluation,
    make_team,
    make_user,
)
from updates.models import (
    MaintenanceWindow,
    UpdateRun,
    UpdateRunCluster,
    UpdateRunStage,
    UpdateStrategy,
)

N = 3
API = "/api/v1/"

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


@dataclass
class Owner:
    """The caller: admin of `team`, so every list shows it the rows seeded in `team`."""

    user: Any
    team: Team


Seeder = Callable[[Owner, int], None]  # adds one row numbered `i`, visible to the owner


def _team(owner: Owner, i: int) -> None:
    add_member(make_team(name=f"extra-{i}"), owner.user, Role.VIEWER)


def _token(owner: Owner, i: int) -> None:
    api_token_create(user=owner.user, name=f"token-{i}", scope="read")


def _cluster(owner: Owner, i: int) -> None:
    make_cluster(team=owner.team, name=f"c-{i}", labels={"tier": "web"})


def _cluster_set(owner: Owner, i: int) -> None:
    cluster_set = ClusterSet.objects.create(name=f"set-{i}", team=owner.team, selector="tier=web")
    cluster_set.members.add(make_cluster(team=owner.team, name=f"member-{i}"))


def _pss_pin(owner: Owner, i: int) -> None:
    """A cluster set, pinned to a Pod Security Standards version every other row."""
    cluster_set = ClusterSet.objects.create(name=f"pinned-{i}", team=owner.team)
    if i % 2:
        ClusterSetPin.objects.create(cluster_set=cluster_set, pss_version="v1.29")


def _template(owner: Owner, i: int) -> None:
    ClusterTemplate.objects.create(
        name=f"tpl-{i}", team=owner.team, spec=SPEC, created_by=owner.user
    )


def _instance_price(owner: Owner, i: int) -> None:
    InstancePrice.objects.create(
        provider="other",
        region="",
        instance_type=f"type-{i}",
        hourly=Decimal("0.04"),
        valid_from=timezone.now().date(),
    )


def _rate_card(owner: Owner, i: int) -> None:
    RateCard.objects.create(
        name=f"card-{i}",
        team=owner.team,
        valid_from=timezone.now().date(),
        cpu_core_hour=Decimal("0.03"),
        ram_gb_hour=Decimal("0.004"),
    )


def _cluster_pricing(owner: Owner, i: int) -> None:
    cluster = make_cluster(team=owner.team, name=f"priced-{i}")
    ClusterPricing.objects.create(
        cluster=cluster, valid_from=timezone.now().date(), created_by=owner.user
    )


def _budget(owner: Owner, i: int) -> None:
    cluster_set = ClusterSet.objects.create(name=f"budget-set-{i}", team=owner.team)
    Budget.objects.create(
        name=f"budget-{i}", team=owner.team, cluster_set=cluster_set, monthly_amount=100
    )


def _application(owner: Owner, i: int) -> None:
    application_create(
        actor=owner.user,
        team=owner.team,
        name=f"app-{i}",
        namespace=f"app-{i}",
        manifests=MANIFESTS,
        placement={"selector": "tier=web"},
    )


def _operation(owner: Owner, i: int) -> None:
    operation_create(
        kind="cluster.provision",
        created_by=owner.user,
        team=owner.team,
        target=make_cluster(team=owner.team, name=f"op-{i}"),
    )


def _audit_event(owner: Owner, i: int) -> None:
    audit_record(actor=owner.user, action="test.seed", team=owner.team, detail={"i": i})


def _policy(owner: Owner, i: int) -> None:
    policy = policy_create(
        team=owner.team,
        spec=PolicySpec(name=f"policy-{i}", cluster_selector="tier=web", rules=[RULE]),
        actor=owner.user,
    )
    # enforcing on one cluster: the list names it (`cluster_modes`)
    cluster = make_cluster(team=owner.team, name=f"policy-web-{i}", labels={"tier": "web"})
    policy_cluster_modes_set(actor=owner.user, policy=policy, clusters=[cluster], mode="enforce")


def _evaluation(owner: Owner, i: int) -> None:
    policy = policy_create(
        team=owner.team,
        spec=PolicySpec(name=f"evaluated-{i}", cluster_selector="tier=web", rules=[RULE]),
        actor=owner.user,
    )
    cluster = make_cluster(team=owner.team, name=f"evaluated-{i}")
    make_evaluation(policy=policy, cluster=cluster, status="compliant", at=timezone.now())


def _report_definition(owner: Owner, i: int) -> None:
    ReportDefinition.objects.create(
        team=owner.team, name=f"report-{i}", formats=["json"], created_by=owner.user
    )


def _report(owner: Owner, i: int) -> None:
    definition = ReportDefinition.objects.create(
        team=owner.team, name=f"generated-{i}", formats=["json"], created_by=owner.user
    )
    now = timezone.now()
    report = ComplianceReport.objects.create(
        definition=definition,
        period_start=now - datetime.timedelta(days=7),
        period_end=now,
        data={"run": str(uuid.uuid4())},
    )
    ReportFile.objects.create(
        report=report, format="json", content_type="application/json", content=b"{}", size=2
    )


def _alert_rule(owner: Owner, i: int) -> None:
    cluster_set = ClusterSet.objects.create(name=f"rule-set-{i}", team=owner.team)
    alert_rule_create(
        actor=owner.user,
        team=owner.team,
        spec=RuleSpec(name=f"rule-{i}", kind="cluster_status", cluster_set=cluster_set.name),
    )


def _alert(owner: Owner, i: int) -> None:
    rule = alert_rule_create(
        actor=None, team=owner.team, spec=RuleSpec(name=f"down-{i}", kind="cluster_status")
    )
    cluster = make_cluster(team=owner.team, name=f"down-{i}", status="unreachable")
    rule_evaluate(rule=rule, cluster_ids=[cluster.pk])
    alert = Alert.objects.get(rule=rule)
    alert_acknowledge(actor=owner.user, alert=alert)


def _silence(owner: Owner, i: int) -> None:
    silence_create(
        actor=owner.user,
        team=owner.team,
        matchers=[f"cluster=c-{i}"],
        comment=f"silence {i}",
        ends_at=timezone.now() + datetime.timedelta(hours=1),
    )


def _git_repository(owner: Owner, i: int) -> None:
    GitRepository.objects.create(team=owner.team, name=f"git-{i}", url="git://192.0.2.1/x.git")


def _git_sync(owner: Owner, repository: Any, i: int) -> None:
    GitSync.objects.create(repository=repository, trigger="manual", plan=[{"i": i}])


def _git_object(owner: Owner, repository: Any, i: int) -> None:
    GitObject.objects.create(
        repository=repository, kind="Application", name=f"app-{i}", commit="0" * 40
    )


def _channel(owner: Owner, i: int) -> None:
    Channel.objects.create(
        team=owner.team, name=f"channel-{i}", kind="email", config={"recipients": ["a@b.example"]}
    )


def _delivery(owner: Owner, i: int, state: str = "pending") -> None:
    channel, _ = Channel.objects.get_or_create(
        team=owner.team,
        name="deliveries",
        defaults={"kind": "email", "config": {"recipients": ["ops@b.example"]}},
    )
    Delivery.objects.create(
        channel=channel,
        team=owner.team,
        group_key=f"group-{i}",
        status="firing",
        severity="critical",
        title=f"cluster {i} down",
        payload={"team_id": owner.team.pk, "group_key": f"group-{i}", "alerts": []},
        state=state,
    )


def _group_mapping(owner: Owner, i: int) -> None:
    # group mappings are listed to superusers only: the caller is made one
    if not owner.user.is_superuser:
        owner.user.is_superuser = True
        owner.user.save(update_fields=["is_superuser"])
    GroupMapping.objects.create(group=f"group-{i}", team=owner.team, role="viewer")


STAGES = [{"name": "all", "groups": [{"name": "g", "selector": "tier=web"}]}]


def _update_strategy(owner: Owner, i: int) -> None:
    UpdateStrategy.objects.create(team=owner.team, name=f"strategy-{i}", stages=STAGES)


def _maintenance_window(owner: Owner, i: int) -> None:
    cluster_set = ClusterSet.objects.create(name=f"window-set-{i}", team=owner.team)
    MaintenanceWindow.objects.create(
        team=owner.team,
        name=f"window-{i}",
        cluster_set=cluster_set,
        days=[6],
        start_time=datetime.time(2),
        duration_minutes=120,
        timezone="Europe/Berlin",
    )


def _update_run(owner: Owner, i: int) -> None:
    """A run with a stage approved by the owner and two clusters."""
    strategy, _ = UpdateStrategy.objects.get_or_create(
        team=owner.team, name="runs", defaults={"stages": STAGES}
    )
    run = UpdateRun.objects.create(
        team=owner.team,
        name=f"run-{i}",
        strategy=strategy,
        stages=STAGES,
        change_kind="node_pool",
        created_by=owner.user,
    )
    UpdateRunStage.objects.create(run=run, index=0, name="all", approved_by=owner.user)
    for j in range(2):
        cluster = make_cluster(team=owner.team, name=f"run-{i}-{j}")
        UpdateRunCluster.objects.create(
            run=run,
            stage_index=0,
            group="g",
            position=j,
            cluster=cluster,
            cluster_name=cluster.name,
        )


# Router basename -> how to add one row its list shows the owner.
SEEDERS: dict[str, Seeder] = {
    "team": _team,
    "apitoken": _token,
    "cluster": _cluster,
    "clusterset": _cluster_set,
    "psspin": _pss_pin,
    "clustertemplate": _template,
    "instanceprice": _instance_price,
    "ratecard": _rate_card,
    "clusterpricing": _cluster_pricing,
    "budget": _budget,
    "application": _application,
    "operation": _operation,
    "auditevent": _audit_event,
    "policy": _policy,
    "policyevaluation": _evaluation,
    "reportdefinition": _report_definition,
    "compliancereport": _report,
    "alertrule": _alert_rule,
    "alert": _alert,
    "silence": _silence,
    "gitrepository": _git_repository,
    "notificationchannel": _channel,
    "notificationdelivery": _delivery,
    "groupmapping": _group_mapping,
    "updatestrategy": _update_strategy,
    "maintenancewindow": _maintenance_window,
    "updaterun": _update_run,
}
# List routes with no rows in the database to grow.
NO_ROWS = {"provider": "the providers and instance types are constants of the code"}


def _list_routes() -> dict[str, str]:
    """Basename -> path of every `<basename>-list` route under /api/v1/."""
    routes: dict[str, str] = {}

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                name = pattern.name or ""
                path = (prefix + str(pattern.pattern)).replace("^", "").replace("$", "")
                if name.endswith("-list") and path.startswith("api/v1/") and "format" not in path:
                    routes[name.removesuffix("-list")] = "/" + path

    walk(get_resolver().url_patterns, "")
    return routes


def test_every_list_route_has_a_budget() -> None:
    routes = _list_routes()
    assert routes["application"] == "/api/v1/applications/"  # the walk reads real paths
    assert set(routes) == set(SEEDERS) | set(NO_ROWS)


def _listed(client: APIClient, path: str) -> tuple[int, int]:
    """(queries run, rows counted) for one GET of the list."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, {"limit": 500})
    assert response.status_code == 200, response.content[:300]
    return len(queries), response.json()["count"]


@pytest.fixture
def caller(owner: Member, team: Team, settings: Any) -> Owner:
    """The shared fixtures' team admin (tests/conftest.py), with their team."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # seeded users
    return Owner(user=owner.user, team=team)


@pytest.mark.parametrize("basename", sorted(SEEDERS))
def test_list_queries_do_not_grow_with_rows(caller: Owner, basename: str) -> None:
    owner = caller
    # given N rows the owner sees
    seed = SEEDERS[basename]
    path = _list_routes()[basename]
    client = APIClient()
    client.force_authenticate(owner.user)
    for i in range(N):
        seed(owner, i)
    few_queries, few_rows = _listed(client, path)
    # when there are 3N
    for i in range(N, 3 * N):
        seed(owner, i)
    many_queries, many_rows = _listed(client, path)
    # then the list shows 2N more rows for the same number of queries
    assert many_rows - few_rows == 2 * N, (few_rows, many_rows)
    assert many_queries == few_queries, (
        f"{path}: {few_queries} queries for {few_rows} rows, {many_queries} for {many_rows}"
    )


# ------------------------------------------------------------------ lists of a detail route


@dataclass
class Nested:
    """A list served by a detail route: `parent` makes the object (named in `path`),
    `add` one more row of its list."""

    path: str
    parent: Callable[[Owner], Any]
    add: Callable[[Owner, Any, int], None]


def _app(owner: Owner) -> Any:
    _application(owner, 0)
    return Application.objects.get(team=owner.team)


def _member(owner: Owner, parent: Any, i: int) -> None:
    add_member(owner.team, make_user(), Role.VIEWER)


def _version(owner: Owner, app: Any, i: int) -> None:
    application_version_add(actor=owner.user, application=app, manifests=MANIFESTS)


def _work(owner: Owner, app: Any, i: int) -> None:
    cluster = make_cluster(team=owner.team, name=f"runs-{i}")
    work_target(application=app, cluster=cluster, version=1, replicas=1)


def _decision(owner: Owner, app: Any, i: int) -> None:
    PlacementDecision.objects.create(
        application=app, version=i + 1, application_version=1, decision={"clusters": []}
    )


def _transition(owner: Owner, cluster: Any, i: int) -> None:
    ClusterTransition.objects.create(
        cluster=cluster, at=timezone.now(), from_status="pending", to_status="ready"
    )


def _set_member(owner: Owner, cluster_set: Any, i: int) -> None:
    cluster_set.members.add(make_cluster(team=owner.team, name=f"in-set-{i}"))


def _log_line(owner: Owner, operation: Any, i: int) -> None:
    OperationLogLine.objects.create(operation=operation, text=f"line {i}")


def _result(owner: Owner, policy: Any, i: int) -> None:
    cluster = make_cluster(team=owner.team, name=f"judged-{i}", labels={"tier": "web"})
    make_evaluation(policy=policy, cluster=cluster, status="noncompliant", at=timezone.now())


def _new_policy(owner: Owner) -> Any:
    return policy_create(
        team=owner.team,
        spec=PolicySpec(name="judge", cluster_selector="tier=web", rules=[RULE]),
        actor=owner.user,
    )


# Route name -> the list it serves.
NESTED: dict[str, Nested] = {
    "team-members": Nested("teams/{team}/members/", lambda owner: owner.team, _member),
    "application-versions": Nested("applications/app-0/versions/", _app, _version),
    "application-status": Nested("applications/app-0/status/", _app, _work),
    "application-decisions": Nested("applications/app-0/decisions/", _app, _decision),
    "cluster-timeline": Nested(
        "clusters/timed/timeline/",
        lambda owner: make_cluster(team=owner.team, name="timed"),
        _transition,
    ),
    "clusterset-clusters": Nested(
        "cluster-sets/grouped/clusters/",
        lambda owner: ClusterSet.objects.create(name="grouped", team=owner.team),
        _set_member,
    ),
    "operation-log": Nested(
        "operations/{pk}/log/",
        lambda owner: operation_create(kind="cluster.provision", created_by=owner.user),
        _log_line,
    ),
    "policy-results": Nested("policies/judge/results/", _new_policy, _result),
    "policy-enforce-impact": Nested("policies/judge/enforce-impact/", _new_policy, _result),
    "gitrepository-syncs": Nested(
        "git-repositories/{pk}/syncs/",
        lambda owner: GitRepository.objects.create(
            team=owner.team, name="synced", url="git://192.0.2.1/x.git"
        ),
        _git_sync,
    ),
    "gitrepository-objects": Nested(
        "git-repositories/{pk}/objects/",
        lambda owner: GitRepository.objects.create(
            team=owner.team, name="declaring", url="git://192.0.2.1/x.git"
        ),
        _git_object,
    ),
    "notificationdelivery-dead-letters": Nested(
        "notification-deliveries/dead-letters/",
        lambda owner: owner.team,
        lambda owner, team, i: _delivery(owner, i, state="dead"),
    ),
}
# GET routes of a detail object that serve one object, not a list.
NOT_LISTS = {
    "cluster-health",
    "cluster-inventory",
    "cluster-provisioning",
    "team-guardrails",
    "compliancereport-download",
    "cluster-agent-manifest",
    "cluster-push-identity-manifest",
    "updaterun-preview",
}


def _detail_get_actions() -> set[str]:
    """Names of the API's extra GET routes on one object (`@action(detail=True)`)."""
    names: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                name = pattern.name or ""
                path = prefix + str(pattern.pattern)
                actions = getattr(pattern.callback, "actions", None) or {}
                if (
                    path.replace("^", "").startswith("api/v1/")
                    and "get" in actions
                    and "(?P<" in path
                    and not name.endswith(("-list", "-detail"))
                ):
                    names.add(name)

    walk(get_resolver().url_patterns, "")
    return names


def test_every_nested_list_has_a_budget() -> None:
    found = _detail_get_actions()
    assert "cluster-timeline" in found  # the walk finds real routes
    assert found == set(NESTED) | NOT_LISTS


def _rows(body: Any) -> int:
    return int(body["count"]) if isinstance(body, dict) else len(body)


@pytest.mark.parametrize("name", sorted(NESTED))
def test_nested_list_queries_do_not_grow_with_rows(caller: Owner, name: str) -> None:
    owner = caller
    # given an object whose list has N rows
    nested = NESTED[name]
    parent = nested.parent(owner)
    path = API + nested.path.format(pk=parent.pk, team=owner.team.name)
    client = APIClient()
    client.force_authenticate(owner.user)

    def listed() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, {"limit": 500})
        assert response.status_code == 200, response.content[:300]
        return len(queries), _rows(response.json())

    for i in range(N):
        nested.add(owner, parent, i)
    few_queries, few_rows = listed()
    # when it has 3N
    for i in range(N, 3 * N):
        nested.add(owner, parent, i)
    many_queries, many_rows = listed()
    # then 2N more rows are listed for the same number of queries
    assert many_rows - few_rows == 2 * N, (few_rows, many_rows)
    assert many_queries == few_queries, (
        f"{path}: {few_queries} queries for {few_rows} rows, {many_queries} for {many_rows}"
    )
