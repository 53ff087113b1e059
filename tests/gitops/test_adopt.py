"""Adoption: a repository with `adopt: true` takes over the team's objects made outside
Git when it declares them (the plan says "adopt", with the diff), audited; without it,
or when another repository owns them, they stay conflicts."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command

from accounts.models import Team
from applications.models import Application
from applications.services import application_create
from audit.models import AuditEvent
from clusters.models import ClusterSet
from clusters.services.lifecycle import cluster_set_save
from costs.budgets import budget_create
from costs.models import Budget, RateCard
from gitops.choices import SyncResult
from policies.models import ReportDefinition
from policies.services.reports import ReportSpec, report_definition_save
from tests.factories import Member
from tests.gitops.conftest import GitServer
from tests.gitops.test_export import MANIFESTS
from tests.gitops.test_sync import API, register, run, web

pytestmark = pytest.mark.django_db


def test_an_application_made_in_the_api_is_adopted_only_when_the_repository_says_so(
    owner: Member, git_server: GitServer
) -> None:
    # given: an application created through the API, then declared (newer image) in git
    manifests = web().split("manifests: |\n")[1].split("---\n")[0]
    manifests = "\n".join(line[4:] for line in manifests.splitlines()) + "\n"
    created = owner.api.post(
        "/api/v1/applications/",
        {
            "name": "web",
            "team": "payments",
            "namespace": "shop",
            "description": "made by hand",
            "manifests": manifests,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    head = git_server.commit({"fleet/web.yaml": web("nginx:1.26")})
    repo = register(owner, git_server)

    # when: synced with adopt off (the default)
    sync = run(owner, repo["id"])

    # then: a conflict, and nothing changed
    assert sync.result == SyncResult.FAILED
    assert sync.errors == [
        "fleet/web.yaml:1: Application web exists and is not managed by this repository; "
        "adopt: true on the repository takes it over"
    ]
    application = Application.objects.get(name="web")
    assert application.managed_by is None and application.versions.count() == 1

    # when: adopt is turned on, previewed, then synced
    turned = owner.api.patch(f"{API}{repo['id']}/", {"adopt": True}, format="json")
    assert turned.status_code == 200 and turned.json()["adopt"] is True
    preview = run(owner, repo["id"], "preview")
    sync = run(owner, repo["id"])

    # then: the plan said adopt, with what changes
    (planned,) = preview.plan
    assert planned["action"] == "adopt"
    assert sorted(planned["diff"]) == ["description", "manifests", "placement"]
    assert planned["diff"]["description"] == {"old": "made by hand", "new": ""}
    assert (sync.result, sync.errors) == (SyncResult.APPLIED, [])
    # and the application is the repository's, changed as declared
    application.refresh_from_db()
    assert application.managed_by == {"repository": repo["id"], "name": "fleet", "commit": head}
    assert application.description == "" and application.placement.spec == {"selector": "env=prod"}
    assert application.versions.count() == 2
    assert 'image: "nginx:1.26"' in application.versions.first().manifests  # type: ignore[union-attr]
    adopted = AuditEvent.objects.get(action="gitrepository.adopt")
    assert (adopted.actor_name, adopted.target_id) == (
        "git-repository:payments/fleet",
        str(application.pk),
    )
    assert adopted.detail["kind"] == "Application"
    assert (
        owner.api.patch(
            "/api/v1/applications/web/", {"description": "x"}, format="json"
        ).status_code
        == 409
    )
    assert run(owner, repo["id"]).result == SyncResult.UNCHANGED

    # when: another repository that adopts declares the same application
    other = register(owner, git_server, name="other", adopt=True)
    sync = run(owner, other["id"])

    # then: what a repository owns is never taken over
    assert sync.errors == [
        "fleet/web.yaml:1: Application web exists and is not managed by this repository"
    ]


def test_a_team_exported_and_committed_is_adopted_unchanged(
    owner: Member, git_server: GitServer
) -> None:
    # given: a team's objects of every kind, made outside Git (a rate card in effect
    # since the start of the year: its versions are history)
    team = Team.objects.get(name="payments")
    prod = cluster_set_save(
        actor=None, cluster_set=ClusterSet(team=team, name="prod", selector="env=prod")
    )
    application_create(
        actor=None,
        team=team,
        name="api",
        namespace="shop",
        manifests=MANIFESTS,
        placement={"selector": "env=prod"},
        overrides=[{"selector": "env=prod", "replicas": 2}],
        rollout={"strategy": "rolling"},
    )
    RateCard.objects.create(
        team=team, name="edge", valid_from=date(2026, 1, 1), cpu_core_hour=1, ram_gb_hour=1
    )
    budget_create(
        actor=None, team=team, name="payments-monthly", monthly_amount="900", cluster_set=prod
    )
    report_definition_save(team=team, spec=ReportSpec(name="weekly", formats=["csv"]), actor=None)
    call_command("fleet_export", "--team", "payments", "--output", str(git_server.work / "fleet"))
    head = git_server.commit({}, "exported")
    repo = register(owner, git_server, adopt=True)

    # when
    sync = run(owner, repo["id"])

    # then: each object adopted as it is, none changed
    assert (sync.result, sync.errors) == (SyncResult.APPLIED, [])
    assert sorted((c["action"], c["kind"], c["name"], str(c["diff"])) for c in sync.plan) == [
        ("adopt", "Application", "api", "{}"),
        ("adopt", "Budget", "payments-monthly", "{}"),
        ("adopt", "ClusterSet", "prod", "{}"),
        ("adopt", "RateCard", "edge", "{}"),
        ("adopt", "ReportDefinition", "weekly", "{}"),
    ]
    marker = {"repository": repo["id"], "name": "fleet", "commit": head}
    for model in (Application, Budget, ClusterSet, RateCard, ReportDefinition):
        assert [o.managed_by for o in model.objects.all()] == [marker], model
    assert AuditEvent.objects.filter(action="gitrepository.adopt").count() == 5
    assert Application.objects.get().versions.count() == 1
    assert run(owner, repo["id"]).result == SyncResult.UNCHANGED
