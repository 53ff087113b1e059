"""An Application's manifests by path in the repository: a folder of plain YAML, or a
Kustomize overlay rendered with `kubectl kustomize` (KEELSON_KUBECTL, by default the
kubectl on PATH), synced from a real git server. Remote bases and paths out of the
checkout are refused before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from applications.models import Application
from gitops.choices import SyncResult
from tests.factories import Member
from tests.gitops.conftest import GitServer
from tests.gitops.test_sync import register, run

pytestmark = pytest.mark.django_db

BASE_DEPLOYMENT = """\
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
BASE = "resources:\n- deployment.yaml\n"
# The fields Kustomize v2.0.3 (in Debian's kubectl 1.20) reads too; v5 reads them with a
# deprecation warning.
OVERLAY = """\
bases:
- ../../base
images:
- {name: nginx, newTag: "1.27"}
patchesStrategicMerge:
- replicas.yaml
"""
REPLICAS = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n"


def application(source: str) -> str:
    return (
        "apiVersion: keelson.io/v1\nkind: Application\nmetadata: {name: web}\n"
        f"spec:\n  namespace: shop\n  {source}\n"
    )


def deployments(application: Application) -> list[dict[str, Any]]:
    latest = application.versions.first()
    assert latest is not None
    return [d for d in yaml.safe_load_all(latest.manifests) if d and d["kind"] == "Deployment"]


def test_a_kustomize_overlay_is_rendered_into_the_application(
    owner: Member, git_server: GitServer
) -> None:
    # given: a base and a prod overlay changing replicas and image, outside the documents
    git_server.commit(
        {
            "apps/web/base/deployment.yaml": BASE_DEPLOYMENT,
            "apps/web/base/kustomization.yaml": BASE,
            "apps/web/overlays/prod/kustomization.yaml": OVERLAY,
            "apps/web/overlays/prod/replicas.yaml": REPLICAS,
            "fleet/web.yaml": application("kustomize: {path: apps/web/overlays/prod}"),
        }
    )
    repo = register(owner, git_server)

    # when
    sync = run(owner, repo["id"])

    # then: the application's manifests carry the overlay's values
    assert (sync.result, sync.errors) == (SyncResult.APPLIED, [])
    (deployment,) = deployments(Application.objects.get(name="web"))
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"

    # when: the overlay moves on; then a new version, planned as a manifests diff
    git_server.commit(
        {"apps/web/overlays/prod/kustomization.yaml": OVERLAY.replace("1.27", "1.28")}
    )
    sync = run(owner, repo["id"])
    (change,) = sync.plan
    assert (change["action"], list(change["diff"])) == ("change", ["manifests"])
    diff = change["diff"]["manifests"]["diff"]
    assert "-      - image: nginx:1.27\n+      - image: nginx:1.28\n" in diff


def test_a_folder_of_plain_yaml_is_read_in_order(owner: Member, git_server: GitServer) -> None:
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {a: b}\n"
    git_server.commit(
        {
            "apps/plain/2-deployment.yaml": BASE_DEPLOYMENT,
            "apps/plain/1-config.yml": config,
            "apps/plain/README.md": "# not read\n",
            "fleet/web.yaml": application("manifests: {path: apps/plain}"),
        }
    )
    repo = register(owner, git_server)

    assert run(owner, repo["id"]).result == SyncResult.APPLIED

    latest = Application.objects.get(name="web").versions.first()
    assert latest is not None and latest.manifests == config + "---\n" + BASE_DEPLOYMENT


def test_remote_bases_and_paths_out_of_the_checkout_are_refused(
    owner: Member, git_server: GitServer, settings: Any
) -> None:
    remote = "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.5.0\n"
    escape = "resources:\n- ../../../../../etc\n"
    git_server.commit(
        {
            "apps/remote/kustomization.yaml": remote,
            "apps/escape/kustomization.yaml": escape,
            "fleet/a.yaml": application("kustomize: {path: apps/remote}").replace("web", "a"),
            "fleet/b.yaml": application("kustomize: {path: ../outside}").replace("web", "b"),
            "fleet/c.yaml": application("kustomize: {path: apps/escape}").replace("web", "c"),
            "fleet/d.yaml": application("manifests: {path: apps/link}").replace("web", "d"),
        }
    )
    (git_server.work / "apps" / "link").symlink_to("/etc")
    git_server.commit({}, "a symbolic link out of the repository")
    repo = register(owner, git_server)

    sync = run(owner, repo["id"])

    assert sync.result == SyncResult.FAILED
    assert sync.errors == [
        "fleet/a.yaml:1: Application a: spec.kustomize.path: apps/remote/kustomization.yaml: "
        "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.5.0: remote "
        "bases are refused; vendor it into the repository",
        "fleet/b.yaml:1: Application b: spec.kustomize.path: ../outside: outside the "
        "repository checkout.",
        "fleet/c.yaml:1: Application c: spec.kustomize.path: apps/escape/kustomization.yaml: "
        "../../../../../etc: outside the repository checkout.",
        "fleet/d.yaml:1: Application d: spec.manifests.path: apps/link: outside the repository "
        "checkout.",
    ]
    assert not Application.objects.exists()


def test_without_kubectl_a_kustomize_document_fails_validation(
    owner: Member, git_server: GitServer, settings: Any
) -> None:
    settings.KEELSON_KUBECTL = "/nonexistent/kubectl"
    git_server.commit(
        {
            "apps/web/base/deployment.yaml": BASE_DEPLOYMENT,
            "apps/web/base/kustomization.yaml": BASE,
            "fleet/web.yaml": application("kustomize: {path: apps/web/base}"),
        }
    )
    repo = register(owner, git_server)

    sync = run(owner, repo["id"])

    assert sync.errors == [
        "fleet/web.yaml:1: Application web: spec.kustomize: kubectl not found "
        "(KEELSON_KUBECTL=/nonexistent/kubectl); Kustomize cannot be rendered."
    ]
