"""Static invariants of the container image (Dockerfile) and the Kubernetes manifests
(deploy/): what must hold without building an image or reaching a cluster. The manifests'
server-side dry run is tests/ops/test_deploy_dry_run.py; the base install the image runs
(scripts/bootstrap.sh with no extras, as `make run`) is exercised from a fresh virtualenv
by tests/firstrun/test_make_run.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
SECRET_NAMES = ("SECRET_KEY", "KEELSON_ENCRYPTION_KEYS", "PASSWORD", "TOKEN", "DATABASE_URL")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


DOCKERFILE = instructions((REPO / "Dockerfile").read_text())


def _env() -> dict[str, str]:
    values: dict[str, str] = {}
    for word, rest in DOCKERFILE:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for word, rest in DOCKERFILE if word == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    # numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd
    assert uid.isdigit() and int(uid) != 0
    # and nothing runs after it as root again
    last_user = max(i for i, (word, _) in enumerate(DOCKERFILE) if word == "USER")
    assert all(word != "RUN" for word, _ in DOCKERFILE[last_user:])


def test_no_secret_is_baked_into_the_image() -> None:
    for word, rest in DOCKERFILE:
        if word in ("ENV", "ARG", "LABEL"):
            for name in SECRET_NAMES:
                assert not re.search(rf"\b{name}\w*=", rest), f"{word} sets {name}"
    ignored = (REPO / ".dockerignore").read_text().split()
    for local in (".venv", "var", ".git", "*.env", "deploy"):
        assert local in ignored, f".dockerignore must keep {local} out of the build context"
    copies = [rest for word, rest in DOCKERFILE if word in ("COPY", "ADD")]
    assert not any("secret" in rest.lower() for rest in copies)


def test_a_healthcheck_and_one_entry_point_for_every_role() -> None:
    words = [word for word, _ in DOCKERFILE]
    assert "HEALTHCHECK" in words
    assert dict(DOCKERFILE)["ENTRYPOINT"] == '["python", "-m", "fleet.container"]'
    from fleet.container import ROLES

    assert {"web", "worker", "beat", "migrate"} <= set(ROLES)


def test_python_deps_come_from_the_readmes_bootstrap_with_the_base_install_only() -> None:
    runs = " ".join(rest for word, rest in DOCKERFILE if word == "RUN")
    # `make run` (the README's command) installs with `bash scripts/bootstrap.sh`, no extras
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run:\n\t@bash scripts/bootstrap.sh\n", makefile, re.M)
    assert re.search(r"bash scripts/bootstrap\.sh(\s*&&|\s*$)", runs), runs
    assert "pip install" not in runs  # no second way of installing
    assert "collectstatic" in runs  # static files are collected at build


def test_static_files_live_outside_the_writable_volumes() -> None:
    env = _env()
    static, var = env["KEELSON_STATIC_ROOT"], env["KEELSON_VAR_DIR"]
    assert not static.startswith(var) and not static.startswith("/tmp")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # nothing written to a read-only root


# --- deploy/ -------------------------------------------------------------------------------


def _objects() -> list[dict[str, Any]]:
    found = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and "kind" in document and "spec" in document:
                found.append(document)
    return found


def _deployments() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _objects() if o["kind"] == "Deployment"}


def test_the_base_has_web_worker_and_two_beats() -> None:
    deployments = _deployments()
    assert set(deployments) == {"keelson-web", "keelson-worker", "keelson-beat"}
    assert deployments["keelson-beat"]["spec"]["replicas"] == 2
    web = deployments["keelson-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    kinds = {o["kind"] for o in _objects()}
    assert {"Service", "Ingress", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("name", ["keelson-web", "keelson-worker", "keelson-beat"])
def test_every_container_is_non_root_read_only_and_has_requests(name: str) -> None:
    env = _env()
    uid = int([rest for word, rest in DOCKERFILE if word == "USER"][-1].split(":")[0])
    pod = _deployments()[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name}/{container['name']}"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        requests = container["resources"]["requests"]
        assert requests.get("cpu") and requests.get("memory"), where
        assert container["resources"]["limits"].get("memory"), where
        # the image's writable paths are volumes, not the read-only root
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        for path in ("/tmp", env["KEELSON_VAR_DIR"]):
            assert path in mounts and "emptyDir" in volumes[mounts[path]], (where, path)


def test_secrets_reach_the_hub_only_as_files() -> None:
    config = dict(
        line.split("=", 1)
        for line in (DEPLOY / "base" / "config.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for setting in (
        "SECRET_KEY",
        "KEELSON_ENCRYPTION_KEYS",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "REDIS_URL",
    ):
        assert setting not in config, setting
        assert config[f"{setting}_FILE"].startswith("/run/secrets/keelson/")
    overlay = yaml.safe_load(
        (DEPLOY / "overlays" / "production" / "kustomization.yaml").read_text()
    )
    generator = overlay["secretGenerator"][0]
    assert "literals" not in generator and generator["files"]
    for deployment in _deployments().values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert not any(
                any(s in e["name"] for s in SECRET_NAMES) and "value" in e
                for e in container.get("env", [])
            )


def test_web_takes_connections_only_from_the_ingress_controller() -> None:
    policies = {o["metadata"]["name"]: o for o in _objects() if o["kind"] == "NetworkPolicy"}
    web = policies["keelson-web-ingress"]["spec"]
    assert web["policyTypes"] == ["Ingress"]
    (rule,) = web["ingress"]
    (source,) = rule["from"]
    assert source["namespaceSelector"] and source["podSelector"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    quiet = policies["keelson-no-ingress"]["spec"]
    assert quiet["policyTypes"] == ["Ingress"] and "ingress" not in quiet
    clusters = policies["keelson-egress-clusters"]["spec"]["egress"][0]["to"]
    assert "169.254.0.0/16" in clusters[0]["ipBlock"]["except"]
