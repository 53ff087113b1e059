"""An inventory's allocation rows as the workloads `allocate` charges for one hour.

A row stands for the pods of one namespace, controller and label set on one node. Pods
that may have run part of the hour are also listed on it (`partial`, see
`kube.pod_minutes`), each with its start, its end if it has ended, its requests and (when
metrics.k8s.io was read) its usage: each is charged max(request, usage) for its own
minutes in the hour, as OpenCost charges running minutes. A pod still running is assumed
to run to the end of the hour (the running hour's estimate); one that started before
the hour counts from the hour's start. The rest of the row (pods running since earlier)
is charged the whole hour. Rows from before `partial` was recorded are whole hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from costs.allocation import MINUTES_PER_HOUR, Workload
from kube.pod_minutes import parse_time

GIB = Decimal(2**30)
THOUSAND = Decimal(1000)
HOUR = timedelta(hours=1)
# What a running partial pod adds to its row's totals, and the unit of each.
FIGURES = (
    ("cpu_millis", THOUSAND),
    ("memory_bytes", GIB),
    ("gpu", Decimal(1)),
    ("cpu_usage_millis", THOUSAND),
    ("memory_usage_bytes", GIB),
    ("cpu_charged_millis", THOUSAND),
    ("memory_charged_bytes", GIB),
)


def workloads(row: dict[str, Any], hour: datetime) -> list[Workload]:
    """The row's workloads for the hour starting at `hour`."""
    pods = row.get("partial") or ()
    if not pods:
        return [_workload(row, row)]
    steady = dict(row)
    for pod in pods:
        if "ended" in pod:
            continue  # an ended pod is not in the row's totals (those are running pods)
        for key, _ in FIGURES:
            if key in steady and key in pod:
                steady[key] = max(steady[key] - pod[key], 0)
    found = []
    if any(steady.get(key) for key, _ in FIGURES):
        found.append(_workload(row, steady))
    for pod in pods:
        minutes = minutes_in(pod, hour)
        if minutes > 0:
            found.append(_workload(row, pod, minutes))
    return found


def minutes_in(pod: dict[str, Any], hour: datetime) -> Decimal:
    """Minutes between the pod's start and its end (the hour's end while it runs),
    within the hour; 0 when it did not run in it."""
    started, ended = parse_time(pod.get("started")), parse_time(pod.get("ended"))
    if started is None:
        return Decimal(0)
    start = max(started, hour)
    end = min(ended, hour + HOUR) if ended is not None else hour + HOUR
    seconds = int((end - start).total_seconds())
    return max(Decimal(seconds) / 60, Decimal(0))


def _workload(
    row: dict[str, Any], figures: dict[str, Any], minutes: Decimal = MINUTES_PER_HOUR
) -> Workload:
    """A workload of `row`'s namespace, node, controller and labels with `figures`' requests
    and (when measured) usage: the sums of max(request, usage) per pod as charged."""

    def optional(key: str, unit: Decimal) -> Decimal | None:
        return Decimal(figures[key]) / unit if key in figures else None

    return Workload(
        namespace=row["namespace"],
        node=row["node"],
        cpu_request=Decimal(figures["cpu_millis"]) / THOUSAND,
        ram_request_gb=Decimal(figures["memory_bytes"]) / GIB,
        gpu_request=int(figures.get("gpu", 0)),
        cpu_usage=optional("cpu_usage_millis", THOUSAND),
        ram_usage_gb=optional("memory_usage_bytes", GIB),
        cpu_charged=optional("cpu_charged_millis", THOUSAND),
        ram_charged_gb=optional("memory_charged_bytes", GIB),
        minutes=minutes,
        controller=str(row.get("controller") or "")[:253],
        labels=labels_of(row.get("labels")),
    )


def labels_of(value: Any) -> tuple[tuple[str, str], ...]:
    """Labels as a sorted tuple of string pairs (anything else in an agent's report is
    dropped)."""
    if not isinstance(value, dict):
        return ()
    return tuple(
        sorted((k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str))
    )
