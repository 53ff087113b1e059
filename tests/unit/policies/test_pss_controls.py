"""The bundled Pod Security Standards controls, one test (or a few) per control changed
for issue 26, each quoting the standard. Quotes come from the standard's page
(kubernetes.io/docs/concepts/security/pod-security-standards) and from the check
descriptions of the reference implementation (kubernetes/pod-security-admission,
policy/check_*.go); expectations are worked out from those words, not from the library.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Snapshot, judge
from policies.library import PSS_VERSION_CHOICES, library
from policies.services.policies import build_rules


def _pod(spec: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    """A Pod with one container `c` (fields from `container`) and extra pod `spec`."""
    body: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.25", **container}]}
    body.update(spec or {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "web", "uid": "uid-p"},
        "spec": body,
    }


def allowed(policy: str, pod: dict[str, Any], version: str = "latest") -> bool:
    """Whether the library policy read at `version` accepts the pod (no errors allowed)."""
    entry = next(p for p in library(version) if p["name"] == policy)
    snapshot = Snapshot(objects={("", "Pod"): [pod]}, namespaced={("", "Pod"): True}, cluster={})
    judgement = judge(build_rules(entry["rules"]), snapshot)
    assert judgement.errors == []
    return not judgement.violations


# --- Running as Non-root (restricted) ------------------------------------------------
# "Containers must be required to run as non-root users."
# Restricted fields: spec.securityContext.runAsNonRoot, spec.containers[*].securityContext.
# runAsNonRoot, spec.initContainers[*]..., spec.ephemeralContainers[*]...
# Allowed values: "true". "The container fields may be undefined/null if the pod-level
# spec.securityContext.runAsNonRoot is set to true."
NON_ROOT = "pss-restricted-run-as-non-root"


def test_run_as_non_root_pod_false_is_rejected_even_when_every_container_sets_true() -> None:
    # pod-level false is a restricted field with a value other than "true": forbidden,
    # whatever the containers say (the bug of issue 26 let this pass)
    pod = _pod({"securityContext": {"runAsNonRoot": False}}, securityContext={"runAsNonRoot": True})
    assert not allowed(NON_ROOT, pod)


@pytest.mark.parametrize(
    ("pod_level", "container_level", "expected"),
    [
        (True, None, True),  # "container fields may be undefined/null if the pod-level ... true"
        (True, True, True),
        (None, True, True),  # every container sets true
        (True, False, False),  # a container field that is set must be true
        (None, None, False),  # nothing says non-root
        (None, False, False),
        (False, None, False),
        (False, False, False),
    ],
)
def test_run_as_non_root_values(
    pod_level: bool | None, container_level: bool | None, expected: bool
) -> None:
    spec = {} if pod_level is None else {"securityContext": {"runAsNonRoot": pod_level}}
    container = (
        {} if container_level is None else {"securityContext": {"runAsNonRoot": container_level}}
    )
    assert allowed(NON_ROOT, _pod(spec, **container)) is expected


def test_run_as_non_root_applies_to_init_containers_without_their_own_setting() -> None:
    # every container kind is a restricted field: an init container with nothing set is
    # covered only by the pod-level true
    pod = _pod(securityContext={"runAsNonRoot": True})
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1"}]
    assert not allowed(NON_ROOT, pod)
    pod["spec"]["securityContext"] = {"runAsNonRoot": True}
    assert allowed(NON_ROOT, pod)


# --- Probes / Lifecycle Hooks (baseline, v1.34+) ----------------------------------------
# "Host field is restricted in the probes and lifecycle handlers." Restricted fields:
# spec.containers[*].{liveness,readiness,startup}Probe.{httpGet,tcpSocket}.host,
# spec.containers[*].lifecycle.{postStart,preStop}.{httpGet,tcpSocket}.host, the same for
# initContainers and ephemeralContainers. "Allowed Values: "", undefined/null".
HOST_PROBES = "pss-baseline-host-probes"
HOST_FIELDS = [
    ("livenessProbe", "httpGet"),
    ("livenessProbe", "tcpSocket"),
    ("readinessProbe", "httpGet"),
    ("readinessProbe", "tcpSocket"),
    ("startupProbe", "httpGet"),
    ("startupProbe", "tcpSocket"),
    ("lifecycle.postStart", "httpGet"),
    ("lifecycle.postStart", "tcpSocket"),
    ("lifecycle.preStop", "httpGet"),
    ("lifecycle.preStop", "tcpSocket"),
]


def _handler(where: str, action: str, host: str | None) -> dict[str, Any]:
    handler: dict[str, Any] = {action: {"port": 8080}}
    if action == "httpGet":
        handler[action]["path"] = "/healthz"
    if host is not None:
        handler[action]["host"] = host
    if where.startswith("lifecycle."):
        return {"lifecycle": {where.split(".")[1]: handler}}
    return {where: handler}


@pytest.mark.parametrize(("where", "action"), HOST_FIELDS)
def test_host_in_a_probe_or_lifecycle_handler_is_forbidden(where: str, action: str) -> None:
    assert not allowed(HOST_PROBES, _pod(**_handler(where, action, "169.254.169.254")))
    # "Allowed Values: "", undefined/null"
    assert allowed(HOST_PROBES, _pod(**_handler(where, action, "")))
    assert allowed(HOST_PROBES, _pod(**_handler(where, action, None)))


def test_host_probes_cover_init_and_ephemeral_containers() -> None:
    for field in ("initContainers", "ephemeralContainers"):
        pod = _pod()
        handler = _handler("readinessProbe", "tcpSocket", "10.0.0.1")
        pod["spec"][field] = [{"name": "x", "image": "busybox:1", **handler}]
        assert not allowed(HOST_PROBES, pod), field


def test_host_probes_is_a_control_from_v1_34_only() -> None:
    # the control was added to the standard in v1.34: a policy pinned before accepts it
    pod = _pod(**_handler("livenessProbe", "httpGet", "example.com"))
    assert allowed(HOST_PROBES, pod, "v1.33")
    assert not allowed(HOST_PROBES, pod, "v1.34")
    assert not allowed(HOST_PROBES, pod, "latest")


def test_the_library_claims_every_control_of_the_standard() -> None:
    # the standard's baseline controls (website headings) and restricted additions
    names = {p["name"] for p in library()}
    baseline = {
        "host-process",  # HostProcess
        "host-namespaces",  # Host Namespaces
        "privileged",  # Privileged Containers
        "capabilities",  # Capabilities
        "host-path",  # HostPath Volumes
        "host-ports",  # Host Ports
        "apparmor",  # AppArmor
        "selinux",  # SELinux
        "proc-mount",  # /proc Mount Type
        "seccomp",  # Seccomp
        "sysctls",  # Sysctls
        "host-probes",  # Probes / Lifecycle Hooks (v1.34+)
    }
    assert {f"pss-baseline-{n}" for n in baseline} <= names


# --- Sysctls (baseline) ------------------------------------------------------------------
# "Sysctls can disable security mechanisms or affect all containers on a host, and should
# be disallowed except for an allowed 'safe' subset." Allowed values (each with the version
# that added it to the standard): kernel.shm_rmid_forced, net.ipv4.ip_local_port_range,
# net.ipv4.ip_unprivileged_port_start, net.ipv4.tcp_syncookies, net.ipv4.ping_group_range,
# net.ipv4.ip_local_reserved_ports (v1.27+), net.ipv4.tcp_keepalive_time (v1.29+),
# net.ipv4.tcp_fin_timeout (v1.29+), net.ipv4.tcp_keepalive_intvl (v1.29+),
# net.ipv4.tcp_keepalive_probes (v1.29+), net.ipv4.tcp_rmem (v1.32+), net.ipv4.tcp_wmem
# (v1.32+), net.ipv4.tcp_slow_start_after_idle (v1.37+), net.ipv4.tcp_notsent_lowat (v1.37+).
SYSCTLS = "pss-baseline-sysctls"


def _sysctl(name: str) -> dict[str, Any]:
    return _pod({"securityContext": {"sysctls": [{"name": name, "value": "4096 87380 6291456"}]}})


@pytest.mark.parametrize("name", ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"])
def test_tcp_buffer_sysctls_are_safe_from_v1_32(name: str) -> None:
    assert allowed(SYSCTLS, _sysctl(name))  # latest: no false alarm
    assert allowed(SYSCTLS, _sysctl(name), "v1.32")
    assert not allowed(SYSCTLS, _sysctl(name), "v1.31")  # not yet in the safe subset


@pytest.mark.parametrize(
    "name", ["net.ipv4.tcp_keepalive_time", "net.ipv4.ip_local_reserved_ports"]
)
def test_sysctls_safe_before_v1_29_stay_safe_at_every_pin(name: str) -> None:
    assert allowed(SYSCTLS, _sysctl(name), "v1.29")


@pytest.mark.parametrize("name", ["kernel.msgmax", "net.core.somaxconn", "vm.swappiness"])
def test_sysctls_outside_the_safe_subset_are_forbidden(name: str) -> None:
    assert not allowed(SYSCTLS, _sysctl(name))


# --- Volume Types (restricted) -----------------------------------------------------------
# "In addition to restricting HostPath volumes, the restricted profile limits usage of
# inline pod volume sources to: configMap, downwardAPI, emptyDir, projected, secret, csi,
# persistentVolumeClaim, ephemeral, image."
VOLUMES = "pss-restricted-volume-types"


def _volume(source: dict[str, Any]) -> dict[str, Any]:
    return _pod({"volumes": [{"name": "v", **source}]})


def test_an_image_volume_is_allowed_under_restricted() -> None:
    volume = {
        "image": {"reference": "registry.example/models/llama:1", "pullPolicy": "IfNotPresent"}
    }
    assert allowed(VOLUMES, _volume(volume))
    assert allowed(VOLUMES, _volume(volume), "v1.29")


@pytest.mark.parametrize(
    "source",
    [
        {"hostPath": {"path": "/etc"}},
        {"nfs": {"server": "nfs.example", "path": "/x"}},
        {"gitRepo": {"repository": "https://example/x.git"}},
        {"awsElasticBlockStore": {"volumeID": "vol-1"}},
    ],
)
def test_other_inline_volume_sources_are_forbidden(source: dict[str, Any]) -> None:
    assert not allowed(VOLUMES, _volume(source))


# --- Pod OS field: Windows pods ----------------------------------------------------------
# "Restrictions on the following controls are only required if .spec.os.name is not
# windows: Privilege Escalation, Seccomp, Linux Capabilities" (v1.25+: "This is Linux only
# policy in v1.25+ (spec.os.name != windows)").
WINDOWS = {"os": {"name": "windows"}}
LINUX_ONLY = [
    "pss-restricted-privilege-escalation",
    "pss-restricted-seccomp",
    "pss-restricted-capabilities",
]


@pytest.mark.parametrize("policy", LINUX_ONLY)
def test_a_windows_pod_is_exempt_from_the_linux_only_controls(policy: str) -> None:
    # a bare container sets none of allowPrivilegeEscalation, seccompProfile, capabilities:
    # forbidden on Linux (or with no os), not required on Windows
    assert not allowed(policy, _pod())
    assert not allowed(policy, _pod({"os": {"name": "linux"}}))
    assert allowed(policy, _pod(WINDOWS))
    assert allowed(policy, _pod(WINDOWS), "v1.29")


@pytest.mark.parametrize(
    "policy",
    ["pss-restricted-run-as-non-root", "pss-restricted-volume-types", "pss-baseline-privileged"],
)
def test_windows_is_no_exemption_from_the_other_controls(policy: str) -> None:
    # only the three controls above are Linux-only; e.g. runAsNonRoot is still required
    pod = _pod(
        {**WINDOWS, "volumes": [{"name": "v", "hostPath": {"path": "C:\\"}}]},
        securityContext={"privileged": True},
    )
    assert not allowed(policy, pod)


# --- User namespaces: hostUsers false (v1.35+) -------------------------------------------
# Running as Non-root: allowed values "true ... any value if "hostUsers" is false".
# Running as Non-root user: "Containers must not set runAsUser: 0 unless the pod is in a
# user namespace ("hostUsers: false")."
# /proc Mount Type (baseline): "The default /proc masks are set up to reduce attack
# surface, and should be required by the baseline policy unless the pod is in a user
# namespace ("hostUsers: false")"; restricted (v1.35+): "The default /proc masks are set
# up to reduce attack surface, and should be required by the restricted profile."
USERNS = {"hostUsers": False}


def test_a_user_namespace_pod_may_run_as_root_from_v1_35() -> None:
    root = _pod(USERNS, securityContext={"runAsNonRoot": False, "runAsUser": 0})
    assert allowed("pss-restricted-run-as-non-root", root)
    assert allowed("pss-restricted-run-as-user", root)
    assert allowed("pss-restricted-run-as-non-root", root, "v1.35")
    # before v1.35 the relaxation is not part of the standard
    assert not allowed("pss-restricted-run-as-non-root", root, "v1.34")
    assert not allowed("pss-restricted-run-as-user", root, "v1.34")


def test_host_users_true_or_unset_is_no_relaxation() -> None:
    for spec in ({"hostUsers": True}, {}):
        root = _pod(spec, securityContext={"runAsNonRoot": False, "runAsUser": 0})
        assert not allowed("pss-restricted-run-as-non-root", root)
        assert not allowed("pss-restricted-run-as-user", root)


def test_unmasked_proc_mount_baseline_relaxed_restricted_not() -> None:
    unmasked = _pod(USERNS, securityContext={"procMount": "Unmasked"})
    assert allowed("pss-baseline-proc-mount", unmasked)
    assert not allowed("pss-baseline-proc-mount", unmasked, "v1.34")
    assert not allowed("pss-baseline-proc-mount", _pod(securityContext={"procMount": "Unmasked"}))
    # the restricted profile keeps requiring the default masks, user namespace or not
    assert not allowed("pss-restricted-proc-mount", unmasked)
    assert allowed(
        "pss-restricted-proc-mount", _pod(USERNS, securityContext={"procMount": "Default"})
    )


# --- SELinux (baseline) --------------------------------------------------------------
# "Setting the SELinux type is restricted, and setting a custom SELinux user or role option
# is forbidden." Allowed types: undefined/"", container_t, container_init_t,
# container_kvm_t, container_engine_t (v1.31+).
SELINUX = "pss-baseline-selinux"


def test_the_container_engine_selinux_type_is_allowed_from_v1_31() -> None:
    engine = _pod(securityContext={"seLinuxOptions": {"type": "container_engine_t"}})
    assert allowed(SELINUX, engine)
    assert allowed(SELINUX, engine, "v1.31")
    assert not allowed(SELINUX, engine, "v1.30")
    assert allowed(
        SELINUX, _pod(securityContext={"seLinuxOptions": {"type": "container_t"}}), "v1.29"
    )
    assert not allowed(SELINUX, _pod(securityContext={"seLinuxOptions": {"type": "spc_t"}}))
    assert not allowed(SELINUX, _pod(securityContext={"seLinuxOptions": {"user": "root"}}))


# --- Every pinnable version --------------------------------------------------------------
def test_every_policy_reads_as_valid_rules_at_every_pinnable_version() -> None:
    for version in PSS_VERSION_CHOICES:
        for entry in library(version):
            build_rules(entry["rules"])  # raises on any invalid rule
            assert "{{" not in str(entry["rules"]), (version, entry["name"])


def test_a_compliant_restricted_pod_passes_every_control_at_every_version() -> None:
    # the standard's own "allowed" values everywhere: nothing to report at any version
    pod = _pod(
        {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}},
        securityContext={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    )
    for version in PSS_VERSION_CHOICES:
        for entry in library(version):
            if any(s.startswith("pss-") for s in entry["standards"]):
                assert allowed(entry["name"], pod, version), (version, entry["name"])
