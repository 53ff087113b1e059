"""`manage.py fleet_export`: a team's state written as the documents a sync reads; read
back with gitops' own parser it plans "unchanged" against the same team, and committed to
a real git server (git daemon on loopback) it syncs with nothing to change."""

from __future__ import annotations

import io
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Team
from applications.models import Application
from applications.services import application_create
from clusters.models import ClusterSet
from clusters.services.lifecycle import cluster_set_save
from costs.models import Budget, RateCard
from gitops.choices import SyncResult
from gitops.documents import desired_objects, parse_documents, read_files
from gitops.kinds import budget_state, rate_card_states, report_definition_state
from gitops.plan import make_plan, plan_summary
from gitops.state import application_state, cluster_set_state, policy_state
from policies.models import Policy, ReportDefinition
from policies.services.library import library_load
from policies.services.policies import PolicySpec, policy_create
from tests.factories import Member, make_cluster
from tests.gitops import test_kinds
from tests.gitops.conftest import GitServer, git
from tests.gitops.test_sync import POLICY, register, run, web

pytestmark = pytest.mark.django_db

MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: api-config}
data: {mode: "fast"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: "registry.example.com/api:2.1"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
"""


def export(team: str, output: Path) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("fleet_export", "--team", team, "--output", str(output), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def team_state(team: Team) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the team in the form a repository declares it (whoever owns it)."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for cluster_set in ClusterSet.objects.filter(team=team):
        state[("ClusterSet", cluster_set.name)] = cluster_set_state(cluster_set)
    for application in Application.objects.filter(team=team):
        state[("Application", application.name)] = application_state(application)
    for policy in Policy.objects.filter(team=team, bundled=False, source_engine=""):
        state[("Policy", policy.name)] = policy_state(policy)
    for name, card in rate_card_states(RateCard.objects.filter(team=team)).items():
        state[("RateCard", name)] = card
    for budget in Budget.objects.filter(team=team):
        state[("Budget", budget.name)] = budget_state(budget)
    for definition in ReportDefinition.objects.filter(team=team):
        state[("ReportDefinition", definition.name)] = report_definition_state(definition)
    return state


def test_an_exported_team_reads_back_unchanged_and_lists_what_it_left_out(
    owner: Member, tmp_path: Path
) -> None:
    # given: a team with a cluster set, two applications (one with placement, overrides
    # and a rollout), its own policies, the bundled library (one policy retargeted) and an
    # external policy
    team = Team.objects.get(name="payments")
    eu = make_cluster(team=team, name="eu-1", labels={"env": "prod"})
    make_cluster(team=team, name="us-1", labels={"env": "dev"})
    cluster_set_save(
        actor=None,
        cluster_set=ClusterSet(team=team, name="prod", description="Production", selector=""),
        members=[eu],
    )
    cluster_set_save(
        actor=None, cluster_set=ClusterSet(team=team, name="by-label", selector="env in (prod)")
    )
    application_create(
        actor=None,
        team=team,
        name="api",
        namespace="shop",
        description="The shop's API",
        manifests=MANIFESTS,
        placement={"selector": "env=prod"},
        overrides=[{"clusters": ["eu-1"], "replicas": 5, "labels": {"region": "eu"}}],
        rollout={"strategy": "rolling", "max_concurrency": 2},
    )
    application_create(actor=None, team=team, name="bare", namespace="tools", manifests=MANIFESTS)
    policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name="no-latest",
            severity="high",
            cluster_sets=["prod"],
            enabled=False,
            rules=[
                {
                    "name": "pinned",
                    "kind": "object",
                    "match": {"kinds": ["Pod"]},
                    "expression": "object.spec.containers.all(c,\n  !c.image.endsWith(':latest'))",
                }
            ],
        ),
    )
    library_load(team=team)
    bundled = Policy.objects.filter(team=team, bundled=True)
    retargeted = bundled.first()
    assert retargeted is not None and bundled.count() > 1
    Policy.objects.filter(pk=retargeted.pk).update(enabled=False, cluster_selector="env=prod")
    Policy.objects.create(
        team=team, name="kyverno-require-labels", source_engine="kyverno", source_name="req"
    )
    for valid_from in (date(2026, 1, 1), date(2026, 6, 1)):  # two versions of one card
        RateCard.objects.create(
            team=team, name="edge", valid_from=valid_from, cpu_core_hour=1, ram_gb_hour=1
        )
    Budget.objects.create(team=team, name="payments-monthly", monthly_amount=1000)
    ReportDefinition.objects.create(team=team, name="weekly", formats=["csv"], period_days=14)
    output = tmp_path / "export"

    # when
    stdout, stderr = export("payments", output)

    # then: one file per object in a folder per kind
    files = sorted(p.relative_to(output).as_posix() for p in output.rglob("*.yaml"))
    assert files == sorted(
        [
            "applications/api.yaml",
            "applications/bare.yaml",
            "clustersets/by-label.yaml",
            "clustersets/prod.yaml",
            "placements/api.yaml",
            "overrides/api.yaml",
            "rolloutstrategies/api.yaml",
            "policies/no-latest.yaml",
            f"policies/{retargeted.name}.yaml",
            "ratecards/edge.yaml",
            "budgets/payments-monthly.yaml",
            "reportdefinitions/weekly.yaml",
        ]
    )
    assert "12/12 documents written" in stdout
    assert (
        "payments: 2 ClusterSet, 2 Application, 1 Placement, 1 Overrides, 1 RolloutStrategy, "
        "2 Policy, 1 RateCard, 1 Budget, 1 ReportDefinition written to"
    ) in stdout
    # and what was left out is on stderr, each with its reason
    assert "not exported: Policy kyverno-require-labels: external (kyverno)" in stderr
    unchanged = [p.name for p in bundled if p.pk != retargeted.pk]
    for name in unchanged:
        assert f"not exported: Policy {name}: bundled library policy, unchanged" in stderr
    assert stderr.count("not exported:") == 1 + len(unchanged)
    assert (output / "placements/api.yaml").read_text() == (
        "apiVersion: keelson.io/v1\nkind: Placement\nmetadata:\n  name: api\n"
        "spec:\n  selector: env=prod\n"
    )
    assert "  manifests: |\n    apiVersion: v1\n" in (output / "applications/api.yaml").read_text()
    assert (output / "overrides/api.yaml").read_text() == (
        "apiVersion: keelson.io/v1\nkind: Overrides\nmetadata:\n  name: api\nspec:\n"
        "  application: api\n  overrides:\n  - labels:\n      region: eu\n    clusters:\n"
        "    - eu-1\n    replicas: 5\n"  # in the order PostgreSQL's jsonb keeps keys
    )
    assert (
        (output / "ratecards/edge.yaml")
        .read_text()
        .startswith(
            "apiVersion: keelson.io/v1\nkind: RateCard\nmetadata:\n  name: edge\nspec:\n"
            "  versions:\n  - valid_from: '2026-01-01'\n    cpu_core_hour: '1.000000'\n"
        )
    )

    # when: read back with gitops' own parser and planned against the same team
    desired = desired_objects(parse_documents(read_files(output)), team="payments")
    current = team_state(team)
    retargeted.refresh_from_db()
    current[("Policy", retargeted.name)] = policy_state(retargeted)
    changes = make_plan(desired, current, prune=True)

    # then: every object is unchanged
    assert plan_summary(changes) == {
        "create": 0,
        "adopt": 0,
        "change": 0,
        "unchanged": 12 - 3,  # placement, overrides and rollout are parts of the Application
        "prune": 0,
        "orphan": 0,
    }
    assert [(c.action, c.diff) for c in changes if c.action != "unchanged"] == []


def test_an_export_committed_to_git_syncs_with_nothing_to_change(
    owner: Member, operator: Member, git_server: GitServer
) -> None:
    # given: a team whose state came from a hand-written repository
    cluster_set = "apiVersion: keelson.io/v1\nkind: ClusterSet\nmetadata: {name: prod}\n"
    cluster_set += "spec: {selector: env=prod, description: Production}\n"
    git_server.commit(
        {
            "fleet/web.yaml": web(),
            "fleet/p.yaml": POLICY,
            "fleet/sets.yaml": cluster_set,
            "fleet/card.yaml": test_kinds.card((3, "0.04")),
            "fleet/budget.yaml": test_kinds.budget("900"),
            "fleet/report.yaml": test_kinds.report("30 6 * * *"),
        }
    )
    repo = register(owner, git_server)
    assert run(operator, repo["id"]).result == SyncResult.APPLIED

    # when: the team is exported in place of the hand-written files, and committed
    shutil.rmtree(git_server.work / "fleet")
    _, stderr = export("payments", git_server.work / "fleet")
    head = git_server.commit({}, "exported")
    listed = git("ls-tree", "-r", "--name-only", "HEAD", cwd=git_server.work).splitlines()
    sync = run(operator, repo["id"])

    # then: the new commit syncs with nothing to change
    assert sorted(listed) == [
        "fleet/applications/web.yaml",
        "fleet/budgets/payments-monthly.yaml",
        "fleet/clustersets/prod.yaml",
        "fleet/placements/web.yaml",
        "fleet/policies/no-latest.yaml",
        "fleet/ratecards/edge.yaml",
        "fleet/reportdefinitions/weekly.yaml",
    ]
    assert (sync.result, sync.commit, sync.errors) == (SyncResult.UNCHANGED, head, [])
    assert sorted((c["action"], c["kind"], c["name"]) for c in sync.plan) == [
        ("unchanged", "Application", "web"),
        ("unchanged", "Budget", "payments-monthly"),
        ("unchanged", "ClusterSet", "prod"),
        ("unchanged", "Policy", "no-latest"),
        ("unchanged", "RateCard", "edge"),
        ("unchanged", "ReportDefinition", "weekly"),
    ]
    assert "Application" not in stderr


def test_bad_input_is_refused_and_nothing_written(owner: Member, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "README.md").write_text("#\n")
    with pytest.raises(CommandError, match="No such team: nobody"):
        export("nobody", tmp_path / "new")
    with pytest.raises(CommandError, match="is not empty"):
        export("payments", tmp_path / "full")
    assert not (tmp_path / "new").exists()
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["README.md"]
