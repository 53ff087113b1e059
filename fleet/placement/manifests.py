"""Parsing an application's manifests: multi-document YAML, each document checked, with
errors that name the document (its position and kind/name) and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml
from kubernetes.utils import parse_quantity

from clusters.labels import label_key_error

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
MAX_BYTES = 2_000_000


class ManifestError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


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
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ManifestError([f"Not valid YAML{where}: {problem}."]) from None
    objects, errors = [], []
    for position, document in enumerate(documents, start=1):
        if document is None:
            continue
        errors += [f"Document {position}: {e}" for e in _check(document)]
        objects.append(document)
    if not objects and not errors:
        errors.append("No objects in the manifests.")
    names = [
        (o.get("kind"), (o.get("metadata") or {}).get("name"))
        for o in objects
        if isinstance(o, dict)
    ]
    for key in {n for n in names if names.count(n) > 1}:
        errors.append(f"{key[0]} {key[1]!r} is defined more than once.")
    if errors:
        raise ManifestError(errors)
    return objects


def _check(document: Any) -> list[str]:
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
    label = f"{document.get('kind', '?')} {metadata['name']!r}"
    for key in metadata.get("labels") or {}:
        if error := label_key_error(str(key)):
            errors.append(f"{label}: {error}")
    if document.get("kind") in WORKLOAD_KINDS:
        template = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = template.get("containers")
        if not isinstance(containers, list) or not containers:
            errors.append(f"{label}: spec.template.spec.containers is missing")
        else:
            for container in containers:
                for kind, value in (
                    (container.get("resources") or {}).get("requests") or {}
                ).items():
                    try:
                        parse_quantity(value)
                    except (ValueError, TypeError):
                        errors.append(f"{label}: request {kind}={value!r} is not a quantity")
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
