"""deploy/: the example overlay, rendered by kustomize, applied with a server-side dry run
against a real kube-apiserver (the test environment's, Kubernetes 1.20): the API server
validates and defaults every object (admission included) and stores nothing.

Static invariants (security contexts, requests, probes, secrets as files) are checked in
tests/unit/ops/test_image_and_manifests.py.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAY = Path("overlays") / "production"
SECRET_FILES = ("secret-key", "encryption-keys", "database-url", "broker-url", "redis-url")

pytestmark = pytest.mark.kube


def _kubectl() -> str:
    """kubectl with a kustomize that reads the manifests (v4 or later: `patches`,
    `replicas`); the 1.20 build's own kubectl embeds kustomize v2, which does not."""
    from localkube.binaries import cache_dir

    for candidate in (shutil.which("kubectl"), str(cache_dir() / "kubectl")):
        if candidate and Path(candidate).exists():
            version = subprocess.run(
                [candidate, "version", "--client"], capture_output=True, text=True, check=False
            ).stdout
            match = re.search(r"Kustomize Version: v(\d+)", version)
            if match and int(match.group(1)) >= 4:
                return candidate
    pytest.fail("no kubectl with kustomize v4+ on PATH or in the kube cache")


def _render(kubectl: str, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a copy of deploy/ with throw-away secret files."""
    copy = tmp_path / "deploy"
    shutil.copytree(REPO / "deploy", copy)
    for name in SECRET_FILES:
        (copy / OVERLAY / "secrets" / name).write_text(secrets.token_urlsafe(40) + "\n")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(copy / OVERLAY)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def _for_the_test_server(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The rendered objects as the 1.20 test server can take them, in a namespace of the
    test's own. The manifests keep policy/v1 PodDisruptionBudgets (what every supported
    cluster serves: 1.21 and later); 1.20 serves only policy/v1beta1, whose fields for
    minAvailable/maxUnavailable and selector are the same, so only the version changes."""
    adapted = []
    for obj in objects:
        obj = yaml.safe_load(yaml.safe_dump(obj))
        if obj["kind"] == "PodDisruptionBudget":
            assert obj["apiVersion"] == "policy/v1"
            obj["apiVersion"] = "policy/v1beta1"
        obj["metadata"]["namespace"] = namespace
        adapted.append(obj)
    return adapted


def _apply(kubectl: str, kubeconfig: Path, objects: list[dict[str, Any]], tmp_path: Path) -> Any:
    manifest = tmp_path / f"apply-{secrets.token_hex(4)}.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    return subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "--dry-run=server",
            "-f",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_example_overlay_passes_a_server_side_dry_run(
    kube_cluster: Any, tmp_path: Path
) -> None:
    # given the rendered overlay and a namespace on a real API server
    kubectl = _kubectl()
    kubeconfig = kube_cluster.kubeconfig_path
    rendered = _render(kubectl, tmp_path)
    kinds = sorted({o["kind"] for o in rendered})
    assert kinds == [
        "ConfigMap", "Deployment", "Ingress", "NetworkPolicy", "PodDisruptionBudget",
        "Secret", "Service", "ServiceAccount",
    ]  # fmt: skip
    namespace = f"keelson-deploy-{secrets.token_hex(3)}"
    created = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "create", "namespace", namespace],
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    try:
        # when it is applied with a server-side dry run
        result = _apply(kubectl, kubeconfig, _for_the_test_server(rendered, namespace), tmp_path)

        # then the server accepts every object and stores none
        assert result.returncode == 0, result.stderr
        accepted = re.findall(r"^(\S+) (?:created|configured|unchanged) \(server dry run\)$",
                              result.stdout, re.M)  # fmt: skip
        assert len(accepted) == len(rendered), result.stdout
        for obj in rendered:
            assert any(a.endswith("/" + obj["metadata"]["name"]) for a in accepted), obj
        stored = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "-n", namespace, "get",
             "deployments,secrets,configmaps,networkpolicies", "-o", "name"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "keelson" not in stored

        # and the dry run does validate: an invalid object is refused by the server
        broken = _for_the_test_server(rendered, namespace)
        web = next(o for o in broken if o["metadata"]["name"] == "keelson-web"
                   and o["kind"] == "Deployment")  # fmt: skip
        web["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = -1
        refused = _apply(kubectl, kubeconfig, broken, tmp_path)
        assert refused.returncode != 0
        assert "runAsUser" in refused.stderr
    finally:
        subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "delete", "namespace", namespace,
             "--wait=false"],
            capture_output=True, check=False,
        )  # fmt: skip


def test_secret_and_config_references_follow_the_generated_names(tmp_path: Path) -> None:
    # given the rendered overlay (kustomize appends a content hash to generated names)
    rendered = _render(_kubectl(), tmp_path)
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    secret = next(n for k, n in names if k == "Secret")
    config = next(n for k, n in names if k == "ConfigMap")
    assert secret.startswith("keelson-secrets-") and config.startswith("keelson-config-")
    # then every pod mounts that secret and reads that config
    for obj in rendered:
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {secret}
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["envFrom"] == [{"configMapRef": {"name": config}}]
            assert container["image"] == "registry.example.com/platform/keelson:0.1.0"
