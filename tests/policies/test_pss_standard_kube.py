"""PSS conformance over every control a Kubernetes 1.20 API server can store, beside
test_pss_conformance_kube.py (which covers Running as Non-root, the probe/lifecycle host
control and the sysctls). Each case is a pod that meets the Restricted profile except for
one field, created in a real kube-apiserver (which validates and defaults it), then judged
by every bundled PSS policy. The version is v1.29 through a cluster set pin (issue 26) and
latest with no pin.

The expected verdicts come from the standard's text, kubernetes.io/docs/concepts/security/
pod-security-standards (quoted per control below), not from the library. Fields the 1.20
server drops (hostProcess, procMount without its feature gate, appArmorProfile, spec.os,
hostUsers, image volumes, generic ephemeral volumes) are covered by
tests/unit/policies/test_pss_controls.py only.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from accounts.models import Team
from clusters.models import Cluster, ClusterSet
from localkube.env import LocalCluster
from policies.models import Policy
from policies.services.evaluation import cluster_evaluate
from policies.services.library import library_load
from policies.services.pins import cluster_set_pin
from tests.clusters.helpers import register_local
from tests.factories import make_team

pytestmark = [pytest.mark.django_db, pytest.mark.kube]

# A pod meeting every control of the Restricted profile (and so of Baseline):
# "Running as Non-root ... Allowed Values: true"; "Seccomp ... RuntimeDefault, Localhost";
# "Privilege Escalation ... Allowed Values: false"; "Capabilities ... Any list of
# capabilities that includes ALL".
BASE: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "nginx:1.25",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}
ESCALATION = "pss-restricted-privilege-escalation"
R_CAPS = "pss-restricted-capabilities"
R_SECCOMP = "pss-restricted-seccomp"
VOLUMES = "pss-restricted-volume-types"


def _pod(**changes: Any) -> dict[str, Any]:
    """BASE with `changes`: `pod__field` sets spec.field (a dict is merged one level),
    `c__field` sets the container's field, `sc__field` its securityContext field,
    `psc__field` the pod's securityContext field, `annotations` the metadata's."""
    spec = copy.deepcopy(BASE)
    container = spec["containers"][0]
    for key, value in changes.items():
        where, _, field = key.partition("__")
        if where == "pod":
            spec[field] = value
        elif where == "c":
            container[field] = value
        elif where == "sc":
            if value is None:
                container["securityContext"].pop(field, None)
            else:
                container["securityContext"][field] = value
        elif where == "psc":
            if value is None:
                spec["securityContext"].pop(field, None)
            else:
                spec["securityContext"][field] = value
    return spec


def _volume(source: dict[str, Any]) -> dict[str, Any]:
    return {"pod__volumes": [{"name": "v", **source}]}


# (case, pod spec, annotations, policies expected to reject it at latest, at v1.29)
Case = tuple[str, dict[str, Any], dict[str, str], set[str], set[str]]


def _cases() -> list[Case]:
    both = lambda *names: (set(names), set(names))  # noqa: E731  the same at both versions
    table: list[tuple[str, dict[str, Any], dict[str, str], tuple[set[str], set[str]]]] = [
        ("base", _pod(), {}, both()),
        # Host Namespaces: "spec.hostNetwork, spec.hostPID, spec.hostIPC. Allowed Values:
        # Undefined/nil, false"
        ("hostnetwork-true", _pod(pod__hostNetwork=True), {}, both("pss-baseline-host-namespaces")),
        ("hostpid-true", _pod(pod__hostPID=True), {}, both("pss-baseline-host-namespaces")),
        ("hostipc-true", _pod(pod__hostIPC=True), {}, both("pss-baseline-host-namespaces")),
        ("hostnetwork-false", _pod(pod__hostNetwork=False), {}, both()),
        # Privileged Containers: "Allowed Values: Undefined/nil, false". (A privileged
        # container may not also set allowPrivilegeEscalation false: the API server refuses
        # it, so it breaks Privilege Escalation's "Allowed Values: false" too.)
        (
            "privileged-true",
            _pod(sc__privileged=True, sc__allowPrivilegeEscalation=None),
            {},
            both("pss-baseline-privileged", ESCALATION),
        ),
        ("privileged-false", _pod(sc__privileged=False), {}, both()),
        # Capabilities (baseline): "Adding additional capabilities beyond those listed below
        # must be disallowed": AUDIT_WRITE, CHOWN, ... NET_BIND_SERVICE, ... SYS_CHROOT.
        # Capabilities (restricted): "Containers must drop ALL capabilities, and are only
        # permitted to add back the NET_BIND_SERVICE capability."
        (
            "caps-add-net-raw",
            _pod(sc__capabilities={"drop": ["ALL"], "add": ["NET_RAW"]}),
            {},
            both("pss-baseline-capabilities", R_CAPS),
        ),
        (
            "caps-add-chown",
            _pod(sc__capabilities={"drop": ["ALL"], "add": ["CHOWN"]}),
            {},
            both(R_CAPS),
        ),
        (
            "caps-add-net-bind",
            _pod(sc__capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
            {},
            both(),
        ),
        ("caps-drop-net-raw", _pod(sc__capabilities={"drop": ["NET_RAW"]}), {}, both(R_CAPS)),
        ("caps-unset", _pod(sc__capabilities=None), {}, both(R_CAPS)),
        # HostPath Volumes: "spec.volumes[*].hostPath. Allowed Values: Undefined/nil".
        # Volume Types (restricted): "Every item in the spec.volumes[*] list must set one of
        # the following fields to a non-null value: configMap, csi, downwardAPI, emptyDir,
        # ephemeral, persistentVolumeClaim, projected, secret" (image since v1.33 upstream).
        (
            "volume-hostpath",
            _pod(**_volume({"hostPath": {"path": "/var"}})),
            {},
            both("pss-baseline-host-path", VOLUMES),
        ),
        (
            "volume-nfs",
            _pod(**_volume({"nfs": {"server": "10.0.0.1", "path": "/x"}})),
            {},
            both(VOLUMES),
        ),
        ("volume-gitrepo", _pod(**_volume({"gitRepo": {"repository": "x"}})), {}, both(VOLUMES)),
        ("volume-configmap", _pod(**_volume({"configMap": {"name": "c"}})), {}, both()),
        ("volume-secret", _pod(**_volume({"secret": {"secretName": "s"}})), {}, both()),
        ("volume-emptydir", _pod(**_volume({"emptyDir": {}})), {}, both()),
        ("volume-downwardapi", _pod(**_volume({"downwardAPI": {"items": []}})), {}, both()),
        ("volume-projected", _pod(**_volume({"projected": {"sources": []}})), {}, both()),
        (
            "volume-pvc",
            _pod(**_volume({"persistentVolumeClaim": {"claimName": "c"}})),
            {},
            both(),
        ),
        ("volume-csi", _pod(**_volume({"csi": {"driver": "x.example.com"}})), {}, both()),
        # Host Ports: "Allowed Values: Undefined/nil, Known list (not supported by the
        # built-in Pod Security Admission controller), 0"
        (
            "hostport-8080",
            _pod(c__ports=[{"containerPort": 80, "hostPort": 8080}]),
            {},
            both("pss-baseline-host-ports"),
        ),
        ("hostport-unset", _pod(c__ports=[{"containerPort": 80}]), {}, both()),
        # AppArmor: metadata.annotations["container.apparmor.security.beta.kubernetes.io/*"]
        # "Allowed Values: Undefined/nil, runtime/default, localhost/*"
        (
            "apparmor-unconfined",
            _pod(),
            {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
            both("pss-baseline-apparmor"),
        ),
        (
            "apparmor-runtime-default",
            _pod(),
            {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"},
            both(),
        ),
        (
            "apparmor-localhost",
            _pod(),
            {"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-nginx"},
            both(),
        ),
        # SELinux: type "Allowed Values: Undefined/"", container_t, container_init_t,
        # container_kvm_t, container_engine_t (since Kubernetes 1.31)"; user and role
        # "Allowed Values: Undefined/"""
        ("selinux-type-container", _pod(psc__seLinuxOptions={"type": "container_t"}), {}, both()),
        (
            "selinux-type-spc",
            _pod(psc__seLinuxOptions={"type": "spc_t"}),
            {},
            both("pss-baseline-selinux"),
        ),
        (
            "selinux-type-engine",
            _pod(sc__seLinuxOptions={"type": "container_engine_t"}),
            {},
            (set(), {"pss-baseline-selinux"}),
        ),
        (
            "selinux-user",
            _pod(sc__seLinuxOptions={"user": "system_u"}),
            {},
            both("pss-baseline-selinux"),
        ),
        (
            "selinux-role",
            _pod(psc__seLinuxOptions={"role": "object_r"}),
            {},
            both("pss-baseline-selinux"),
        ),
        ("selinux-level", _pod(sc__seLinuxOptions={"level": "s0:c123,c456"}), {}, both()),
        # Seccomp (baseline): "must not be explicitly set to Unconfined". Seccomp
        # (restricted): "must be explicitly set to one of the allowed values [RuntimeDefault,
        # Localhost]. Both the Unconfined profile and the absence of a profile are
        # prohibited ... The container fields may be undefined/nil if the pod-level
        # spec.securityContext.seccompProfile.type field is set appropriately. Conversely,
        # the pod-level field may be undefined/nil if _all_ container-level fields are set."
        (
            "seccomp-pod-unconfined",
            _pod(psc__seccompProfile={"type": "Unconfined"}),
            {},
            both("pss-baseline-seccomp", R_SECCOMP),
        ),
        (
            "seccomp-container-unconfined",
            _pod(sc__seccompProfile={"type": "Unconfined"}),
            {},
            both("pss-baseline-seccomp", R_SECCOMP),
        ),
        ("seccomp-unset", _pod(psc__seccompProfile=None), {}, both(R_SECCOMP)),
        (
            "seccomp-container-only",
            _pod(psc__seccompProfile=None, sc__seccompProfile={"type": "RuntimeDefault"}),
            {},
            both(),
        ),
        (
            "seccomp-localhost",
            _pod(psc__seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}),
            {},
            both(),
        ),
        # Privilege Escalation: "spec.containers[*].securityContext.allowPrivilegeEscalation
        # ... Allowed Values: false"
        ("escalation-true", _pod(sc__allowPrivilegeEscalation=True), {}, both(ESCALATION)),
        ("escalation-unset", _pod(sc__allowPrivilegeEscalation=None), {}, both(ESCALATION)),
        # Running as Non-root user: "Containers must not set runAsUser to 0 ... Allowed
        # Values: any non-zero value, undefined/null"
        (
            "runasuser-pod-0",
            _pod(psc__runAsUser=0),
            {},
            both("pss-restricted-run-as-user"),
        ),
        (
            "runasuser-container-0",
            _pod(sc__runAsUser=0),
            {},
            both("pss-restricted-run-as-user"),
        ),
        ("runasuser-1000", _pod(sc__runAsUser=1000), {}, both()),
    ]
    return [(name, spec, notes, latest, v129) for name, spec, notes, (latest, v129) in table]


@pytest.fixture
def namespace(kube_cluster: LocalCluster) -> Iterator[str]:
    core = k8s.CoreV1Api(kube_cluster.control_plane.api_client())
    name = f"pss-all-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _rejections(cluster: Cluster, team: Team, namespace: str) -> dict[str, set[str]]:
    """Pod name -> the PSS policies reporting it, from a forced evaluation."""
    policies = [p for p in Policy.objects.filter(team=team) if p.name.startswith("pss-")]
    rows = cluster_evaluate(cluster=cluster, policy_ids=[p.pk for p in policies], force=True)
    assert len(rows) == len(policies)
    found: dict[str, set[str]] = {}
    for row in rows:
        assert row.errors == [], (row.policy.name, row.errors)
        assert not row.violations_partial
        for violation in row.violations:
            if violation["namespace"] == namespace:
                found.setdefault(violation["name"], set()).add(row.policy.name)
    return found


def test_every_control_at_v1_29_by_a_set_pin_and_at_latest(
    kube_cluster: LocalCluster, namespace: str
) -> None:
    # given every case created as a pod, as the API server stores it
    team = make_team()
    cluster = register_local(kube_cluster, team=team, name=f"pss-{uuid.uuid4().hex[:6]}")
    core = k8s.CoreV1Api(kube_cluster.control_plane.api_client())
    cases = _cases()
    for name, spec, notes, *_ in cases:
        core.create_namespaced_pod(
            namespace, {"metadata": {"name": name, "annotations": notes}, "spec": spec}
        )
    stored = core.read_namespaced_pod("selinux-type-engine", namespace)
    assert stored.spec.containers[0].security_context.se_linux_options.type == "container_engine_t"
    library_load(team=team)

    # when the library judges them at latest (no pin anywhere)
    found = _rejections(cluster, team, namespace)
    # then exactly the forbidden values are reported, each by its control(s)
    assert {name: found.get(name, set()) for name, *_ in cases} == {
        name: latest for name, _, _, latest, _ in cases
    }

    # when the cluster's set pins v1.29 (the policies themselves stay unpinned)
    pinned = ClusterSet.objects.create(name=f"pin-{uuid.uuid4().hex[:6]}", team=team)
    pinned.members.add(cluster)
    cluster_set_pin(cluster_set=pinned, pss_version="v1.29", actor=None)
    found = _rejections(cluster, team, namespace)
    # then the verdicts are the standard's at v1.29 (container_engine_t came in 1.31)
    assert {name: found.get(name, set()) for name, *_ in cases} == {
        name: v129 for name, _, _, _, v129 in cases
    }
