"""Rollback to an earlier commit against a real git server: the commit is fetched, planned
and applied like a sync, the repository is pinned to it (polls and webhooks leave it
alone) until it is unpinned, and only commits the repository applied are accepted."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Team
from applications.models import Application
from audit.models import AuditEvent
from gitops.choices import SyncResult
from gitops.git import GitError, git_fetch_commit
from gitops.models import GitRepository, GitSync
from gitops.services import git_repositories_poll, git_sync_run
from localkube.env import LocalCluster
from operations.models import Operation
from tests.factories import Member
from tests.gitops.conftest import TOKEN, GitServer, HttpsGitServer, git
from tests.gitops.test_clusters import image
from tests.gitops.test_sync import API, _signed, register, run, web
from tests.placement.helpers import drive_rollout
from tests.placement.test_propagation import register as register_cluster

pytestmark = pytest.mark.django_db


def image_of(name: str = "web") -> str:
    """The image of the application's newest version."""
    manifests = Application.objects.get(name=name).versions.values_list("manifests", flat=True)
    text = manifests.first() or ""
    return text.split('image: "', 1)[1].split('"', 1)[0]


def polled(now: object) -> list[GitSync]:
    """Poll, and run the syncs it queued here (and their rollouts)."""
    before = set(GitSync.objects.values_list("pk", flat=True))
    git_repositories_poll(now=now)  # type: ignore[arg-type]
    syncs = list(GitSync.objects.exclude(pk__in=before))
    for sync in syncs:
        git_sync_run(operation_id=sync.operation_id)  # type: ignore[arg-type]
        sync.refresh_from_db()
        for change in sync.plan:
            if change.get("rollout"):
                drive_rollout(Operation.objects.get(pk=change["rollout"]))
    return syncs


def test_rollback_reapplies_a_commit_pins_it_and_unpin_follows_the_branch_again(
    owner: Member, operator: Member, git_server: GitServer
) -> None:
    # given: commit A (image v1) and commit B (v2), both synced
    a = git_server.commit({"fleet/web.yaml": web("nginx:1.25")})
    repo = register(owner, git_server, poll_interval=300)
    assert run(operator, repo["id"]).commit == a
    b = git_server.commit({"fleet/web.yaml": web("nginx:1.26")})
    assert (run(operator, repo["id"]).result, image_of()) == (SyncResult.APPLIED, "nginx:1.26")

    # when: the rollback to A is previewed
    preview = run(operator, repo["id"], "rollback", commit=a, preview=True)

    # then: its plan changes the manifests back; nothing is pinned or applied
    assert (preview.trigger, preview.result, preview.commit) == ("rollback", "planned", a)
    [change] = preview.plan
    assert (change["action"], list(change["diff"])) == ("change", ["manifests"])
    assert '-      - {name: web, image: "nginx:1.26"' in change["diff"]["manifests"]["diff"]
    assert '+      - {name: web, image: "nginx:1.25"' in change["diff"]["manifests"]["diff"]
    assert GitRepository.objects.get(pk=repo["id"]).pinned_commit == ""
    assert image_of() == "nginx:1.26"

    # when: rolled back (a 7-digit prefix names it)
    sync = run(operator, repo["id"], "rollback", commit=a[:7])

    # then: v1 again, rolled out, marked with A; the repository is pinned at A
    assert (sync.trigger, sync.result, sync.commit, sync.errors) == ("rollback", "applied", a, [])
    assert image_of() == "nginx:1.25"
    assert (Application.objects.get(name="web").managed_by or {})["commit"] == a
    rollout = Operation.objects.get(pk=sync.plan[0]["rollout"])
    assert rollout.kind == "application.rollout" and rollout.state == "succeeded"
    detail = operator.api.get(f"{API}{repo['id']}/").json()
    assert detail["pinned_commit"] == a and detail["pinned_at"]
    event = AuditEvent.objects.get(action="gitrepository.rollback")
    assert event.detail["commit"] == a and event.detail["from"] == b
    page = operator.page.get(f"/gitops/{repo['id']}/")
    assert b"Pinned at <code>" + a[:7].encode() in page.content

    # when: polls come while the branch is still at B, and a push webhook
    later = timezone.now() + timedelta(seconds=301)
    assert polled(later) == []
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    hook = APIClient().post(
        f"{API}{repo['id']}/webhook/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=_signed(body),
    )

    # then: nothing moved
    assert hook.status_code == 200 and "pinned" in hook.json()["detail"]
    assert image_of() == "nginx:1.25" and GitSync.objects.count() == 4

    # when: "Sync now" while pinned
    again = run(operator, repo["id"])

    # then: it syncs the pinned commit, not the branch
    assert (again.commit, again.result, image_of()) == (a, SyncResult.UNCHANGED, "nginx:1.25")

    # when: unpinned
    unpinned = operator.api.post(f"{API}{repo['id']}/unpin/")

    # then: the next poll (due at once) applies the branch head B
    assert unpinned.status_code == 200 and unpinned.json()["pinned_commit"] == ""
    [followed] = polled(timezone.now())
    assert (followed.trigger, followed.result, followed.commit) == ("poll", "applied", b)
    assert image_of() == "nginx:1.26"


def test_only_a_commit_the_repository_applied_can_be_rolled_back_to(
    owner: Member, operator: Member, viewer: Member, git_server: GitServer
) -> None:
    # given: A applied, B only previewed, C failed
    a = git_server.commit({"fleet/web.yaml": web()})
    repo = register(owner, git_server)
    run(owner, repo["id"])
    b = git_server.commit({"fleet/web.yaml": web("nginx:1.26")})
    assert run(owner, repo["id"], "preview").result == SyncResult.PLANNED
    c = git_server.commit({"fleet/web.yaml": web().replace("namespace: shop", "namespace: No_")})
    assert run(owner, repo["id"]).result == SyncResult.FAILED
    url = f"{API}{repo['id']}/rollback/"

    # when / then: each is refused with a 400 naming the commit; nothing pinned or queued
    for commit in (b, c, "0" * 40):
        refused = operator.api.post(url, {"commit": commit}, format="json")
        assert refused.status_code == 400, refused.json()
        assert refused.json()["error"]["fields"]["commit"] == [
            f"{commit} was never synced successfully by fleet."
        ]
    bad = operator.api.post(url, {"commit": "not-a-sha"}, format="json")
    assert bad.status_code == 400 and "commit" in bad.json()["error"]["fields"]
    assert viewer.api.post(url, {"commit": a}, format="json").status_code == 403
    assert GitRepository.objects.get(pk=repo["id"]).pinned_commit == ""
    assert GitSync.objects.filter(trigger="rollback").count() == 0

    # and the page offers the rollback (previewed first) on the applied sync only
    page = operator.page.get(f"/gitops/{repo['id']}/")
    assert page.content.count(b"Roll back to this commit") == 1
    queued = operator.page.post(f"/gitops/{repo['id']}/rollback/", {"commit": a, "preview": "1"})
    assert queued.status_code == 302
    assert GitSync.objects.get(trigger="rollback").apply is False


def test_an_earlier_commit_is_fetched_shallow_by_its_sha(
    git_server: GitServer, tmp_path: Path
) -> None:
    # given: three commits on a protocol v2 server (git daemon)
    git_server.commit({"a.yaml": "one\n"})
    second = git_server.commit({"a.yaml": "two\n"})
    git_server.commit({"a.yaml": "three\n"})
    workdir = tmp_path / "checkout"

    # when
    fetched = git_fetch_commit(url=git_server.url, ref="main", commit=second, workdir=workdir)

    # then: that commit alone (depth 1), checked out
    assert fetched == second and (workdir / "a.yaml").read_text() == "two\n"
    assert git("rev-list", "--count", "HEAD", cwd=workdir) == "1"


def test_a_server_refusing_a_sha_gets_a_deeper_fetch_and_a_rewritten_commit_fails(
    https_git_server_v0: HttpsGitServer, tmp_path: Path
) -> None:
    # given: a protocol v0 server (it serves only what its refs point at), three commits
    server = https_git_server_v0
    server.commit({"a.yaml": "one\n"})
    second = server.commit({"a.yaml": "two\n"})
    server.commit({"a.yaml": "three\n"})

    def fetch(commit: str, workdir: Path) -> str:
        return git_fetch_commit(
            url=server.url,
            ref="main",
            commit=commit,
            workdir=workdir,
            credentials=TOKEN,
            ca_file=str(server.ca_file),
        )

    # when
    fetched = fetch(second, tmp_path / "checkout")

    # then: the ref's history was fetched, and the commit checked out
    assert fetched == second and (tmp_path / "checkout" / "a.yaml").read_text() == "two\n"
    assert git("rev-list", "--count", "HEAD", cwd=tmp_path / "checkout") == "2"

    # when: the branch is rewritten without it (force-pushed)
    git("checkout", "-q", "--orphan", "rewritten", cwd=server.work)
    (server.work / "a.yaml").write_text("new\n")
    git("commit", "-q", "-am", "rewritten", cwd=server.work)
    git("push", "-q", "--force", "origin", "HEAD:refs/heads/main", cwd=server.work)

    # then: a checkout that never had it cannot get it
    with pytest.raises(GitError, match=rf"Commit {second[:7]} is not in the history of main\."):
        fetch(second, tmp_path / "fresh")


@pytest.mark.kube
def test_a_rollback_puts_the_earlier_image_back_on_the_cluster(
    owner: Member, operator: Member, git_server: GitServer, kube_cluster: LocalCluster
) -> None:
    # given: a real cluster labelled env=prod running v2 from commit B, after A's v1
    register_cluster(kube_cluster, Team.objects.get(name="payments"), {"env": "prod"})
    a = git_server.commit({"fleet/web.yaml": web("nginx:1.25")})
    repo = register(owner, git_server)
    run(operator, repo["id"])
    git_server.commit({"fleet/web.yaml": web("nginx:1.26")})
    run(operator, repo["id"])
    assert image(kube_cluster) == "nginx:1.26"

    # when: rolled back to A from the page (previewed, then confirmed)
    owner.page.post(f"/gitops/{repo['id']}/rollback/", {"commit": a, "preview": "1"})
    git_sync_run(operation_id=GitSync.objects.get(trigger="rollback").operation_id)  # type: ignore[arg-type]
    page = owner.page.get(f"/gitops/{repo['id']}/").content.decode()
    assert f"Roll back to {a[:7]}</button>" in page and f"<code>{kube_cluster.name}</code>" in page
    assert image(kube_cluster) == "nginx:1.26"
    sync = run(operator, repo["id"], "rollback", commit=a)

    # then: v1 runs on the cluster again
    assert (sync.result, sync.commit) == (SyncResult.APPLIED, a)
    assert image(kube_cluster) == "nginx:1.25"


def test_unpin_from_the_page_needs_an_operator_and_makes_the_repository_due(
    owner: Member, operator: Member, viewer: Member, git_server: GitServer
) -> None:
    # given: a repository pinned by a rollback, polled a minute ago
    a = git_server.commit({"fleet/web.yaml": web()})
    repo = register(owner, git_server)
    run(owner, repo["id"])
    run(owner, repo["id"], "rollback", commit=a)
    GitRepository.objects.filter(pk=repo["id"]).update(
        last_polled_at=timezone.now() - timedelta(minutes=1)
    )

    # when / then: a viewer may not unpin; an operator may
    assert viewer.page.post(f"/gitops/{repo['id']}/unpin/").status_code == 403
    assert GitRepository.objects.get(pk=repo["id"]).pinned_commit == a
    assert operator.page.post(f"/gitops/{repo['id']}/unpin/").status_code == 302
    repository = GitRepository.objects.get(pk=repo["id"])
    assert (repository.pinned_commit, repository.pinned_at, repository.last_polled_at) == (
        "",
        None,
        None,
    )
    assert AuditEvent.objects.get(action="gitrepository.unpin").detail == {"commit": a}
