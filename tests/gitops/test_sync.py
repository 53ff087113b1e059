"""GitOps end to end against a real git server (git daemon on loopback): commits pushed
with the git CLI, synced through the API, applied through the API's own services."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from accounts.models import Team
from applications.models import Application
from applications.rollout.deletion import application_delete_run
from audit.models import AuditEvent
from gitops.choices import SyncResult
from gitops.models import GitRepository, GitSync
from gitops.services import git_repositories_poll, git_sync_run
from operations.models import Operation
from policies.models import Policy
from tests.factories import Member
from tests.gitops.conftest import TOKEN, GitServer, HttpsGitServer
from tests.placement.helpers import drive_rollout

pytestmark = pytest.mark.django_db
API = "/api/v1/git-repositories/"
SECRET = "hook-secret-0123456789"


def web(image: str = "nginx:1.25") -> str:
    return f"""\
apiVersion: keelson.io/v1
kind: Application
metadata:
  name: web
spec:
  namespace: shop
  manifests: |
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: web}}
    spec:
      replicas: 2
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec:
          containers:
          - {{name: web, image: "{image}", resources: {{requests: {{cpu: 50m, memory: 32Mi}}}}}}
---
apiVersion: keelson.io/v1
kind: Placement
metadata:
  name: web
spec:
  selector: env=prod
"""


POLICY = """\
apiVersion: keelson.io/v1
kind: Policy
metadata:
  name: no-latest
spec:
  severity: high
  rules:
  - name: pinned
    kind: object
    match: {kinds: [Pod]}
    expression: "object.spec.containers.all(c, !c.image.endsWith(':latest'))"
"""


def register(owner: Member, server: GitServer, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "fleet",
        "team": "payments",
        "url": server.url,
        "ref": "main",
        "path": "fleet",
        "webhook_secret": SECRET,
        "credentials": "ghp_not-really-a-token",
        **extra,
    }
    response = owner.api.post(API, body, format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


def run(member: Member, repository: int, what: str = "sync", **body: Any) -> GitSync:
    """Ask for a sync (or preview) through the API and run its operation here, then the
    rollouts it started (to no cluster: the team has none here)."""
    response = member.api.post(f"{API}{repository}/{what}/", body, format="json")
    assert response.status_code == 202, response.json()
    git_sync_run(operation_id=response.json()["operation"])
    sync = GitSync.objects.get(pk=response.json()["sync"])
    for change in sync.plan:
        if change.get("rollout"):
            ended = drive_rollout(Operation.objects.get(pk=change["rollout"]))
            assert ended.state == "succeeded", ended.error
    return sync


def test_commits_are_synced_marked_managed_previewed_changed_and_pruned(
    owner: Member, operator: Member, git_server: GitServer
) -> None:
    # given: a repository with an application, its placement and a policy
    first = git_server.commit({"fleet/web.yaml": web(), "fleet/policies/p.yaml": POLICY})
    repo = register(owner, git_server)
    assert "credentials" not in repo and repo["has_credentials"] is True
    assert "ghp_" not in json.dumps(owner.api.get(f"{API}{repo['id']}/").json())

    # when
    sync = run(operator, repo["id"])

    # then: both exist, marked as the repository's at that commit
    assert (sync.result, sync.commit, sync.errors) == (SyncResult.APPLIED, first, [])
    application = Application.objects.get(name="web")
    assert application.team.name == "payments" and application.namespace == "shop"
    assert application.placement.spec == {"selector": "env=prod"}
    assert application.managed_by == {"repository": repo["id"], "name": "fleet", "commit": first}
    policy = Policy.objects.get(name="no-latest")
    assert policy.severity == "high" and policy.managed_by == application.managed_by
    created = AuditEvent.objects.get(action="application.create")
    assert (created.actor_id, created.actor_name) == (None, "git-repository:payments/fleet")
    assert AuditEvent.objects.filter(action="gitrepository.apply").count() == 1
    repository = GitRepository.objects.get(pk=repo["id"])
    assert (repository.last_commit, repository.last_result) == (first, SyncResult.APPLIED)
    assert Operation.objects.get(pk=str(sync.operation_id)).state == "succeeded"

    # and edits from the API are refused, naming the repository and commit
    refused = owner.api.patch("/api/v1/applications/web/", {"description": "x"}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        f"managed by git-repository fleet at commit {first[:7]}"
    )
    refused = owner.api.patch("/api/v1/policies/no-latest/", {"severity": "low"}, format="json")
    assert refused.status_code == 409
    assert owner.api.delete("/api/v1/applications/web/").status_code == 409
    versions = owner.api.post(
        "/api/v1/applications/web/versions/", {"manifests": "x"}, format="json"
    )
    assert versions.status_code == 409

    # and a sync of the same commit changes nothing
    assert run(operator, repo["id"]).result == SyncResult.UNCHANGED

    # when: a second commit changes the image, previewed first
    second = git_server.commit({"fleet/web.yaml": web("nginx:1.26")})
    preview = run(operator, repo["id"], "preview")

    # then: the plan shows the diff and nothing is applied
    assert (preview.result, preview.commit) == (SyncResult.PLANNED, second)
    changes = {(c["action"], c["name"]): c for c in preview.plan}
    assert set(changes) == {("change", "web"), ("unchanged", "no-latest")}
    diff = changes[("change", "web")]["diff"]
    assert list(diff) == ["manifests"]
    assert '-      - {name: web, image: "nginx:1.25"' in diff["manifests"]["diff"]
    assert '+      - {name: web, image: "nginx:1.26"' in diff["manifests"]["diff"]
    assert changes[("change", "web")]["file"] == "fleet/web.yaml"
    assert application.versions.count() == 1
    listed = operator.api.get(f"{API}{repo['id']}/syncs/").json()
    assert listed[0]["result"] == "planned" and listed[0]["plan"] == preview.plan

    # when: the plan is approved after the ref moved on, it is refused
    moved = git_server.commit({"fleet/web.yaml": web("nginx:1.26"), "fleet/README.md": "#\n"})
    response = operator.api.post(f"{API}{repo['id']}/sync/", {"commit": second}, format="json")
    git_sync_run(operation_id=response.json()["operation"])
    refused_sync = GitSync.objects.get(pk=response.json()["sync"])
    assert refused_sync.result == SyncResult.FAILED
    assert refused_sync.errors == [
        f"main has moved to {moved[:7]} since the approved plan of {second[:7]}; preview again."
    ]
    assert application.versions.count() == 1

    # when: the plan of the head is approved
    approved = run(operator, repo["id"], commit=moved)
    assert approved.result == SyncResult.APPLIED

    # then: it was rolled out again (a rollout Operation per sync that changed it)
    assert [c["rollout"] for c in approved.plan if c["name"] == "web"]
    assert Operation.objects.filter(kind="application.rollout").count() == 2

    # then: a new version with the new image
    assert application.versions.count() == 2
    assert "nginx:1.26" in application.versions.first().manifests  # type: ignore[union-attr]
    application.refresh_from_db()
    assert application.managed_by["commit"] == moved

    # when: a third commit removes the application
    git_server.commit({"fleet/web.yaml": None})
    sync = run(operator, repo["id"])

    # then: it is being removed from its clusters (an Operation), then it is gone
    assert [(c["action"], c["name"]) for c in sync.plan] == [
        ("unchanged", "no-latest"),
        ("prune", "web"),
    ]
    deletion = Operation.objects.get(kind="application.delete")
    application_delete_run(operation_id=deletion.pk)
    assert not Application.objects.filter(name="web").exists()
    assert Policy.objects.filter(name="no-latest").exists()
    assert run(operator, repo["id"]).result == SyncResult.UNCHANGED


def test_with_orphan_a_removed_object_is_kept_and_editable_again(
    owner: Member, git_server: GitServer
) -> None:
    git_server.commit({"fleet/web.yaml": web(), "fleet/p.yaml": POLICY})
    repo = register(owner, git_server, prune="orphan")
    assert run(owner, repo["id"]).result == SyncResult.APPLIED

    git_server.commit({"fleet/p.yaml": None})
    sync = run(owner, repo["id"])

    assert ("orphan", "no-latest") in [(c["action"], c["name"]) for c in sync.plan]
    policy = Policy.objects.get(name="no-latest")
    assert policy.managed_by is None
    edited = owner.api.patch("/api/v1/policies/no-latest/", {"severity": "low"}, format="json")
    assert edited.status_code == 200


def test_a_broken_document_fails_the_sync_naming_file_and_line_and_applies_nothing(
    owner: Member, git_server: GitServer
) -> None:
    # given: a synced application
    git_server.commit({"fleet/web.yaml": web()})
    repo = register(owner, git_server)
    assert run(owner, repo["id"]).result == SyncResult.APPLIED

    # when: a commit changes the image, adds a policy and a broken placement
    broken = web("nginx:1.27").replace("selector: env=prod", "clusterSelector: 7")
    git_server.commit({"fleet/web.yaml": broken, "fleet/p.yaml": POLICY})
    sync = run(owner, repo["id"])

    # then
    assert sync.result == SyncResult.FAILED
    assert len(sync.errors) == 1
    where = "fleet/web.yaml:20: Placement web: placement: Unknown field(s)"
    assert sync.errors[0].startswith(where)
    assert Application.objects.get(name="web").versions.count() == 1
    assert not Policy.objects.filter(name="no-latest").exists()
    operation = Operation.objects.get(pk=str(sync.operation_id))
    assert operation.state == "failed" and "fleet/web.yaml:20" in operation.error

    # when: what only the service checks fails (an unknown cluster set), after the image
    # change and the new policy were applied within the same transaction
    bad_set = POLICY.replace("severity: high", "severity: high\n  cluster_sets: [nowhere]")
    git_server.commit({"fleet/web.yaml": web("nginx:1.27"), "fleet/p.yaml": bad_set})
    sync = run(owner, repo["id"])

    # then: all or nothing
    assert sync.result == SyncResult.FAILED
    assert sync.errors == [
        "fleet/p.yaml:1: Policy no-latest: cluster_sets: No such cluster set in the team: nowhere."
    ]
    assert Application.objects.get(name="web").versions.count() == 1
    assert not Policy.objects.filter(name="no-latest").exists()


def test_an_object_made_elsewhere_is_not_taken_over(owner: Member, git_server: GitServer) -> None:
    created = owner.api.post(
        "/api/v1/policies/",
        {
            "name": "no-latest",
            "team": "payments",
            "rules": [
                {"name": "r", "kind": "object", "match": {"kinds": ["Pod"]}, "expression": "true"}
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    git_server.commit({"fleet/p.yaml": POLICY})
    repo = register(owner, git_server)

    sync = run(owner, repo["id"])

    assert sync.errors == [
        "fleet/p.yaml:1: Policy no-latest exists and is not managed by this repository; "
        "adopt: true on the repository takes it over"
    ]


def test_an_unreachable_repository_fails_without_leaking_the_credential(
    owner: Member, git_server: GitServer
) -> None:
    repo = register(owner, git_server, url=git_server.url.replace("fleet.git", "nope.git"))

    sync = run(owner, repo["id"])

    assert sync.result == SyncResult.FAILED
    assert sync.errors[0].startswith("git fetch failed")
    assert "ghp_" not in json.dumps(owner.api.get(f"{API}{repo['id']}/syncs/").json())


def _signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_webhook_needs_the_signature_and_queues_a_sync(
    owner: Member, git_server: GitServer
) -> None:
    from rest_framework.test import APIClient

    repo = register(owner, git_server)
    url = f"{API}{repo['id']}/webhook/"
    body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
    anonymous = APIClient()

    bad = anonymous.post(
        url, body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=_signed(body, "wrong")
    )
    missing = anonymous.post(url, body, content_type="application/json")
    unknown = anonymous.post(
        f"{API}999999/webhook/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=_signed(body),
    )
    assert (bad.status_code, missing.status_code, unknown.status_code) == (403, 403, 403)
    assert not GitSync.objects.exists()

    other = json.dumps({"ref": "refs/heads/feature"}).encode()
    ignored = anonymous.post(
        url, other, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=_signed(other)
    )
    assert ignored.status_code == 200 and not GitSync.objects.exists()

    wrong_gitlab = anonymous.post(
        url, body, content_type="application/json", HTTP_X_GITLAB_TOKEN="not-it"
    )
    assert wrong_gitlab.status_code == 403 and not GitSync.objects.exists()

    gitlab = anonymous.post(url, body, content_type="application/json", HTTP_X_GITLAB_TOKEN=SECRET)
    assert gitlab.status_code == 202 and GitSync.objects.count() == 1
    GitSync.objects.all().delete()

    good = anonymous.post(
        url, body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=_signed(body)
    )
    assert good.status_code == 202
    sync = GitSync.objects.get()
    assert (sync.trigger, sync.apply, sync.result) == ("webhook", True, "pending")
    assert Operation.objects.get(pk=str(sync.operation_id)).kind == "gitops.sync"


def test_poll_queues_each_repository_once_per_interval(
    owner: Member, git_server: GitServer
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    repo = register(owner, git_server, poll_interval=300, auto_apply=False)
    register(owner, git_server, name="off", poll_interval=0)
    now = timezone.now()

    assert git_repositories_poll(now=now) == 1
    assert git_repositories_poll(now=now + timedelta(seconds=10)) == 0
    assert git_repositories_poll(now=now + timedelta(seconds=300)) == 1
    syncs = GitSync.objects.filter(repository_id=repo["id"])
    assert [(s.trigger, s.apply) for s in syncs] == [("poll", False), ("poll", False)]


def test_roles(
    owner: Member, operator: Member, viewer: Member, outsider: Member, git_server: GitServer
) -> None:
    body = {"name": "x", "team": "payments", "url": git_server.url}
    assert operator.api.post(API, body, format="json").status_code == 403
    repo = register(owner, git_server)
    detail = f"{API}{repo['id']}/"
    assert viewer.api.get(detail).status_code == 200
    assert viewer.api.post(f"{detail}sync/").status_code == 403
    assert operator.api.patch(detail, {"ref": "dev"}, format="json").status_code == 403
    assert outsider.api.get(detail).status_code == 404
    assert outsider.api.post(f"{detail}sync/").status_code == 404
    assert outsider.api.get(API).json()["results"] == []
    bad = owner.api.post(API, {**body, "url": "file:///etc"}, format="json")
    assert bad.status_code == 400 and "url" in bad.json()["error"]["fields"]


def test_pages(owner: Member, viewer: Member, git_server: GitServer) -> None:
    git_server.commit({"fleet/web.yaml": web()})
    repo = register(owner, git_server)
    run(owner, repo["id"])

    listing = viewer.page.get("/gitops/")
    detail = viewer.page.get(f"/gitops/{repo['id']}/")

    assert listing.status_code == 200 and b"fleet" in listing.content
    assert detail.status_code == 200
    assert b"web" in detail.content and b"synced" in detail.content
    assert b"Sync now</button>" not in detail.content
    assert viewer.page.post(f"/gitops/{repo['id']}/sync/").status_code == 403
    queued = owner.page.post(f"/gitops/{repo['id']}/sync/")
    assert queued.status_code == 302 and GitSync.objects.count() == 2
    edit = owner.page.post(
        "/applications/web/placement/", {"placement": "{}", "overrides": "[]", "rollout": "{}"}
    )
    assert edit.status_code == 403


def test_a_cluster_set_and_a_policy_scoped_to_it(owner: Member, git_server: GitServer) -> None:
    from clusters.models import ClusterSet
    from tests.factories import make_cluster

    # given: a cluster of the team, and a set naming it with a policy scoped to the set
    make_cluster(team=Team.objects.get(name="payments"), name="edge-1")
    sets = (
        "apiVersion: keelson.io/v1\nkind: ClusterSet\nmetadata: {name: prod}\n"
        "spec: {members: [edge-1]}\n"
    )
    scoped = POLICY.replace("severity: high", "severity: high\n  cluster_sets: [prod]")
    git_server.commit({"fleet/sets.yaml": sets, "fleet/p.yaml": scoped})
    repo = register(owner, git_server)

    # when
    assert run(owner, repo["id"]).result == SyncResult.APPLIED

    # then
    prod = ClusterSet.objects.get(name="prod")
    assert [c.name for c in prod.members.all()] == ["edge-1"]
    assert prod.managed_by is not None and prod.managed_by["repository"] == repo["id"]
    policy = Policy.objects.get(name="no-latest")
    assert [s.name for s in policy.cluster_sets.all()] == ["prod"]
    refused = owner.api.patch("/api/v1/cluster-sets/prod/", {"selector": "a=b"}, format="json")
    assert refused.status_code == 409

    # when: both are removed from git
    # (the folder stays: a folder missing from the commit fails the sync, pruning nothing)
    git_server.commit({"fleet/sets.yaml": None, "fleet/p.yaml": None, "fleet/README.md": "#\n"})
    sync = run(owner, repo["id"])

    # then: the policy is pruned before the set it is scoped to
    assert [(c["action"], c["kind"]) for c in sync.plan] == [
        ("prune", "Policy"),
        ("prune", "ClusterSet"),
    ]
    assert not ClusterSet.objects.filter(name="prod").exists()
    assert not Policy.objects.filter(name="no-latest").exists()


def test_https_with_a_token_reaches_git_in_a_header_never_in_a_message(
    owner: Member, https_git_server: HttpsGitServer, settings: Any
) -> None:
    # given: git http-backend over HTTPS that wants the token; its CA configured
    settings.KEELSON_GITOPS_CA_FILE = str(https_git_server.ca_file)
    first = https_git_server.commit({"fleet/web.yaml": web()})
    good = register(owner, https_git_server, credentials=TOKEN, name="https")
    bad = register(owner, https_git_server, credentials="wrong-token-42", name="wrong")

    # when
    synced = run(owner, good["id"])
    refused = run(owner, bad["id"])

    # then: the token went as a header; a refused one fails, naming neither token
    assert (synced.result, synced.commit) == (SyncResult.APPLIED, first)
    assert (Application.objects.get(name="web").managed_by or {}).get("name") == "https"
    assert any(value.startswith("Basic ") for value in https_git_server.seen)
    assert refused.result == SyncResult.FAILED
    assert refused.errors[0].startswith("git fetch failed")
    text = json.dumps(refused.errors) + Operation.objects.get(pk=str(refused.operation_id)).error
    assert "wrong-token-42" not in text and TOKEN not in text
