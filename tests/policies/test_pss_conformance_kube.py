"""PSS conformance in a real kube-apiserver: pods generated from the standard's allowed
and forbidden values of the controls issue 26 changed, stored by the API server (which
validates and defaults them), then judged by the bundled library at the pinned versions
v1.29 and latest. Expected verdicts come from the standard's text (quoted in
tests/unit/policies/test_pss_controls.py):

- Running as Non-root: allowed "true"; container fields "may be undefined/null if the
  pod-level spec.securityContext.runAsNonRoot is set to true".
- Probes / Lifecycle Hooks (v1.34+): the host field of httpGet/tcpSocket probes and
  lifecycle handlers; allowed "", undefined/null.
- Sysctls: net.ipv4.tcp_rmem and net.ipv4.tcp_wmem are safe from v1.32.

The test server is Kubernetes 1.20: it drops fields it does not know (spec.os,
hostUsers, image volumes), so those exemptions are covered by the unit tests only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from accounts.models import Team
from clusters.models import Cluster
from localkube.env import LocalCluster
from policies.models import Policy
from policies.services.evaluation import cluster_evaluate
from policies.services.library import library_load
from policies.services.policies import PolicySpec, policy_update
from tests.clusters.helpers import register_local
from tests.factories import make_team

pytestmark = [pytest.mark.django_db, pytest.mark.kube]
NON_ROOT = "pss-restricted-run-as-non-root"
HOST_PROBES = "pss-baseline-host-probes"
SYSCTLS = "pss-baseline-sysctls"


def _non_root_cases() -> list[tuple[str, dict[str, Any], dict[str, Any], bool]]:
    """(name, pod spec extra, container extra, allowed) for every pod/container setting."""
    cases = []
    for pod_value in (True, False, None):
        for container_value in (True, False, None):
            spec = {} if pod_value is None else {"securityContext": {"runAsNonRoot": pod_value}}
            container = (
                {}
                if container_value is None
                else {"securityContext": {"runAsNonRoot": container_value}}
            )
            # allowed: nothing set to false, and every container covered by a true
            allowed = (
                pod_value is not False
                and container_value is not False
                and (pod_value is True or container_value is True)
            )
            name = f"nonroot-{str(pod_value).lower()}-{str(container_value).lower()}"
            cases.append((name, spec, container, allowed))
    return cases


def _host_cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(name, container extra, allowed) with host set, empty and unset in each field."""
    cases = []
    for where in ("livenessProbe", "readinessProbe", "startupProbe", "postStart", "preStop"):
        for action in ("httpGet", "tcpSocket"):
            for host, label in (("10.0.0.1", "set"), ("", "empty"), (None, "unset")):
                handler: dict[str, Any] = {action: {"port": 8080}}
                if host is not None:
                    handler[action]["host"] = host
                extra = (
                    {"lifecycle": {where: handler}}
                    if where in ("postStart", "preStop")
                    else {where: handler}
                )
                name = f"host-{where.lower()}-{action.lower()}-{label}"
                cases.append((name, extra, host is None or host == ""))
    return cases


SYSCTL_CASES = [
    ("sysctl-tcp-rmem", "net.ipv4.tcp_rmem", {"v1.29": False, "latest": True}),
    ("sysctl-tcp-wmem", "net.ipv4.tcp_wmem", {"v1.29": False, "latest": True}),
    ("sysctl-keepalive", "net.ipv4.tcp_keepalive_time", {"v1.29": True, "latest": True}),
    ("sysctl-msgmax", "kernel.msgmax", {"v1.29": False, "latest": False}),
]


@pytest.fixture
def namespace(kube_cluster: LocalCluster) -> Iterator[str]:
    core = k8s.CoreV1Api(kube_cluster.control_plane.api_client())
    name = f"pss-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def team() -> Team:
    return make_team()


@pytest.fixture
def cluster(kube_cluster: LocalCluster, team: Team) -> Cluster:
    return register_local(kube_cluster, team=team, name=f"pss-{uuid.uuid4().hex[:6]}")


def _create(
    core: k8s.CoreV1Api, namespace: str, name: str, spec: dict[str, Any], **container: Any
) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25", **container}], **spec},
    }
    core.create_namespaced_pod(namespace, body)


def _violating(cluster: Cluster, team: Team, namespace: str) -> dict[str, set[str]]:
    policies = Policy.objects.filter(team=team, name__in=[NON_ROOT, HOST_PROBES, SYSCTLS])
    rows = cluster_evaluate(cluster=cluster, policy_ids=[p.pk for p in policies], force=True)
    found: dict[str, set[str]] = {}
    for row in rows:
        assert row.errors == []
        found[row.policy.name] = {v["name"] for v in row.violations if v["namespace"] == namespace}
    return found


def test_the_library_agrees_with_the_standard_at_v1_29_and_latest(
    kube_cluster: LocalCluster, namespace: str, team: Team, cluster: Cluster
) -> None:
    # given pods for every case, as the API server stores them
    core = k8s.CoreV1Api(kube_cluster.control_plane.api_client())
    non_root, hosts = _non_root_cases(), _host_cases()
    for name, spec, container, _ in non_root:
        _create(core, namespace, name, spec, **container)
    for name, container, _ in hosts:
        _create(core, namespace, name, {}, **container)
    for name, sysctl, _ in SYSCTL_CASES:
        _create(
            core,
            namespace,
            name,
            {
                "securityContext": {
                    "sysctls": [
                        {"name": sysctl, "value": "4096 87380 6291456" if "mem" in sysctl else "1"}
                    ]
                }
            },
        )
    stored = core.read_namespaced_pod("host-prestop-tcpsocket-set", namespace)
    assert stored.spec.containers[0].lifecycle.pre_stop.tcp_socket.host == "10.0.0.1"
    library_load(team=team)
    names = [n for n, *_ in non_root] + [n for n, *_ in hosts] + [n for n, *_ in SYSCTL_CASES]

    for version in ("latest", "v1.29"):
        # when the library is pinned to the version and the cluster evaluated
        for policy in Policy.objects.filter(team=team, name__in=[NON_ROOT, HOST_PROBES, SYSCTLS]):
            if policy.pss_version != version:
                pinned = PolicySpec(**{**PolicySpec.of(policy).__dict__, "pss_version": version})
                policy_update(policy=policy, spec=pinned, actor=None)
        found = _violating(cluster, team, namespace)

        # then exactly the forbidden cases are reported
        # (each control is checked over its own cases: the others set no runAsNonRoot)
        mine = {n for n, *_ in non_root}
        assert found[NON_ROOT] & mine == {n for n, _, _, ok in non_root if not ok}, version
        # the host control exists from v1.34: nothing is forbidden at v1.29
        expected_hosts = {n for n, _, ok in hosts if not ok} if version == "latest" else set()
        assert found[HOST_PROBES] & set(names) == expected_hosts, version
        assert found[SYSCTLS] & set(names) == {n for n, _, ok in SYSCTL_CASES if not ok[version]}, (
            version
        )
