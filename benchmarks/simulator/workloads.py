"""The workloads, services, network policies and config maps of a simulated cluster."""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.simulator import k8s
from benchmarks.simulator.k8s import RESTRICTED_CONTEXT
from benchmarks.simulator.shape import Variant


def policy_objects(profile: int, variant: Variant) -> dict[str, list[dict[str, Any]]]:
    """The workloads, services, network policies and config maps of a cluster, keyed by
    list path (pods come from `cluster_objects`, which places them on nodes)."""
    tag = "latest" if variant.latest else "1.0"
    deployments = [
        k8s.controller(
            "apps/v1",
            "Deployment",
            "web",
            "shop",
            k8s.pod_spec(k8s.container("web", "100m", "128Mi", tag=tag)),
            replicas=2,
        ),
        k8s.controller(
            "apps/v1",
            "Deployment",
            "api",
            "payments",
            k8s.pod_spec(k8s.container("api", "100m", "128Mi", limits=not variant.no_limits)),
            replicas=2,
        ),
    ]
    if variant.privileged:
        privileged = {**RESTRICTED_CONTEXT, "privileged": True, "runAsNonRoot": False}
        deployments.append(
            k8s.controller(
                "apps/v1",
                "Deployment",
                "debug-tools",
                "shop",
                k8s.pod_spec(k8s.container("debug-tools", "50m", "64Mi", context=privileged)),
                replicas=1,
            )
        )
    replicasets = [
        k8s.controller(
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
    job_spec = k8s.pod_spec(k8s.container("backup", "200m", "256Mi"))
    job_spec["restartPolicy"] = "OnFailure"
    template = {"metadata": {"labels": k8s.labels("backup")}, "spec": job_spec}
    cronjob: dict[str, Any] = {
        "apiVersion": cron_version,
        "kind": "CronJob",
        "metadata": k8s.meta("backup", "payments", k8s.labels("backup")),
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
        "metadata": k8s.meta("backup-29000000", "payments", k8s.labels("backup"), cronjob),
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 86400,
            "template": copy.deepcopy(template),
        },
        "status": {"succeeded": 1},
    }
    services = [k8s.service("web", "shop"), k8s.service("api", "payments")]
    if variant.load_balancer:
        services.append(k8s.service("edge-lb", "shop", "LoadBalancer"))
    deny = {"podSelector": {}, "policyTypes": ["Ingress"]}
    guarded = ["default", "shop"] + ([] if variant.no_network_policy else ["payments"])
    network_policies = [k8s.network_policy("default-deny-ingress", ns, deny) for ns in guarded]
    network_policies.append(
        k8s.network_policy(
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
            "metadata": k8s.meta("kube-root-ca.crt", ns),
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
