"""RateCard, Budget and ReportDefinition documents, and an application's Overrides and
RolloutStrategy as documents of their own, synced from a real git server (git daemon on
loopback): created, changed and pruned through the services the API calls, refused to
the API and pages while a repository owns them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from applications.models import Application
from audit.models import AuditEvent
from costs.models import Budget, RateCard
from gitops.choices import SyncResult
from policies.models import ReportDefinition
from tests.factories import Member
from tests.gitops.conftest import GitServer
from tests.gitops.test_sync import register, run, web

pytestmark = pytest.mark.django_db
SETS = "apiVersion: keelson.io/v1\nkind: ClusterSet\nmetadata: {name: prod}\nspec: {}\n"


def _day(days: int) -> str:
    return str(timezone.now().date() + timedelta(days=days))


def card(*versions: tuple[int, str]) -> str:
    rows = "".join(
        f"  - {{valid_from: {_day(days)}, cpu_core_hour: {cpu}, ram_gb_hour: 0.004}}\n"
        for days, cpu in versions
    )
    head = "apiVersion: keelson.io/v1\nkind: RateCard\nmetadata: {name: edge}\n"
    return f"{head}spec:\n  versions:\n{rows}"


def budget(amount: str) -> str:
    return (
        "apiVersion: keelson.io/v1\nkind: Budget\nmetadata: {name: payments-monthly}\n"
        f"spec: {{monthly_amount: {amount}, cluster_set: prod}}\n"
    )


def report(schedule: str) -> str:
    return (
        "apiVersion: keelson.io/v1\nkind: ReportDefinition\nmetadata: {name: weekly}\n"
        f'spec: {{scope: cluster_set, scope_value: prod, formats: [csv], schedule: "{schedule}"}}\n'
    )


def test_rate_cards_budgets_and_reports_are_created_changed_refused_and_pruned(
    owner: Member, git_server: GitServer
) -> None:
    # given: a card from tomorrow, a budget and a weekly report for the prod cluster set
    first = git_server.commit(
        {
            "fleet/sets.yaml": SETS,
            "fleet/card.yaml": card((1, "0.03")),
            "fleet/budget.yaml": budget("1500"),
            "fleet/report.yaml": report("0 7 * * 1"),
        }
    )
    repo = register(owner, git_server)

    # when
    sync = run(owner, repo["id"])

    # then
    assert (sync.result, sync.errors) == (SyncResult.APPLIED, [])
    marker = {"repository": repo["id"], "name": "fleet", "commit": first}
    (version,) = RateCard.objects.filter(name="edge")
    assert (str(version.valid_from), version.cpu_core_hour) == (_day(1), Decimal("0.03"))
    assert version.managed_by == marker
    spend = Budget.objects.get(name="payments-monthly")
    assert (spend.monthly_amount, spend.cluster_set.name) == (Decimal("1500.00"), "prod")  # type: ignore[union-attr]
    assert spend.managed_by == marker
    weekly = ReportDefinition.objects.get(name="weekly")
    assert (weekly.scope, weekly.scope_value, weekly.formats) == ("cluster_set", "prod", ["csv"])
    assert weekly.managed_by == marker
    assert weekly.periodic_task is not None and weekly.periodic_task.crontab.hour == "7"
    page = owner.page.get(f"/gitops/{repo['id']}/").content.decode()
    assert all(f"<td>{kind}</td>" in page for kind in ("RateCard", "Budget", "ReportDefinition"))
    assert "payments-monthly" in page and "weekly" in page
    actors = AuditEvent.objects.filter(
        action__in=["ratecard.save", "budget.create", "report.definition.save"]
    ).values_list("action", "actor_name")
    assert sorted(actors) == [
        ("budget.create", "git-repository:payments/fleet"),
        ("ratecard.save", "git-repository:payments/fleet"),
        ("report.definition.save", "git-repository:payments/fleet"),
    ]

    # and the API and pages refuse to change them
    new_version = {"name": "edge", "team": "payments", "valid_from": _day(9)}
    new_version |= {"cpu_core_hour": "1", "ram_gb_hour": "1"}
    refused = owner.api.post("/api/v1/rate-cards/", new_version, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        f"managed by git-repository fleet at commit {first[:7]}"
    )
    assert owner.api.delete("/api/v1/budgets/payments-monthly/").status_code == 409
    patch = owner.api.patch("/api/v1/report-definitions/weekly/", {"period_days": 3}, format="json")
    assert patch.status_code == 409
    assert owner.api.delete("/api/v1/report-definitions/weekly/").status_code == 409
    assert owner.page.post("/costs/budgets/payments-monthly/delete/").status_code == 403
    page_version = {**new_version, "gpu_hour": "0", "storage_gb_month": "0"}
    assert owner.page.post("/costs/rate-cards/", page_version).status_code == 403
    assert RateCard.objects.count() == 1 and Budget.objects.count() == 1

    # when: a second commit adds a version, raises the budget and moves the report
    git_server.commit(
        {
            "fleet/card.yaml": card((1, "0.03"), (30, "0.025")),
            "fleet/budget.yaml": budget('"2000.50"'),
            "fleet/report.yaml": report("0 9 * * 1"),
        }
    )
    sync = run(owner, repo["id"])

    # then
    changes = {(c["action"], c["kind"]): c["diff"] for c in sync.plan}
    assert set(changes) == {
        ("unchanged", "ClusterSet"),
        ("change", "RateCard"),
        ("change", "Budget"),
        ("change", "ReportDefinition"),
    }
    assert changes[("change", "Budget")] == {"monthly_amount": {"old": "1500.00", "new": "2000.50"}}
    assert changes[("change", "ReportDefinition")] == {
        "schedule": {"old": "0 7 * * 1", "new": "0 9 * * 1"}
    }
    versions = RateCard.objects.filter(name="edge").order_by("valid_from")
    assert [(str(v.valid_from), v.cpu_core_hour) for v in versions] == [
        (_day(1), Decimal("0.03")),
        (_day(30), Decimal("0.025")),
    ]
    assert Budget.objects.get().monthly_amount == Decimal("2000.50")
    weekly.refresh_from_db()
    assert weekly.schedule == "0 9 * * 1" and weekly.periodic_task.crontab.hour == "9"

    # when: the version of next month is withdrawn, then everything is removed from git
    git_server.commit({"fleet/card.yaml": card((1, "0.03"))})
    assert run(owner, repo["id"]).result == SyncResult.APPLIED
    assert [str(v.valid_from) for v in RateCard.objects.all()] == [_day(1)]
    git_server.commit(
        {"fleet/card.yaml": None, "fleet/budget.yaml": None, "fleet/report.yaml": None}
    )
    sync = run(owner, repo["id"])

    # then: pruned (the report's schedule with it)
    assert sorted((c["action"], c["kind"]) for c in sync.plan) == [
        ("prune", "Budget"),
        ("prune", "RateCard"),
        ("prune", "ReportDefinition"),
        ("unchanged", "ClusterSet"),
    ]
    assert not RateCard.objects.exists() and not Budget.objects.exists()
    assert not ReportDefinition.objects.exists()
    assert run(owner, repo["id"]).result == SyncResult.UNCHANGED


def test_a_past_rate_card_version_is_refused_like_the_api_does(
    owner: Member, git_server: GitServer
) -> None:
    git_server.commit({"fleet/card.yaml": card((-1, "0.03"))})
    repo = register(owner, git_server)

    sync = run(owner, repo["id"])

    assert sync.errors == [
        "fleet/card.yaml:1: RateCard edge: valid_from: Prices change from today or later, "
        "never in the past."
    ]
    assert not RateCard.objects.exists()


def test_with_orphan_a_removed_budget_is_kept_and_can_be_deleted_again(
    owner: Member, git_server: GitServer
) -> None:
    git_server.commit({"fleet/sets.yaml": SETS, "fleet/budget.yaml": budget("10")})
    repo = register(owner, git_server, prune="orphan")
    assert run(owner, repo["id"]).result == SyncResult.APPLIED

    git_server.commit({"fleet/budget.yaml": None})
    sync = run(owner, repo["id"])

    assert ("orphan", "Budget") in [(c["action"], c["kind"]) for c in sync.plan]
    assert Budget.objects.get().managed_by is None
    assert owner.api.delete("/api/v1/budgets/payments-monthly/").status_code == 204


OVERRIDES = """\
apiVersion: keelson.io/v1
kind: Overrides
metadata: {name: web-eu}
spec:
  application: web
  overrides:
  - {clusters: [eu-1], replicas: REPLICAS}
"""
ROLLOUT = """\
apiVersion: keelson.io/v1
kind: RolloutStrategy
metadata: {name: web}
spec: {application: web, strategy: rolling, max_concurrency: 2}
"""


def test_overrides_and_rollout_strategy_documents_of_an_application(
    owner: Member, git_server: GitServer
) -> None:
    # given: an application, its overrides and rollout strategy each in a file of its own
    git_server.commit(
        {
            "fleet/web.yaml": web(),
            "fleet/overrides.yaml": OVERRIDES.replace("REPLICAS", "5"),
            "fleet/rollout.yaml": ROLLOUT,
        }
    )
    repo = register(owner, git_server)

    # when
    assert run(owner, repo["id"]).result == SyncResult.APPLIED

    # then
    application = Application.objects.get(name="web")
    assert application.overrides == [{"clusters": ["eu-1"], "replicas": 5}]
    assert application.rollout == {"strategy": "rolling", "max_concurrency": 2}
    refused = owner.api.patch("/api/v1/applications/web/", {"overrides": []}, format="json")
    assert refused.status_code == 409

    # when: the overrides change and the rollout strategy document goes
    git_server.commit(
        {"fleet/overrides.yaml": OVERRIDES.replace("REPLICAS", "3"), "fleet/rollout.yaml": None}
    )
    sync = run(owner, repo["id"])

    # then: both are changes of the application
    (change,) = sync.plan
    assert (change["action"], sorted(change["diff"])) == ("change", ["overrides", "rollout"])
    application.refresh_from_db()
    assert application.overrides == [{"clusters": ["eu-1"], "replicas": 3}]
    assert application.rollout == {}

    # when: the application also declares its overrides inline
    inline = web().replace("  namespace: shop\n", "  namespace: shop\n  overrides: []\n")
    git_server.commit({"fleet/web.yaml": inline})
    sync = run(owner, repo["id"])

    # then: an error naming both files, nothing applied
    assert sync.errors == [
        "fleet/web.yaml:1: Application web: spec.overrides: also declared by Overrides web-eu "
        "at fleet/overrides.yaml:1; declare it in one place"
    ]
    application.refresh_from_db()
    assert application.overrides == [{"clusters": ["eu-1"], "replicas": 3}]
