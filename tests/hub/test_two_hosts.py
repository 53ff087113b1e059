"""Scale-out across two hosts (issue 27): two network namespaces, each running Keelson's web
and a Celery worker that reach PostgreSQL, Redis, RabbitMQ and the kube-apiservers only
over their veth (benchmarks/netns.py). One host is killed with SIGKILL (every process of it
at once) mid-sweep, then mid-rollout: the other finishes the work, and the database and
the real kube-apiservers show each piece of it done exactly once."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from kubernetes import client as k8s

from applications.models import ClusterWork, PlacementDecision
from applications.rollout import rollout_start
from applications.services import application_create
from benchmarks.netns import Host, namespace_pids, two_hosts
from clusters.services.collection import clusters_collect
from core.celery import app as celery_app
from core.celery import task_send
from localkube.env import LocalCluster, LocalKubeEnv
from operations.models import Operation, PipelineRun
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation.locks import LOCK_CLASS
from policies.services.library import library_load
from tests.clusters.helpers import register_local, wait_for
from tests.factories import make_team
from tests.placement.test_propagation import manifests, register
from tests.support import child_database_url

pytestmark = [pytest.mark.kube, pytest.mark.netns, pytest.mark.django_db(transaction=True)]

SWEEP_CLUSTERS = 24
SWEEP_TASK = "policies.tasks.policies_evaluate_batch_task"
ROLLOUT_TASK = "applications.tasks.application_rollout_task"


@pytest.fixture(scope="module")
def pair(kube_env: LocalKubeEnv) -> Iterator[dict[str, LocalCluster]]:
    started = {name: kube_env.start_cluster(name) for name in ("hub-a", "hub-b")}
    yield started
    for name in started:
        kube_env.stop_cluster(name, remove_data=True)


def nodes(hosts: list[Host]) -> dict[str, Host]:
    return {f"{host.node}@{socket.gethostname()}": host for host in hosts}


@pytest.fixture
def hosts(pair: dict[str, LocalCluster], tmp_path: Path) -> Iterator[list[Host]]:
    """Hosts "a" and "b", each with web and a worker up (the worker answering pings)."""
    ports = [local.control_plane.port for local in pair.values()]
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    celery_app.control.purge()
    with two_hosts(env, tmp_path, loopback_ports=ports) as started:
        for host in started:
            host.start_web()
            host.start_worker()
        for host in started:
            host.wait_web()
        wanted = set(nodes(started))
        deadline = time.monotonic() + 90
        while True:
            answered = celery_app.control.ping(destination=sorted(wanted), timeout=1) or []
            if {name for reply in answered for name in reply} == wanted:
                break
            logs = "\n".join(host.log_tail() for host in started)
            assert time.monotonic() < deadline, f"workers not up within 90 s\n{logs}"
        yield started


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, host: Host) -> Any:
    """wait_for, with `host`'s logs as they are at the end in the failure message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{host.log_tail(6000)}")


def holder(hosts: list[Host], task: str) -> Host | None:
    """The host whose worker runs, holds or waits to run (countdown) a task named `task`
    (each question ends as soon as both workers answered)."""
    by_node = nodes(hosts)
    inspect = celery_app.control.inspect(destination=sorted(by_node), timeout=2, limit=len(hosts))
    for ask in ("active", "scheduled", "reserved"):
        for node, tasks in (getattr(inspect, ask)() or {}).items():
            requests = [t.get("request", t) if ask == "scheduled" else t for t in tasks]
            if any(r.get("name") == task for r in requests):
                return by_node[node]
    return None


def test_each_host_reaches_the_services_only_over_its_veth(hosts: list[Host]) -> None:
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
    for host in hosts:
        # the host's own loopback has no PostgreSQL; the veth's far side has
        assert host.run(["python3", "-c", probe, "127.0.0.1", "5432"]).returncode != 0
        assert host.run(["python3", "-c", probe, host.gateway, "5432"]).returncode == 0
        assert host.env["DATABASE_URL"].split("@")[1].startswith(f"{host.gateway}:")
        # and its web answers ready (database, Redis and broker reachable) on its address
        import urllib.request

        with urllib.request.urlopen(f"{host.web_url}/readyz", timeout=10) as response:  # noqa: S310
            assert response.status == 200


def test_a_host_killed_mid_sweep_leaves_the_other_to_finish_it_once(
    pair: dict[str, LocalCluster], hosts: list[Host]
) -> None:
    # given registrations of a real cluster, collected, and the bundled policy library
    team = make_team()
    local = pair["hub-a"]
    clusters = [register_local(local, team=team, name=f"sweep-{n}") for n in range(SWEEP_CLUSTERS)]
    ids = [cluster.pk for cluster in clusters]
    clusters_collect(cluster_ids=ids)
    library_load(team=team)
    policies = Policy.objects.filter(team=team, enabled=True).count()
    assert policies > 0
    # the last cluster's evaluation lock held, as by a worker judging it: the batch judges
    # the others, then waits (deterministically mid-sweep, whatever the machine's speed)
    held = ids[-1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, held])
    try:
        # when beat's sweep is sent, and a host's worker takes its batch
        task_send("policies.tasks.policies_evaluate_fanout_task")
        wait_for(
            lambda: (
                PolicyEvaluation.objects.filter(cluster_id__in=ids).count()
                == (len(ids) - 1) * policies
            ),
            timeout=180,
            what="every cluster but the held one to be judged",
        )
        busy = wait_for(lambda: holder(hosts, SWEEP_TASK), timeout=30, what="the batch's host")
        (other,) = [host for host in hosts if host is not busy]
        # and that host dies
        busy.kill()
        assert not namespace_pids(busy.netns)
        assert not PolicyEvaluation.objects.filter(cluster_id=held).exists()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, held])
    # then the other host receives the batch again and finishes the sweep
    wait_until(
        lambda: PolicyEvaluation.objects.filter(cluster_id=held).count() == policies,
        timeout=180,
        what=f"the held cluster to be judged by host {other.name}",
        host=other,
    )
    time.sleep(2)  # anything duplicated would land now
    # and every (policy, cluster) pair was judged exactly once in this sweep
    pairs = (
        PolicyEvaluation.objects.filter(cluster_id__in=ids)
        .order_by()
        .values("policy_id", "cluster_id")
        .annotate(n=Count("id"))
    )
    assert len(pairs) == len(ids) * policies
    assert {row["n"] for row in pairs} == {1}
    assert PipelineRun.objects.filter(name="policies").exists()
    assert other.processes["worker"].poll() is None


def test_a_host_killed_mid_rollout_leaves_the_other_to_finish_it_once(
    pair: dict[str, LocalCluster], hosts: list[Host]
) -> None:
    # given two clusters rolled one at a time
    team = make_team()
    register(pair["hub-a"], team, {"hub": "yes"})
    register(pair["hub-b"], team, {"hub": "yes"})
    name = f"web-{uuid.uuid4().hex[:6]}"
    application = application_create(
        actor=None,
        team=team,
        name=name,
        namespace=name,
        manifests=manifests(),
        placement={"selector": "hub=yes", "replicas": 2, "prioritizers": {}},
        rollout={"strategy": "rolling", "max_concurrency": 1, "health_timeout_seconds": 90},
    )
    operation = rollout_start(application=application, actor=None)
    # when the host working on it dies after the first cluster was applied
    wait_for(
        lambda: operation.log_lines.filter(text__startswith="hub-a: applied").exists(),
        timeout=90,
        what="the first cluster to be applied",
    )
    busy = wait_for(lambda: holder(hosts, ROLLOUT_TASK), timeout=30, what="the rollout's host")
    (other,) = [host for host in hosts if host is not busy]
    busy.kill()
    assert Operation.objects.get(pk=operation.pk).state == "running"
    # then the other host finishes the same operation
    wait_until(
        lambda: Operation.objects.get(pk=operation.pk).is_final,
        timeout=180,
        what=f"the rollout to end on host {other.name}",
        host=other,
    )
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    # and nothing was done twice: one decision, one work per cluster, one deployment each
    assert PlacementDecision.objects.filter(application=application).count() == 1
    works = ClusterWork.objects.filter(application=application)
    assert sorted(works.values_list("cluster__name", flat=True)) == ["hub-a", "hub-b"]
    assert all(w.applied_version == 1 and w.previous_version is None for w in works)
    for local in pair.values():
        listed = k8s.AppsV1Api(local.control_plane.api_client()).list_namespaced_deployment(name)
        assert [d.metadata.name for d in listed.items] == ["web"]
        assert listed.items[0].spec.replicas == 2
    assert operation.log_lines.filter(text__startswith="Version 1 available").count() == 1
