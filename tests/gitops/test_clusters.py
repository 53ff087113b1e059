"""GitOps reaches the clusters (issue 23's acceptance): a commit pushed to the local git
server, announced by an HMAC-signed webhook, lands on the chosen real kube-apiserver; a
changed image is previewed (the diff and the clusters), approved and rolled out; a removed
application is pruned from its cluster. Syncs and rollouts run in this process, as their
tasks would."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import Team
from applications.models import Application
from applications.rollout.deletion import application_delete_run
from gitops.choices import SyncResult
from gitops.models import GitRepository, GitSync
from gitops.services import git_sync_run
from localkube.env import LocalCluster
from operations.models import Operation
from tests.factories import Member
from tests.gitops.conftest import GitServer
from tests.gitops.test_sync import API, _signed, register, web
from tests.placement.helpers import drive_rollout
from tests.placement.test_propagation import deployment
from tests.placement.test_propagation import register as register_cluster

pytestmark = [pytest.mark.django_db, pytest.mark.kube]
ONE_REPLICA = """\
apiVersion: keelson.io/v1
kind: Policy
metadata:
  name: one-replica
spec:
  severity: low
  rules:
  - name: single
    kind: object
    match: {kinds: [apps/Deployment], namespaces: [shop]}
    expression: "object.spec.replicas <= 1"
"""


def pushed(repository: int, commit: str) -> GitSync:
    """The webhook of a push to main, signed; its sync run here."""
    body = json.dumps({"ref": "refs/heads/main", "after": commit}).encode()
    response = APIClient().post(
        f"{API}{repository}/webhook/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=_signed(body),
    )
    assert response.status_code == 202, response.content
    git_sync_run(operation_id=response.json()["operation"])
    return GitSync.objects.get(pk=response.json()["sync"])


def rolled_out(sync: GitSync, name: str = "web") -> Operation:
    change = next(c for c in sync.plan if c["name"] == name)
    operation = drive_rollout(Operation.objects.get(pk=change["rollout"]))
    assert operation.state == "succeeded", operation.error
    return operation


def image(local: LocalCluster) -> Any:
    found = deployment(local, "shop")
    return None if found is None else found.spec.template.spec.containers[0].image


def test_a_commit_lands_on_the_clusters_a_change_is_approved_and_a_removal_prunes(
    owner: Member, operator: Member, git_server: GitServer, kube_cluster: LocalCluster
) -> None:
    # given: a real cluster of the team labelled env=prod, and a repository applying
    # automatically
    register_cluster(kube_cluster, Team.objects.get(name="payments"), {"env": "prod"})
    repo = register(owner, git_server)

    # when: a commit adds an application placed on env=prod, and its push is announced
    first = git_server.commit({"fleet/web.yaml": web("nginx:1.25")})
    sync = pushed(repo["id"], first)

    # then: it is applied and rolled out; the Deployment runs on the cluster
    assert (sync.result, sync.commit, sync.errors) == (SyncResult.APPLIED, first, [])
    rolled_out(sync)
    assert image(kube_cluster) == "nginx:1.25"

    # given: each commit now waits for approval
    response = owner.api.patch(f"{API}{repo['id']}/", {"auto_apply": False}, format="json")
    assert response.status_code == 200, response.json()

    # when: a second commit changes the image and adds a policy web (2 replicas) fails
    second = git_server.commit({"fleet/web.yaml": web("nginx:1.26"), "fleet/p.yaml": ONE_REPLICA})
    preview = pushed(repo["id"], second)

    # then: the plan shows the diff and the clusters (the same one: nothing added,
    # removed or moved, and the same requests cost the same) ...
    assert (preview.result, preview.apply) == (SyncResult.PLANNED, False)
    change, created = preview.plan
    assert change["action"] == "change" and list(change["diff"]) == ["manifests"]
    assert '+      - {name: web, image: "nginx:1.26"' in change["diff"]["manifests"]["diff"]
    placement = change["placement"]
    assert placement["clusters"] == [kube_cluster.name]
    assert (placement["added"], placement["removed"], placement["replicas_moved"]) == ([], [], {})
    assert (placement["cost_per_month"], placement["cost_unpriced"]) == ("0.00", [])
    assert "rollout" not in change
    # ... and where the new policy would find what: the Deployment on the cluster
    assert (created["action"], created["name"]) == ("create", "one-replica")
    assert created["compliance"] == {
        "clusters": [
            {
                "cluster": kube_cluster.name,
                "violations": 1,
                "objects": ["Deployment shop/web"],
                "new": True,
            }
        ],
        "not_previewed": [],
    }
    page = owner.page.get(f"/gitops/{repo['id']}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"<code>{kube_cluster.name}</code>" in text
    assert f"Non-compliant on {kube_cluster.name} (newly): 1 violation" in text
    assert image(kube_cluster) == "nginx:1.25"
    assert not Operation.objects.filter(kind="application.rollout", state="pending").exists()

    # when: the plan is approved
    response = operator.api.post(f"{API}{repo['id']}/sync/", {"commit": second}, format="json")
    assert response.status_code == 202, response.json()
    git_sync_run(operation_id=response.json()["operation"])
    approved = GitSync.objects.get(pk=response.json()["sync"])

    # then: the new image is on the cluster
    assert approved.result == SyncResult.APPLIED, approved.errors
    rolled_out(approved)
    assert image(kube_cluster) == "nginx:1.26"

    # when: a third commit removes the application, previewed and approved
    third = git_server.commit({"fleet/web.yaml": None})
    pruning = pushed(repo["id"], third).plan
    assert [(c["action"], c["name"]) for c in pruning] == [
        ("unchanged", "one-replica"),
        ("prune", "web"),
    ]
    # (the preview: it leaves the cluster, and what its requests cost there is saved)
    placement = pruning[1]["placement"]
    assert (placement["clusters"], placement["removed"]) == ([], [kube_cluster.name])
    assert Decimal(placement["cost_per_month"]) < 0 and placement["cost_unpriced"] == []
    response = operator.api.post(f"{API}{repo['id']}/sync/", {"commit": third}, format="json")
    git_sync_run(operation_id=response.json()["operation"])
    assert GitSync.objects.get(pk=response.json()["sync"]).result == SyncResult.APPLIED

    # then: its deletion removes it from the cluster, and then from Keelson
    deletion = Operation.objects.get(kind="application.delete")
    application_delete_run(operation_id=deletion.pk)
    deletion.refresh_from_db()
    assert deletion.state == "succeeded", deletion.error
    assert deployment(kube_cluster, "shop") is None
    assert not Application.objects.filter(name="web").exists()
    assert GitRepository.objects.get(pk=repo["id"]).last_commit == third
