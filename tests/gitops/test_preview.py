"""A preview's fleet impact without kube-apiservers: the placement simulator's clusters
added and removed against the last decision, clusters without prices, policies on
clusters that cannot be read; and an approved change whose application is still being
rolled out says it was not rolled out again."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Team
from gitops.choices import SyncResult
from gitops.models import GitSync
from gitops.services import git_sync_run
from operations.models import Operation
from tests.factories import Member, make_cluster
from tests.gitops.conftest import GitServer
from tests.gitops.test_sync import API, POLICY, register, web

pytestmark = pytest.mark.django_db
GIB = 1024**3


def synced(member: Member, repository: int, what: str = "sync", **body: Any) -> GitSync:
    """A sync (or preview) run here; the rollouts it starts are left pending."""
    response = member.api.post(f"{API}{repository}/{what}/", body, format="json")
    assert response.status_code == 202, response.json()
    git_sync_run(operation_id=response.json()["operation"])
    return GitSync.objects.get(pk=response.json()["sync"])


def test_preview_shows_clusters_added_and_removed_and_a_busy_rollout_is_reported(
    owner: Member, operator: Member, git_server: GitServer
) -> None:
    # given: a ready prod cluster and a ready dev cluster, and a repository that waits
    team = Team.objects.get(name="payments")
    capacity = {"allocatable_cpu_millis": 8000, "allocatable_memory_bytes": 32 * GIB}
    make_cluster(team=team, name="eu-1", status="ready", labels={"env": "prod"}, **capacity)
    make_cluster(team=team, name="dev-1", status="ready", labels={"env": "dev"}, **capacity)
    repo = register(owner, git_server, auto_apply=False)

    # when: a commit adds an application placed on env=prod and a policy, previewed
    first = git_server.commit({"fleet/web.yaml": web(), "fleet/p.yaml": POLICY})
    preview = synced(operator, repo["id"], "preview")

    # then: the application would land on eu-1 only; eu-1 has no price yet (no inventory)
    plan = {c["name"]: c for c in preview.plan}
    assert plan["web"]["placement"] == {
        "clusters": ["eu-1"],
        "added": ["eu-1"],
        "removed": [],
        "replicas_moved": {},
        "warnings": [],
        "cost_per_month": "0.00",
        "cost_unpriced": ["eu-1"],
    }
    # and the policy targets both clusters, neither of which can be read (no credential)
    compliance = plan["no-latest"]["compliance"]
    assert compliance["clusters"] == []
    assert [row["cluster"] for row in compliance["not_previewed"]] == ["dev-1", "eu-1"]
    assert all(row["reason"] for row in compliance["not_previewed"])
    assert not Operation.objects.filter(kind="application.rollout").exists()

    # when: approved
    applied = synced(operator, repo["id"], commit=first)

    # then: a rollout of version 1 is started to the decision (eu-1)
    assert (applied.result, applied.errors) == (SyncResult.APPLIED, [])
    rollout = Operation.objects.get(
        pk=next(c for c in applied.plan if c["name"] == "web")["rollout"]
    )
    assert (rollout.kind, rollout.params["version"]) == ("application.rollout", 1)

    # when: a second commit moves it to env=dev, previewed
    second = git_server.commit({"fleet/web.yaml": web().replace("env=prod", "env=dev")})
    moved = {c["name"]: c for c in synced(operator, repo["id"], "preview").plan}["web"]

    # then: dev-1 is added and eu-1 (the last decision's) removed
    assert list(moved["diff"]) == ["placement"]
    placement = moved["placement"]
    assert (placement["clusters"], placement["added"], placement["removed"]) == (
        ["dev-1"],
        ["dev-1"],
        ["eu-1"],
    )

    # when: approved while the first rollout has not run yet
    busy = synced(operator, repo["id"], commit=second)

    # then: the placement is saved, and the sync says the application was not rolled out
    assert busy.result == SyncResult.APPLIED
    change = next(c for c in busy.plan if c["name"] == "web")
    assert "rollout" not in change and "in progress" in change["rollout_error"]
    assert busy.errors == [f"Application web: not rolled out: {change['rollout_error']}"]
    assert Operation.objects.filter(kind="application.rollout").count() == 1
