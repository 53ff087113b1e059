"""Parsing an application's manifests: multi-document YAML, each document checked, with
errors that name the document (its position and kind/name) and what is wrong."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from clusters.labels import label_key_error
from kube.safeyaml import YAMLInputError, load_all, shorten

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job"}
# Built-in kinds that live outside namespaces (kubectl api-resources --namespaced=false).
CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "APIService",
    "StorageClass",
    "VolumeAttachment",
    "CSIDriver",
    "CSINode",
    "PriorityClass",
    "RuntimeClass",
    "IngressClass",
    "PodSecurityPolicy",
    "CertificateSigningRequest",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "FlowSchema",
    "PriorityLevelConfiguration",
}
MAX_BYTES = 2_000_000
# Errors reported at most: a long list helps nobody and an answer must stay small.
MAX_ERRORS = 20


class ManifestError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        kept = [shorten(error, 300) for error in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            kept.append(f"... and {len(errors) - MAX_ERRORS} more errors.")
        super().__init__("; ".join(kept))
        self.errors = kept


@dataclass(frozen=True)
class Requests:
    """What the application asks of each cluster it lands on, for its full replica count."""

    cpu: Decimal = Decimal(0)
    memory_bytes: Decimal = Decimal(0)
    replicas: int = 0


def parse_manifests(text: str) -> list[dict[str, Any]]:
    if not text.strip():
        raise ManifestError(["The manifests are empty."])
    if len(text.encode()) > MAX_BYTES:
        raise ManifestError(["The manifests are larger than 2 MB."])
    try:
        documents = load_all(text, max_bytes=MAX_BYTES)
    except YAMLInputError as error:
        reason = str(error)
        raise ManifestError([f"{reason[:1].upper()}{reason[1:]}."]) from None
    objects, errors = [], []
    for position, document in enumerate(documents, start=1):
        if document is None:
            continue
        errors += [f"Document {position}: {e}" for e in _check(document)]
        objects.append(document)
    if not objects and not errors:
        errors.append("No objects in the manifests.")
    names = [
        (str(o.get("kind")), str((o.get("metadata") or {}).get("name")))
        for o in objects
        if isinstance(o, dict) and isinstance(o.get("metadata"), dict)
    ]
    # Counted once: `names.count` per name was quadratic in the number of documents.
    for key in [n for n, count in Counter(names).items() if count > 1]:
        errors.append(f"{shorten(key[0], 60)} {shorten(key[1], 100)!r} is defined more than once.")
    if errors:
        raise ManifestError(errors)
    return objects


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _check(document: Any) -> list[str]:
    """Structural checks, so that nothing later (rendering, scheduling) meets a surprise."""
    if not isinstance(document, dict):
        return ["must be a Kubernetes object (a mapping)"]
    errors = []
    for field in ("apiVersion", "kind"):
        if not isinstance(document.get(field), str) or not document.get(field):
            errors.append(f"{field} is missing")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        errors.append("metadata.name is missing")
        return errors
    if not isinstance(metadata["name"], str):
        errors.append("metadata.name must be a string")
        return errors
    label = f"{shorten(document.get('kind', '?'), 60)} {shorten(metadata['name'], 100)!r}"
    if "namespace" in metadata and not isinstance(metadata["namespace"], str):
        errors.append(f"{label}: metadata.namespace must be a string")
    for field in ("labels", "annotations"):
        value = metadata.get(field)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            errors.append(f"{label}: metadata.{field} must map strings to strings")
        elif field == "labels":
            for key in value:
                if error := label_key_error(key):
                    errors.append(f"{label}: {error}")
    if "spec" in document and not isinstance(document["spec"], dict):
        errors.append(f"{label}: spec must be a mapping")
        return errors
    if document.get("kind") in WORKLOAD_KINDS:
        errors += [f"{label}: {e}" for e in _check_workload(_mapping(document.get("spec")))]
    return errors


def _check_workload(spec: dict[str, Any]) -> list[str]:
    errors = []
    replicas = spec.get("replicas")
    if replicas is not None and (
        not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0
    ):
        errors.append("spec.replicas must be a whole number, 0 or more")
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return [*errors, "spec.template.spec is missing"]
    containers = template["spec"].get("containers")
    if not isinstance(containers, list) or not containers:
        return [*errors, "spec.template.spec.containers is missing"]
    for index, container in enumerate(containers):
        where = f"container {index + 1}"
        if not isinstance(container, dict):
            errors.append(f"{where} must be a mapping with a name and an image")
            continue
        if not isinstance(container.get("name"), str) or not container.get("name"):
            errors.append(f"{where}: name is missing")
        if not isinstance(container.get("image"), str) or not container.get("image"):
            errors.append(f"{where}: image is missing")
        resources = container.get("resources")
        if resources is not None and not isinstance(resources, dict):
            errors.append(f"{where}: resources must be a mapping")
            continue
        requests = _mapping(resources).get("requests")
        if requests is not None and not isinstance(requests, dict):
            errors.append(f"{where}: resources.requests must be a mapping")
            continue
        for kind, value in _mapping(requests).items():
            try:
                parse_quantity(value)
            except (ValueError, TypeError):
                errors.append(
                    f"{where}: request {shorten(kind, 60)}={shorten(value, 60)} is not a quantity"
                )
    return errors


def requests_of(objects: list[dict[str, Any]], replicas: int | None = None) -> Requests:
    """CPU and memory the workloads request in one cluster (containers x replicas)."""
    cpu = memory = Decimal(0)
    total_replicas = 0
    for obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        spec = obj.get("spec") or {}
        count = replicas if replicas is not None else int(spec.get("replicas", 1))
        total_replicas += count
        for container in ((spec.get("template") or {}).get("spec") or {}).get("containers", []):
            requests = (container.get("resources") or {}).get("requests") or {}
            cpu += Decimal(parse_quantity(requests.get("cpu", "0"))) * count
            memory += Decimal(parse_quantity(requests.get("memory", "0"))) * count
    return Requests(cpu=cpu, memory_bytes=memory, replicas=total_replicas)
