"""Per object sync state against a real git server: an object changed behind Git's back
(through a service, as the Django admin would) is drifted with the field diff, and the
next sync restores it; a failed sync marks the object it failed on; a poll of a
repository that does not apply automatically plans each commit once; repository URLs
follow the egress policy at registration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Team
from applications.models import Application
from applications.services import application_update
from clusters.models import ClusterSet
from clusters.services.lifecycle import cluster_set_save
from gitops.choices import SyncResult
from gitops.models import GitRepository, GitSync
from gitops.services import git_repositories_poll, git_sync_run
from operations.models import Operation
from policies.models import Policy
from policies.services.policies import PolicySpec, policy_update
from tests.factories import Member, make_cluster
from tests.gitops.conftest import GitServer
from tests.gitops.test_sync import API, POLICY, register, run, web

pytestmark = pytest.mark.django_db
SETS = """\
apiVersion: keelson.io/v1
kind: ClusterSet
metadata: {name: prod}
spec: {members: [edge-1, edge-2]}
"""


def objects(member: Member, repository: int) -> dict[str, dict[str, Any]]:
    response = member.api.get(f"{API}{repository}/objects/")
    assert response.status_code == 200, response.json()
    return {row["name"]: row for row in response.json()}


def test_a_change_outside_git_is_drift_with_its_diff_and_the_next_sync_restores_it(
    owner: Member, viewer: Member, git_server: GitServer
) -> None:
    # given: a cluster set, an application and a policy synced from a repository
    team = Team.objects.get(name="payments")
    edge_1 = make_cluster(team=team, name="edge-1")
    make_cluster(team=team, name="edge-2")
    commit = git_server.commit(
        {"fleet/sets.yaml": SETS, "fleet/web.yaml": web(), "fleet/p.yaml": POLICY}
    )
    repo = register(owner, git_server, poll_interval=300, auto_apply=False)
    run(owner, repo["id"])
    synced = objects(viewer, repo["id"])
    assert {name: row["status"] for name, row in synced.items()} == {
        "prod": "synced",
        "web": "synced",
        "no-latest": "synced",
    }
    assert synced["web"]["commit"] == commit and synced["web"]["file"] == "fleet/web.yaml"

    # when: an admin edits each behind Git's back (services, not the refusing API), and
    # the repository is polled
    application = Application.objects.get(name="web")
    application_update(
        actor=None, application=application, changes={"placement": {"selector": "env=dev"}}
    )
    policy = Policy.objects.get(name="no-latest")
    disabled = PolicySpec.of(policy)
    disabled.enabled = False
    policy_update(policy=policy, spec=disabled, actor=None)
    cluster_set_save(actor=None, cluster_set=ClusterSet.objects.get(name="prod"), members=[edge_1])
    git_repositories_poll(now=timezone.now())

    # then: each is drifted, with the field diff (now → in Git)
    drifted = objects(viewer, repo["id"])
    assert {name: row["status"] for name, row in drifted.items()} == {
        "prod": "drifted",
        "web": "drifted",
        "no-latest": "drifted",
    }
    assert drifted["web"]["diff"] == {
        "placement": {"old": {"selector": "env=dev"}, "new": {"selector": "env=prod"}}
    }
    assert drifted["web"]["reason"] == "changed outside Git: placement"
    assert drifted["no-latest"]["diff"] == {"enabled": {"old": False, "new": True}}
    assert drifted["prod"]["diff"] == {"members": {"old": ["edge-1"], "new": ["edge-1", "edge-2"]}}
    page = viewer.page.get(f"/gitops/{repo['id']}/")
    assert b"drifted" in page.content and b"changed outside Git: placement" in page.content

    # when: the next sync
    sync = run(owner, repo["id"])

    # then: the drifted objects were changes of its plan, restored, and synced again
    assert sync.result == SyncResult.APPLIED
    assert {c["name"]: c["action"] for c in sync.plan} == {
        "prod": "change",
        "web": "change",
        "no-latest": "change",
    }
    application.refresh_from_db()
    assert application.placement.spec == {"selector": "env=prod"}
    assert Policy.objects.get(name="no-latest").enabled is True
    prod = ClusterSet.objects.get(name="prod")
    assert sorted(c.name for c in prod.members.all()) == ["edge-1", "edge-2"]
    assert {row["status"] for row in objects(viewer, repo["id"]).values()} == {"synced"}


def test_a_failed_sync_marks_its_object_and_a_planned_commit_is_pending(
    owner: Member, git_server: GitServer
) -> None:
    # given: an application and a policy synced
    git_server.commit({"fleet/web.yaml": web(), "fleet/p.yaml": POLICY})
    repo = register(owner, git_server, auto_apply=False)
    run(owner, repo["id"])

    # when: a commit scopes the policy to a cluster set that does not exist
    bad = POLICY.replace("severity: high", "severity: high\n  cluster_sets: [nowhere]")
    git_server.commit({"fleet/p.yaml": bad})
    assert run(owner, repo["id"]).result == SyncResult.FAILED

    # then: the policy failed, with the sync's error; the application is still synced
    rows = objects(owner, repo["id"])
    assert rows["no-latest"]["status"] == "failed"
    assert rows["no-latest"]["reason"] == (
        "fleet/p.yaml:1: Policy no-latest: cluster_sets: No such cluster set in the team: nowhere."
    )
    assert rows["web"]["status"] == "synced"

    # when: a fixed commit changing the image is planned (waiting for approval)
    planned = git_server.commit({"fleet/p.yaml": POLICY, "fleet/web.yaml": web("nginx:1.26")})
    assert run(owner, repo["id"], "preview").result == SyncResult.PLANNED

    # then: the application is pending, the policy synced
    rows = objects(owner, repo["id"])
    assert (rows["web"]["status"], rows["web"]["reason"]) == (
        "pending",
        f"would change at {planned[:7]}",
    )
    assert rows["no-latest"]["status"] == "synced"


def test_polls_without_auto_apply_plan_each_commit_once(
    owner: Member, operator: Member, git_server: GitServer
) -> None:
    # given: a repository that plans and waits for approval
    first = git_server.commit({"fleet/web.yaml": web()})
    repo = register(owner, git_server, poll_interval=300, auto_apply=False)
    now = timezone.now()

    def poll(at: timedelta) -> Operation:
        assert git_repositories_poll(now=now + at) == 1
        operation = Operation.objects.filter(kind="gitops.sync").order_by("-created_at")[0]
        git_sync_run(operation_id=operation.pk)
        operation.refresh_from_db()
        return operation

    # when: two polls see the same head
    poll(timedelta(0))
    second_poll = poll(timedelta(seconds=300))

    # then: one plan
    plans = GitSync.objects.filter(repository_id=repo["id"])
    assert [(s.trigger, s.result, s.commit) for s in plans] == [("poll", "planned", first)]
    assert second_poll.state == "succeeded"
    assert second_poll.message == f"No new commit: {first[:7]} is planned already"

    # when: a new commit, then a poll; then the user asks for a preview of the same
    second = git_server.commit({"fleet/web.yaml": web("nginx:1.26")})
    poll(timedelta(seconds=600))
    run(operator, repo["id"], "preview")

    # then: the new commit is planned once by the poll, and again on request
    assert [(s.trigger, s.commit) for s in plans.all()] == [
        ("preview", second),
        ("poll", second),
        ("poll", first),
    ]


def test_a_repository_url_on_a_blocked_address_is_refused(
    owner: Member, git_server: GitServer
) -> None:
    # when: registered on the cloud metadata address
    body = {"name": "meta", "team": "payments", "url": "https://169.254.169.254/fleet.git"}
    refused = owner.api.post(API, body, format="json")

    # then: 400 on url naming the host, nothing saved
    assert refused.status_code == 400
    [message] = refused.json()["error"]["fields"]["url"]
    assert message.startswith("The hub may not connect to 169.254.169.254")
    assert not GitRepository.objects.filter(name="meta").exists()

    # when: the loopback test server (allowed in this environment) is registered
    repo = register(owner, git_server)

    # then: it syncs; changing its URL to the metadata address is refused
    git_server.commit({"fleet/web.yaml": web()})
    assert run(owner, repo["id"]).result == SyncResult.APPLIED
    moved = owner.api.patch(
        f"{API}{repo['id']}/", {"url": "git://[::ffff:169.254.169.254]/x.git"}, format="json"
    )
    assert moved.status_code == 400 and "url" in moved.json()["error"]["fields"]
    assert GitRepository.objects.get(pk=repo["id"]).url == git_server.url
