"""A fleet simulator in one asyncio process (issue 9, section 1).

* N simulated member clusters answer the part of the Kubernetes API Keelson calls
  (`kube/inventory.py`: /version, nodes, namespaces, deployments, statefulsets,
  daemonsets, pods, persistentvolumeclaims, services, warning events, metrics.k8s.io pod
  usage; `kube/access.py`: SelfSubjectAccessReview) over HTTPS with a
  self-signed CA, all on ONE port, cluster `n` under the prefix
  `https://127.0.0.1:PORT/c/<n>` with its own bearer token.
* They also answer what a policy sweep reads (`policies/kube.py`): discovery (`/api`,
  `/apis`, group versions) and lists of replicasets, jobs, cronjobs, services and network
  policies, with workloads owned as in a real cluster (Deployment -> ReplicaSet -> Pod).
  Every LEGACY_EVERY-th cluster is a 1.20 (CronJob served as batch/v1beta1 only), and
  policy violations are planted every PLANTED[policy]-th cluster (see `Variant`).
* A cluster can be killed (its connections reset, or left hanging so the client times
  out) and revived by a control call: `GET /control/kill?ids=3,7&mode=reset|hang`,
  `GET /control/revive?ids=3,7`, `GET /control/stats`; `GET /control/latency?ms=50` delays
  every cluster's answers as a fleet in other regions would.
* M pull-mode agents heartbeat to the hub's agent API (`/api/v1/agent/heartbeat/`),
  either each at an interval or back to back (to find what the hub absorbs).

Run `python -m benchmarks.simulator --clusters 10000 --port 18443` (it prints one JSON
line with its URL and CA path once it listens), or use `Simulator` from the benchmarks.
The HTTP server is a small HTTP/1.1 keep-alive server on asyncio streams: responses are
rendered once per cluster profile and served as bytes, so the simulator costs little
next to the hub it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import random
import resource
import secrets
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

GIB = 2**30
MIB = 2**20
KUBE_VERSION = "v1.29.4"
INSTANCE_TYPES = (
    ("aws", "eu-west-1", "m5.xlarge", 4, 16),
    ("aws", "us-east-1", "m5.2xlarge", 8, 32),
    ("gcp", "europe-west1", "n2-standard-4", 4, 16),
    ("gcp", "us-central1", "n2-standard-8", 8, 32),
    ("azure", "westeurope", "Standard_D4s_v3", 4, 16),
    ("azure", "eastus", "Standard_D8s_v3", 8, 32),
    ("onprem", "dc-1", "bare-metal-16", 16, 64),
    ("edge", "store-1", "edge-small", 2, 4),
)
PROFILES = len(INSTANCE_TYPES)
# A cluster index divisible by this has one node NotReady (it reports Degraded).
DEGRADED_EVERY = 50
# Past this many open connections, the last call of a probe (warning events) answers
# "Connection: close" so the process stays under its descriptor limit.
CONNECTION_SOFT_CAP = 15000
# Every LEGACY_EVERY-th cluster runs Kubernetes 1.20 (CronJob in batch/v1beta1 only).
LEGACY_EVERY = 4
LEGACY_VERSION = "v1.20.2"
# Policy -> every how many clusters it finds a violation (cluster index divisible by it);
# everywhere else it finds none. The sweep benchmark checks its results against this.
PLANTED = {
    "pss-baseline-privileged": 7,  # a privileged debug Deployment (and its RS and Pod)
    "ops-image-tags": 5,  # the web Deployment runs an image tagged :latest
    "ops-resources": 3,  # the api Deployment's container sets no limits
    "ops-network-policy": 11,  # namespace payments has no default-deny-ingress policy
    "bench-no-load-balancer": 13,  # a Service of type LoadBalancer
    "bench-cronjob-history": 17,  # a CronJob keeping 10 successful jobs
}
# Uids and resource versions carry the cluster's index: rendered once per variant, this
# placeholder is replaced per response, so no two clusters serve identical objects.
INDEX_MARK = "@@index@@"
_MARK = INDEX_MARK.encode()


@dataclass(frozen=True)
class Variant:
    """What a cluster serves besides its profile: its Kubernetes generation and the
    violations planted in it (each flag: index divisible by PLANTED[policy])."""

    legacy: bool = False
    privileged: bool = False
    latest: bool = False
    no_limits: bool = False
    no_network_policy: bool = False
    load_balancer: bool = False
    cronjob_history: bool = False

    @classmethod
    def of(cls, index: int) -> Variant:
        def planted(policy: str) -> bool:
            return index % PLANTED[policy] == 0

        return cls(
            legacy=index % LEGACY_EVERY == 0,
            privileged=planted("pss-baseline-privileged"),
            latest=planted("ops-image-tags"),
            no_limits=planted("ops-resources"),
            no_network_policy=planted("ops-network-policy"),
            load_balancer=planted("bench-no-load-balancer"),
            cronjob_history=planted("bench-cronjob-history"),
        )


# --- TLS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    secret: Path  # HMAC key the cluster tokens derive from

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()

    def token_secret(self) -> bytes:
        return self.secret.read_bytes()


def ensure_tls(directory: Path) -> TLSFiles:
    """A CA and a server certificate for 127.0.0.1/localhost (ECDSA P-256, cheap
    handshakes), made once and kept in `directory` (mode 0700)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = TLSFiles(
        directory / "ca.crt", directory / "server.crt", directory / "server.key", directory / "hmac"
    )
    if files.ca.exists() and files.cert.exists() and files.key.exists() and files.secret.exists():
        return files
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keelson-bench-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simulated-clusters")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    files.secret.write_bytes(secrets.token_bytes(32))
    files.secret.chmod(0o600)
    return files


def cluster_token(secret: bytes, index: int) -> str:
    """Cluster `index`'s bearer token (derived, so the hub's seeding and the simulator
    agree without passing 10,000 tokens around)."""
    return "sim-" + hmac.new(secret, str(index).encode(), hashlib.sha256).hexdigest()


def cluster_url(port: int, index: int) -> str:
    return f"https://127.0.0.1:{port}/c/{index}"


# --- the Kubernetes objects a simulated cluster serves ---------------------------------


def _list(kind: str, items: list[dict[str, Any]], api_version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "1000"},
        "items": items,
    }


def _uid(name: str) -> str:
    return f"{name}-{INDEX_MARK}"


def _meta(
    name: str,
    namespace: str,
    labels: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Object metadata as an API server returns it; `owner` is the controlling object."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": _uid(f"{namespace}.{name}"),
        "resourceVersion": f"{INDEX_MARK}0",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": labels or {},
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


RESTRICTED_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
_PROBE = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}


def _container(
    name: str,
    cpu: str,
    memory: str,
    *,
    tag: str = "1.0",
    limits: bool = True,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
    if limits:
        resources["limits"] = {"cpu": "1", "memory": "1Gi"}
    return {
        "name": name,
        "image": f"registry.example/{name}:{tag}",
        "resources": resources,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "livenessProbe": _PROBE,
        "readinessProbe": _PROBE,
        "securityContext": RESTRICTED_CONTEXT if context is None else context,
    }


def _labels(app: str) -> dict[str, str]:
    return {"app": app, "app.kubernetes.io/name": app}


def _pod_spec(container: dict[str, Any], *, host: bool = False, node: str = "") -> dict[str, Any]:
    """A pod spec; `host`: a node agent's (host network and PID, a hostPath volume)."""
    spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "restartPolicy": "Always",
    }
    if node:
        spec["nodeName"] = node
    if host:
        spec.update(hostNetwork=True, hostPID=True, securityContext={})
        spec["volumes"] = [{"name": "proc", "hostPath": {"path": "/proc"}}]
        container["volumeMounts"] = [{"name": "proc", "mountPath": "/host/proc"}]
    return spec


def _controller(
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    pod_spec: dict[str, Any],
    *,
    replicas: int | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A workload controller with its pod template (and a ready status)."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": _labels(name)}, "spec": pod_spec},
    }
    status: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
        status = {"replicas": replicas, "readyReplicas": replicas}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": _meta(name, namespace, _labels(name), owner),
        "spec": spec,
        "status": status,
    }


def _workload(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    """A Deployment or StatefulSet's body as the collection probe has always read it."""
    return _controller(
        "apps/v1",
        "Deployment",
        name,
        namespace,
        _pod_spec(_container(name, "100m", "128Mi")),
        replicas=replicas,
    )


def _list_path(group_version: str, plural: str) -> str:
    prefix = "/api" if group_version == "v1" else "/apis"
    return f"{prefix}/{group_version}/{plural}"


# (group version, plural, kind, namespaced) served to everyone; batch/v1 CronJobs only
# past 1.20, which serves them as batch/v1beta1.
RESOURCES = (
    ("v1", "namespaces", "Namespace", False),
    ("v1", "nodes", "Node", False),
    ("v1", "pods", "Pod", True),
    ("v1", "services", "Service", True),
    ("v1", "configmaps", "ConfigMap", True),
    ("v1", "events", "Event", True),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("apps/v1", "deployments", "Deployment", True),
    ("apps/v1", "replicasets", "ReplicaSet", True),
    ("apps/v1", "statefulsets", "StatefulSet", True),
    ("apps/v1", "daemonsets", "DaemonSet", True),
    ("batch/v1", "jobs", "Job", True),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True),
    ("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
)


def discovery(legacy: bool) -> dict[str, Any]:
    """`/api`, `/apis` and one resource list per group version, as a 1.29 (or, `legacy`,
    a 1.20) API server answers them."""
    cronjobs = ("batch/v1beta1" if legacy else "batch/v1", "cronjobs", "CronJob", True)
    by_version: dict[str, list[dict[str, Any]]] = {}
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    for group_version, plural, kind, namespaced in (*RESOURCES, cronjobs):
        by_version.setdefault(group_version, []).append(
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["create"] if kind == "SelfSubjectAccessReview" else verbs,
            }
        )
        if kind != "SelfSubjectAccessReview":
            by_version[group_version].append(
                {
                    "name": f"{plural}/status",
                    "singularName": "",
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    # metrics-server's aggregated API (usage of pods and nodes), read by the cost collector
    by_version[METRICS_VERSION] = [
        {
            "name": plural,
            "singularName": "",
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["get", "list"],
        }
        for plural, kind, namespaced in (
            ("nodes", "NodeMetrics", False),
            ("pods", "PodMetrics", True),
        )
    ]
    groups: dict[str, list[str]] = {}
    for group_version in by_version:
        if group_version != "v1":
            group, _, version = group_version.partition("/")
            groups.setdefault(group, []).append(version)
    answers: dict[str, Any] = {
        "/api": {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
            ],
        },
        "/apis": {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {
                        "groupVersion": f"{group}/{versions[0]}",
                        "version": versions[0],
                    },
                }
                for group, versions in groups.items()
            ],
        },
    }
    for group_version, resources in by_version.items():
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        answers[path] = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }
    if not legacy:  # 1.27 and later also answer aggregated discovery
        answers["/api" + AGGREGATED] = _aggregated(by_version, core=True)
        answers["/apis" + AGGREGATED] = _aggregated(by_version, core=False)
    return answers


METRICS_VERSION = "metrics.k8s.io/v1beta1"


def pod_metrics(pods: list[dict[str, Any]], profile: int) -> dict[str, Any]:
    """PodMetrics of running pods: each container uses 50, 75, 100 or 125 % of its CPU
    request (by profile) and 80 % of its memory request."""
    cpu_percent, items = 50 + 25 * (profile % 4), []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        containers = []
        for container in pod["spec"]["containers"]:
            requests = (container.get("resources") or {}).get("requests") or {}
            cpu = int(_quantity(requests.get("cpu", "0")) * 10**9 * cpu_percent / 100)
            memory = int(_quantity(requests.get("memory", "0")) * 8 / 10)
            containers.append(
                {"name": container["name"], "usage": {"cpu": f"{cpu}n", "memory": str(memory)}}
            )
        metadata = pod["metadata"]
        items.append(
            {
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                "timestamp": "2026-01-01T00:00:00Z",
                "window": "30s",
                "containers": containers,
            }
        )
    return _list("PodMetricsList", items, METRICS_VERSION)


_SUFFIXES = {"m": 0.001, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantity(value: str) -> float:
    """The simulator's own quantities ("250m", "128Mi", "1"), without the client."""
    for suffix, factor in _SUFFIXES.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


AGGREGATED = ";aggregated"  # the path suffix of an aggregated discovery answer


def _aggregated(by_version: dict[str, list[dict[str, Any]]], *, core: bool) -> dict[str, Any]:
    """An APIGroupDiscoveryList (apidiscovery.k8s.io/v2beta1, as 1.29 serves it) of the
    core group (`/api`) or of the named groups (`/apis`), versions best first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for group_version, resources in by_version.items():
        group, _, version = group_version.rpartition("/")
        if (group == "") != core:
            continue
        entries = []
        for entry in resources:
            if "/" in entry["name"]:
                continue
            subresources = [
                {
                    "subresource": other["name"].partition("/")[2],
                    "responseKind": {"group": group, "version": version, "kind": other["kind"]},
                    "verbs": other["verbs"],
                }
                for other in resources
                if other["name"].startswith(entry["name"] + "/")
            ]
            entries.append(
                {
                    "resource": entry["name"],
                    "responseKind": {"group": group, "version": version, "kind": entry["kind"]},
                    "scope": "Namespaced" if entry["namespaced"] else "Cluster",
                    "singularResource": entry["singularName"],
                    "verbs": entry["verbs"],
                    **({"subresources": subresources} if subresources else {}),
                }
            )
        groups.setdefault(group, []).append(
            {"version": version, "resources": entries, "freshness": "Current"}
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2beta1",
        "metadata": {},
        "items": [
            {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}
            for group, versions in groups.items()
        ],
    }


def _service(name: str, namespace: str, kind: str = "ClusterIP") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, _labels(name)),
        "spec": {
            "type": kind,
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "clusterIP": "10.96.0.10",
        },
    }


def _network_policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace),
        "spec": spec,
    }


def policy_objects(profile: int, variant: Variant) -> dict[str, list[dict[str, Any]]]:
    """The workloads, services, network policies and config maps of a cluster, keyed by
    list path (pods come from `cluster_objects`, which places them on nodes)."""
    tag = "latest" if variant.latest else "1.0"
    deployments = [
        _controller(
            "apps/v1",
            "Deployment",
            "web",
            "shop",
            _pod_spec(_container("web", "100m", "128Mi", tag=tag)),
            replicas=2,
        ),
        _controller(
            "apps/v1",
            "Deployment",
            "api",
            "payments",
            _pod_spec(_container("api", "100m", "128Mi", limits=not variant.no_limits)),
            replicas=2,
        ),
    ]
    if variant.privileged:
        privileged = {**RESTRICTED_CONTEXT, "privileged": True, "runAsNonRoot": False}
        deployments.append(
            _controller(
                "apps/v1",
                "Deployment",
                "debug-tools",
                "shop",
                _pod_spec(_container("debug-tools", "50m", "64Mi", context=privileged)),
                replicas=1,
            )
        )
    replicasets = [
        _controller(
            "apps/v1",
            "ReplicaSet",
            f"{d['metadata']['name']}-5d8f7c9b4",
            d["metadata"]["namespace"],
            copy.deepcopy(d["spec"]["template"]["spec"]),
            replicas=d["spec"]["replicas"],
            owner=d,
        )
        for d in deployments
    ]
    history = 10 if variant.cronjob_history else 3
    cron_version = "batch/v1beta1" if variant.legacy else "batch/v1"
    job_spec = _pod_spec(_container("backup", "200m", "256Mi"))
    job_spec["restartPolicy"] = "OnFailure"
    template = {"metadata": {"labels": _labels("backup")}, "spec": job_spec}
    cronjob: dict[str, Any] = {
        "apiVersion": cron_version,
        "kind": "CronJob",
        "metadata": _meta("backup", "payments", _labels("backup")),
        "spec": {
            "schedule": "0 2 * * *",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": history,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "spec": {
                    "ttlSecondsAfterFinished": 86400,
                    "template": template,
                }
            },
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta("backup-29000000", "payments", _labels("backup"), cronjob),
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 86400,
            "template": copy.deepcopy(template),
        },
        "status": {"succeeded": 1},
    }
    services = [_service("web", "shop"), _service("api", "payments")]
    if variant.load_balancer:
        services.append(_service("edge-lb", "shop", "LoadBalancer"))
    deny = {"podSelector": {}, "policyTypes": ["Ingress"]}
    guarded = ["default", "shop"] + ([] if variant.no_network_policy else ["payments"])
    network_policies = [_network_policy("default-deny-ingress", ns, deny) for ns in guarded]
    network_policies.append(
        _network_policy(
            "allow-web",
            "shop",
            {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": 8080, "protocol": "TCP"}]}],
            },
        )
    )
    config_maps = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("kube-root-ca.crt", ns),
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n...\n"},
        }
        for ns in NAMESPACES
    ]
    return {
        "Deployment": deployments,
        "ReplicaSet": replicasets,
        "Job": [job],
        "CronJob": [cronjob],
        "Service": services,
        "NetworkPolicy": network_policies,
        "ConfigMap": config_maps,
    }


NAMESPACES = ("default", "kube-system", "shop", "payments")


def cluster_objects(profile: int, degraded: bool, variant: Variant | None = None) -> dict[str, Any]:
    """The API answers of a cluster of `profile` (a few nodes, namespaces and pods, the
    workloads that own them, discovery), by path."""
    variant = variant or Variant()
    _, region, instance_type, cores, memory_gib = INSTANCE_TYPES[profile]
    node_count = 2 + profile % 4
    nodes = []
    for n in range(node_count):
        ready = not (degraded and n == 0)
        nodes.append(
            {
                "metadata": {
                    "name": f"node-{n}",
                    "labels": {
                        "kubernetes.io/hostname": f"node-{n}",
                        "node.kubernetes.io/instance-type": instance_type,
                        "topology.kubernetes.io/region": region,
                        "topology.kubernetes.io/zone": f"{region}-{'abc'[n % 3]}",
                    },
                },
                "spec": {},
                "status": {
                    "capacity": {
                        "cpu": str(cores),
                        "memory": f"{memory_gib}Gi",
                        "pods": "110",
                    },
                    "allocatable": {
                        "cpu": f"{cores * 1000 - 200}m",
                        "memory": f"{memory_gib * 1024 - 512}Mi",
                        "pods": "110",
                    },
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True" if ready else "False",
                            "reason": "KubeletReady" if ready else "KubeletNotReady",
                        }
                    ],
                    "nodeInfo": {
                        "architecture": "amd64",
                        "bootID": "boot",
                        "containerRuntimeVersion": "containerd://1.7.13",
                        "kernelVersion": "6.1.0",
                        "kubeProxyVersion": KUBE_VERSION,
                        "kubeletVersion": KUBE_VERSION,
                        "machineID": "machine",
                        "operatingSystem": "linux",
                        "osImage": "Debian GNU/Linux 12",
                        "systemUUID": "uuid",
                    },
                },
            }
        )
    workloads = policy_objects(profile, variant)
    daemonset = _controller(
        "apps/v1",
        "DaemonSet",
        "node-exporter",
        "kube-system",
        _pod_spec(_container("node-exporter", "10m", "32Mi", context={}), host=True),
    )
    daemonset["status"] = {
        "currentNumberScheduled": node_count,
        "desiredNumberScheduled": node_count,
        "numberMisscheduled": 0,
        "numberReady": node_count,
        "numberUnavailable": 0,
    }
    # The controller of each namespace's pods (none in default: bare pods).
    replicasets = {rs["metadata"]["name"]: rs for rs in workloads["ReplicaSet"]}
    owners = {"shop": replicasets["web-5d8f7c9b4"], "payments": replicasets["api-5d8f7c9b4"]}
    owners["kube-system"] = daemonset
    pods = []
    for p in range(6 + 2 * profile):
        namespace = NAMESPACES[p % len(NAMESPACES)]
        owner = owners.get(namespace)
        template = owner["spec"]["template"] if owner else None
        spec = (
            copy.deepcopy(template["spec"])
            if template
            else _pod_spec(_container("app", "100m", "256Mi"))
        )
        spec["nodeName"] = f"node-{p % node_count}"
        spec["containers"][0]["resources"]["requests"] = {
            "cpu": f"{100 + 50 * (p % 4)}m",
            "memory": "256Mi",
        }
        labels = dict(template["metadata"]["labels"]) if template else _labels("app")
        pods.append(
            {
                "metadata": _meta(f"pod-{p}", namespace, labels, owner),
                "spec": spec,
                "status": {"phase": "Running"},
            }
        )
    if variant.privileged:
        debug = replicasets["debug-tools-5d8f7c9b4"]
        spec = copy.deepcopy(debug["spec"]["template"]["spec"])
        spec["nodeName"] = "node-0"
        pods.append(
            {
                "metadata": _meta(
                    "debug-tools-5d8f7c9b4-x7k2p", "shop", _labels("debug-tools"), debug
                ),
                "spec": spec,
                "status": {"phase": "Running"},
            }
        )
    event = {
        "metadata": {"name": "pod-0.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "pod-0", "namespace": "shop"},
        "reason": "BackOff",
        "message": "Back-off pulling image",
        "type": "Warning",
        "count": 2,
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    git_version = LEGACY_VERSION if variant.legacy else KUBE_VERSION
    objects: dict[str, Any] = {
        "/version": {
            "major": "1",
            "minor": git_version.split(".")[1],
            "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-04-16T00:00:00Z",
            "goVersion": "go1.21.9",
            "compiler": "gc",
            "platform": "linux/amd64",
        },
        "/api/v1/nodes": _list("NodeList", nodes),
        "/api/v1/namespaces": _list(
            "NamespaceList",
            [
                {
                    "metadata": {
                        "name": ns,
                        "uid": _uid(ns),
                        "labels": {"kubernetes.io/metadata.name": ns, "team": "platform"},
                    },
                    "status": {"phase": "Active"},
                }
                for ns in NAMESPACES
            ],
        ),
        "/api/v1/pods": _list("PodList", pods),
        f"/apis/{METRICS_VERSION}/pods": pod_metrics(pods, profile),
        "/api/v1/persistentvolumeclaims": _list(
            "PersistentVolumeClaimList",
            [
                {
                    "metadata": {"name": "data", "namespace": "shop"},
                    "spec": {"resources": {"requests": {"storage": "10Gi"}}},
                    "status": {"phase": "Bound"},
                }
            ],
        ),
        "/api/v1/events": _list("EventList", [event] if profile % 2 else []),
        "/apis/apps/v1/statefulsets": _list(
            "StatefulSetList",
            [
                _controller(
                    "apps/v1",
                    "StatefulSet",
                    "db",
                    "payments",
                    _pod_spec(_container("db", "100m", "128Mi")),
                    replicas=1,
                )
            ],
            "apps/v1",
        ),
        "/apis/apps/v1/daemonsets": _list("DaemonSetList", [daemonset], "apps/v1"),
        **discovery(variant.legacy),
    }
    for kind, items in workloads.items():
        group_version = str(items[0]["apiVersion"]) if items else "v1"
        plural = {"Service": "services", "NetworkPolicy": "networkpolicies"}.get(
            kind, kind.lower() + "s"
        )
        objects[_list_path(group_version, plural)] = _list(f"{kind}List", items, group_version)
    return objects


def agent_inventory(profile: int) -> dict[str, Any]:
    """What a pull-mode agent of `profile` reports (the shape of `Inventory.as_json`)."""
    _, region, instance_type, cores, memory_gib = INSTANCE_TYPES[profile]
    node_count = 2 + profile % 4
    resources = {"cpu_millis": cores * 1000, "memory_bytes": memory_gib * GIB, "gpu": 0}
    nodes = [
        {
            "name": f"node-{n}",
            "ready": True,
            "ready_reason": "KubeletReady",
            "unschedulable": False,
            "kubelet_version": KUBE_VERSION,
            "instance_type": instance_type,
            "region": region,
            "zone": f"{region}-a",
            "capacity": {**resources, "pods": 110},
            "allocatable": {**resources, "cpu_millis": cores * 1000 - 200, "pods": 110},
            "taints": [],
        }
        for n in range(node_count)
    ]
    pods = 6 + 2 * profile
    return {
        "kubernetes_version": KUBE_VERSION,
        "api_latency_ms": 3.5,
        "nodes": nodes,
        "namespaces": [{"name": ns, "phase": "Active"} for ns in ("default", "kube-system")],
        "workloads": {"deployments": {"total": 2, "unavailable": 0}},
        "pods_by_phase": {"Running": pods},
        "pods_crashlooping": 0,
        "requested_cpu_millis": pods * 150,
        "requested_memory_bytes": pods * 256 * MIB,
        "warning_events": 0,
        "recent_warnings": [],
        "allocations": [
            {
                "node": "node-0",
                "namespace": "default",
                "cpu_millis": pods * 150,
                "memory_bytes": pods * 256 * MIB,
                "gpu": 0,
            }
        ],
        "storage_bytes": {"default": 10 * GIB},
    }


def _response(status: str, body: bytes, *, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + body


def _status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()


UNAUTHORIZED = _response("401 Unauthorized", _status_body(401, "Unauthorized", "Unauthorized"))
NOT_FOUND = _response("404 Not Found", _status_body(404, "NotFound", "not found"))
ACCESS_REVIEW = json.dumps(
    {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {}},
        "status": {"allowed": True},
    }
).encode()


# --- the server -------------------------------------------------------------------------


@dataclass
class Stats:
    requests: int = 0
    probes: int = 0  # /version calls: one per probe
    unauthorized: int = 0
    resets: int = 0
    open_connections: int = 0
    max_connections: int = 0


class Simulator:
    """N simulated clusters on one HTTPS port; see the module docstring."""

    def __init__(self, clusters: int, tls: TLSFiles, *, host: str = "127.0.0.1") -> None:
        self.clusters = clusters
        self.tls = tls
        self.host = host
        self.port = 0
        self.stats = Stats()
        self.killed: dict[int, str] = {}  # index -> "reset" | "hang"
        self.latency = 0.0  # seconds added before every cluster's answer (a distant fleet)
        self._tokens: dict[int, bytes] = {}
        self._secret = tls.token_secret()
        self._bodies: dict[tuple[int, bool, Variant], dict[str, bytes]] = {}
        self._revived = asyncio.Event()
        self._server: asyncio.Server | None = None

    def token(self, index: int) -> bytes:
        token = self._tokens.get(index)
        if token is None:
            token = cluster_token(self._secret, index).encode()
            self._tokens[index] = token
        return token

    def bodies(self, index: int) -> dict[str, bytes]:
        """Cluster `index`'s answers by path, with INDEX_MARK still to replace (rendered
        once per profile and variant: a few hundred renderings for any fleet size)."""
        key = (index % PROFILES, index % DEGRADED_EVERY == 0, Variant.of(index))
        rendered = self._bodies.get(key)
        if rendered is None:
            objects = cluster_objects(*key)
            rendered = {path: json.dumps(body).encode() for path, body in objects.items()}
            self._bodies[key] = rendered
        return rendered

    async def start(self, port: int = 0) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert, self.tls.key)
        self._server = await asyncio.start_server(
            self._serve, self.host, port, ssl=context, backlog=4096, limit=2**16
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def kill(self, ids: list[int], mode: str = "reset") -> None:
        for index in ids:
            self.killed[index] = mode

    def revive(self, ids: list[int]) -> None:
        for index in ids:
            self.killed.pop(index, None)
        self._revived.set()
        self._revived = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.stats
        stats.open_connections += 1
        stats.max_connections = max(stats.max_connections, stats.open_connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                request_line, _, rest = head.partition(b"\r\n")
                parts = request_line.split(b" ")
                if len(parts) != 3:
                    return
                method, target = parts[0], parts[1].decode("latin-1")
                authorization = b""
                aggregated = False
                length = 0
                for line in rest.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    lowered = name.strip().lower()
                    if lowered == b"authorization":
                        authorization = value.strip()
                    elif lowered == b"accept":
                        aggregated = b"as=APIGroupDiscoveryList" in value
                    elif lowered == b"content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                stats.requests += 1
                response = await self._route(method, target, authorization, writer, aggregated)
                if response is None:
                    return
                writer.write(response)
                if writer.transport.get_write_buffer_size() > 2**16:
                    await writer.drain()
                if b"Connection: close" in response[:200]:
                    await writer.drain()
                    return
        except (ConnectionError, ssl.SSLError, OSError):
            return
        finally:
            stats.open_connections -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(
        self,
        method: bytes,
        target: str,
        authorization: bytes,
        writer: asyncio.StreamWriter,
        aggregated: bool = False,
    ) -> bytes | None:
        if target.startswith("/control/"):
            return self._control(target)
        if not target.startswith("/c/"):
            return NOT_FOUND
        prefix, _, path = target[3:].partition("/")
        try:
            index = int(prefix)
        except ValueError:
            return NOT_FOUND
        if not 0 <= index < self.clusters:
            return NOT_FOUND
        mode = self.killed.get(index)
        if mode is not None:
            self.stats.resets += 1
            if mode == "hang":
                while index in self.killed:
                    await self._revived.wait()
                return None
            writer.transport.abort()
            return None
        if self.latency:
            await asyncio.sleep(self.latency)
        if authorization != b"Bearer " + self.token(index):
            self.stats.unauthorized += 1
            return UNAUTHORIZED
        path = "/" + path.partition("?")[0].rstrip("/")
        if method == b"POST" and path.endswith("/selfsubjectaccessreviews"):
            return _response("201 Created", ACCESS_REVIEW)
        bodies = self.bodies(index)
        body = bodies.get(path)
        if aggregated and path in ("/api", "/apis"):
            body = bodies.get(path + AGGREGATED, body)
        if body is None:
            return NOT_FOUND
        if path == "/version":
            self.stats.probes += 1
        close = path == "/api/v1/events" and self.stats.open_connections > CONNECTION_SOFT_CAP
        return _response("200 OK", body.replace(_MARK, str(index).encode()), close=close)

    def _control(self, target: str) -> bytes:
        url = urlsplit(target)
        query = parse_qs(url.query)
        ids = [int(i) for i in ",".join(query.get("ids", [])).split(",") if i]
        if url.path == "/control/kill":
            self.kill(ids, query.get("mode", ["reset"])[0])
        elif url.path == "/control/revive":
            self.revive(ids)
        elif url.path == "/control/latency":
            self.latency = float(query.get("ms", ["0"])[0]) / 1000
        elif url.path != "/control/stats":
            return NOT_FOUND
        body = {**self.stats.__dict__, "killed": sorted(self.killed), "clusters": self.clusters}
        return _response("200 OK", json.dumps(body).encode())


# --- pull-mode agents ---------------------------------------------------------------------


@dataclass
class AgentStats:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    late: int = 0  # interval mode: a heartbeat that started over one interval late
    statuses: dict[str, int] = field(default_factory=dict)  # answers other than 200
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

        elapsed = max(self.finished - self.started, 1e-9)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "late": self.late,
            "statuses": self.statuses,
            "seconds": round(elapsed, 2),
            "rate": round(self.ok / elapsed, 1),
            "p50_ms": round(pct(50), 1),
            "p99_ms": round(pct(99), 1),
        }


async def run_agents(
    *,
    hub: str,
    tokens: list[str],
    duration: float,
    interval: float | None = None,
    concurrency: int = 64,
) -> AgentStats:
    """Heartbeat as `len(tokens)` agents for `duration` seconds: each every `interval`
    seconds (random phase), or, with no interval, back to back from `concurrency`
    connections (the rate the hub absorbs)."""
    import aiohttp

    url = hub.rstrip("/") + "/api/v1/agent/heartbeat"
    bodies = [json.dumps({"inventory": agent_inventory(p)}).encode() for p in range(PROFILES)]
    stats = AgentStats(started=time.monotonic())
    deadline = stats.started + duration
    # An agent heartbeating at an interval opens a new connection each time (the hub drops
    # idle keep-alive connections after 5 s); back to back, connections are kept.
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=interval is not None)
    timeout = aiohttp.ClientTimeout(total=60)

    async def beat(session: aiohttp.ClientSession, index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[index]}", "Content-Type": "application/json"}
        started = time.monotonic()
        stats.sent += 1
        try:
            async with session.post(url, data=bodies[index % PROFILES], headers=headers) as reply:
                await reply.read()
                if reply.status == 200:
                    stats.ok += 1
                    stats.latencies.append(time.monotonic() - started)
                else:
                    stats.errors += 1
                    key = str(reply.status)
                    stats.statuses[key] = stats.statuses.get(key, 0) + 1
        except (aiohttp.ClientError, TimeoutError) as error:
            stats.errors += 1
            key = type(error).__name__
            stats.statuses[key] = stats.statuses.get(key, 0) + 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if interval is None:
            counter = iter(range(10**12))

            async def closed_loop() -> None:
                while time.monotonic() < deadline:
                    await beat(session, next(counter) % len(tokens))

            await asyncio.gather(*(closed_loop() for _ in range(concurrency)))
        else:
            period = interval

            async def agent(index: int) -> None:
                due = stats.started + random.uniform(0, period)  # noqa: S311
                while due < deadline:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if time.monotonic() - due > period:
                        stats.late += 1
                    await beat(session, index)
                    due += period

            await asyncio.gather(*(agent(i) for i in range(len(tokens))))
    stats.finished = time.monotonic()
    return stats


# --- command line ---------------------------------------------------------------------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _main(args: argparse.Namespace) -> int:
    tls = ensure_tls(Path(args.tls_dir))
    simulator = Simulator(args.clusters, tls)
    port = await simulator.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(  # noqa: T201
        json.dumps({"listening": f"https://127.0.0.1:{port}", "port": port, "ca": str(tls.ca)}),
        flush=True,
    )
    agents: asyncio.Task[AgentStats] | None = None
    if args.agent_tokens:
        tokens = Path(args.agent_tokens).read_text().split()
        agents = asyncio.create_task(
            run_agents(
                hub=args.hub,
                tokens=tokens,
                duration=args.agent_duration,
                interval=args.agent_interval or None,
                concurrency=args.agent_concurrency,
            )
        )
        agents.add_done_callback(lambda _: stop.set())
    await stop.wait()
    if agents is not None and agents.done():
        print(json.dumps({"agents": agents.result().summary()}), flush=True)  # noqa: T201
    await simulator.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulator")
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--tls-dir", default=os.environ.get("KEELSON_BENCH_TLS_DIR", "var/bench/tls")
    )
    parser.add_argument("--hub", default="http://127.0.0.1:8000")
    parser.add_argument("--agent-tokens", help="a file of agent tokens, one a line")
    parser.add_argument("--agent-interval", type=float, default=0.0, help="0: back to back")
    parser.add_argument("--agent-duration", type=float, default=30.0)
    parser.add_argument("--agent-concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    _raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_main(args))
    return uvloop.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
