"""GitOps sync of a large repository (issue 23): 200 applications (each with a Placement)
and 50 policies, served by a real `git daemon` on loopback.

Timed in process, end to end as the sync operation runs (gitops.services.git_sync_run):
fetch, read and validate every document, plan, apply through the API's services in one
transaction. First the sync that creates everything (target < 60 s), then the same
commit again, where nothing changes (target < 5 s). Each row carries the load average."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import fleet
from benchmarks.env import child_env
from benchmarks.results import Row

TEAM = "bench-gitops"
FIRST_TARGET_S = 60.0
AGAIN_TARGET_S = 5.0
GIT_ENV = child_env(
    GIT_AUTHOR_NAME="Bench",
    GIT_AUTHOR_EMAIL="bench@example.invalid",
    GIT_COMMITTER_NAME="Bench",
    GIT_COMMITTER_EMAIL="bench@example.invalid",
    GIT_CONFIG_NOSYSTEM="1",
    GIT_CONFIG_GLOBAL=os.devnull,
)


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def application(index: int) -> str:
    name = f"gb-app-{index:03d}"
    return f"""\
apiVersion: keelson.io/v1
kind: Application
metadata:
  name: {name}
spec:
  namespace: gb-{index % 20:02d}
  description: Benchmark application {index}
  manifests: |
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: {name}}}
    spec:
      replicas: 2
      selector: {{matchLabels: {{app: {name}}}}}
      template:
        metadata: {{labels: {{app: {name}}}}}
        spec:
          containers:
          - name: app
            image: "registry.example.com/{name}:1.{index}"
            resources: {{requests: {{cpu: 50m, memory: 32Mi}}}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: {name}}}
    spec:
      selector: {{app: {name}}}
      ports: [{{port: 80, targetPort: 8080}}]
  rollout: {{strategy: rolling, max_concurrency: 5}}
---
apiVersion: keelson.io/v1
kind: Placement
metadata:
  name: {name}
spec:
  selector: env=prod
"""


def policy(index: int) -> str:
    return f"""\
apiVersion: keelson.io/v1
kind: Policy
metadata:
  name: gb-policy-{index:02d}
spec:
  severity: {("low", "medium", "high")[index % 3]}
  rules:
  - name: rule-{index}
    kind: object
    match: {{kinds: [Deployment]}}
    expression: "object.spec.replicas <= {index + 2}"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _repository(base: Path, applications: int, policies: int) -> None:
    """The bare repository base/fleet.git with one commit of every document."""
    work = base / "work"
    (work / "fleet" / "applications").mkdir(parents=True)
    (work / "fleet" / "policies").mkdir(parents=True)
    for index in range(applications):
        (work / "fleet" / "applications" / f"gb-app-{index:03d}.yaml").write_text(
            application(index)
        )
    for index in range(policies):
        (work / "fleet" / "policies" / f"gb-policy-{index:02d}.yaml").write_text(policy(index))
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "fleet", cwd=work)
    _git("clone", "-q", "--bare", str(work), str(base / "fleet.git"), cwd=base)


def _clean(team_name: str) -> None:
    from applications.models import Application
    from clusters.models import ClusterSet
    from gitops.models import GitRepository
    from policies.models import Policy

    GitRepository.objects.filter(team__name=team_name).delete()
    Application.objects.filter(team__name=team_name).delete()
    Policy.all_objects.filter(team__name=team_name).delete()
    ClusterSet.objects.filter(team__name=team_name).delete()


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run(*, applications: int = 200, policies: int = 50) -> list[Row]:
    from django.conf import settings

    from gitops.choices import PrunePolicy, SyncResult, SyncTrigger
    from gitops.models import GitSync
    from gitops.services import git_repository_create, git_sync_run, git_sync_start

    owner = fleet.team(TEAM)
    _clean(TEAM)
    base = Path(tempfile.mkdtemp(prefix="keelson-bench-gitops-"))
    settings.KEELSON_GITOPS_DIR = str(base / "checkouts")
    started = time.perf_counter()
    _repository(base, applications, policies)
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            f"--base-path={base}",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        env=GIT_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)
        repository = git_repository_create(
            actor=None,
            team=owner,
            name="bench",
            url=f"git://127.0.0.1:{port}/fleet.git",
            path="fleet",
            poll_interval=0,
            prune=PrunePolicy.PRUNE,
        )
        seeded = time.perf_counter() - started

        def sync() -> tuple[float, GitSync, str]:
            queued = git_sync_start(
                repository=repository, trigger=SyncTrigger.MANUAL, actor=None, apply=True
            )
            t = time.perf_counter()
            assert queued.operation_id is not None
            git_sync_run(operation_id=queued.operation_id)
            seconds = time.perf_counter() - t
            return seconds, GitSync.objects.get(pk=queued.pk), _load()

        first_s, first, first_load = sync()
        again_s, again, again_load = sync()
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    objects = f"{applications} applications + {policies} policies"
    created = sum(1 for c in first.plan if c["action"] == "create")
    return [
        Row("setup", f"gitops: repository of {objects}, git daemon", f"{seeded:.1f} s"),
        Row(
            "gitops",
            f"first sync of {objects}: fetch, validate, plan, apply",
            f"{first_s:.1f} s ({created} created, load {first_load})",
            target=f"< {FIRST_TARGET_S:.0f} s",
            ok=first.result == SyncResult.APPLIED
            and created == applications + policies
            and first_s < FIRST_TARGET_S,
            value=first_s,
            detail={"result": first.result, "errors": first.errors[:5], "load": first_load},
        ),
        Row(
            "gitops",
            "sync again, nothing changed",
            f"{again_s:.2f} s (load {again_load})",
            target=f"< {AGAIN_TARGET_S:.0f} s",
            ok=again.result == SyncResult.UNCHANGED and again_s < AGAIN_TARGET_S,
            value=again_s,
            detail={"result": again.result, "errors": again.errors[:5], "load": again_load},
        ),
    ]
