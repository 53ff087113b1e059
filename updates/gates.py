"""Health gates of update runs: what a cluster looked like before its change (baseline),
and whether it still looks healthy after it.

The gates (each on unless the run's settings turn it off; Ready always applies):
- **Ready**: the cluster's status is Ready.
- **conditions**: no unhealthy condition the cluster did not have before the change.
- **workloads**: every Deployment, StatefulSet and DaemonSet that was fully available
  before still is, and none has gone (gates_workloads.py).
- **policies**: no critical policy has more violations on the cluster than before
  (gates_policies.py).
- **prometheus** (optional): an instant query's value is at most `max`
  (gates_prometheus.py).

Every check is quick: one read of the cluster (bounded by `gates_workloads.READ_SECONDS`)
and one Prometheus query (`gates_prometheus.QUERY_SECONDS`) at most; what cannot be read
fails the gate with the reason. The engine calls `gate_check` again at its next check, so
a workload still rolling out gets the engine's grace, not a wait here.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from clusters.choices import ClusterStatus
from clusters.models import Cluster
from core.egress import EgressDenied, check_egress
from updates import gates_policies, gates_prometheus, gates_workloads

SWITCHES = ("workloads", "conditions", "policies")
PROMETHEUS_KEYS = {"url", "query", "max", "for_seconds"}
MAX_QUERY_CHARS = 2000
MAX_FOR_SECONDS = 24 * 3600
# Conditions whose "True" is the unhealthy state (Kubernetes node conditions, a
# provider's Degraded); for every other type "True" is healthy (Keelson's NodesReady,
# PodsHealthy, APIResponsive, APIReachable).
NEGATIVE_CONDITIONS = frozenset(
    {"Degraded", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}
)


def gates_validate(config: dict[str, Any]) -> dict[str, Any]:
    """The run's gate settings, normalized; ValidationError names the field.

    `{"workloads": bool, "conditions": bool, "policies": bool, "prometheus": null or
    {"url", "query", "max", "for_seconds"}}`: the first three default to on, Prometheus
    to off. The Prometheus URL must pass the egress policy (core/egress.py)."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValidationError({"gates": "An object of gate settings."})
    errors: dict[str, str] = {}
    for key in sorted(set(config) - {*SWITCHES, "prometheus"}):
        errors[f"gates.{key}"] = (
            f"Unknown gate (known: {', '.join(SWITCHES)}, prometheus; Ready always applies)."
        )
    normalized: dict[str, Any] = {}
    for key in SWITCHES:
        value = config.get(key, True)
        if not isinstance(value, bool):
            errors[f"gates.{key}"] = "true or false."
        normalized[key] = value
    normalized["prometheus"] = _prometheus(config.get("prometheus"), errors)
    if errors:
        raise ValidationError(errors)
    return normalized


def _prometheus(value: Any, errors: dict[str, str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors["gates.prometheus"] = "null, or an object with url, query, max and for_seconds."
        return None
    for key in sorted(set(value) - PROMETHEUS_KEYS):
        errors[f"gates.prometheus.{key}"] = "Unknown setting (known: url, query, max, for_seconds)."
    url = value.get("url")
    if not isinstance(url, str) or not url:
        errors["gates.prometheus.url"] = "The Prometheus server's URL (http:// or https://)."
    elif "@" in urlsplit(url).netloc:
        # Gate settings are shown on the run's page and API: no place for a password.
        errors["gates.prometheus.url"] = "Credentials in the URL are not accepted."
    else:
        try:
            check_egress(url)
        except EgressDenied as error:
            errors["gates.prometheus.url"] = str(error)
    query = value.get("query")
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
        errors["gates.prometheus.query"] = f"A PromQL expression (up to {MAX_QUERY_CHARS} chars)."
    maximum = value.get("max")
    if isinstance(maximum, bool) or not isinstance(maximum, int | float):
        errors["gates.prometheus.max"] = "A number: the gate fails when the value is above it."
    elif not math.isfinite(maximum):
        errors["gates.prometheus.max"] = "A finite number."
    seconds = value.get("for_seconds", 0)
    whole = isinstance(seconds, int) and not isinstance(seconds, bool)
    if not whole or not 0 <= seconds <= MAX_FOR_SECONDS:
        errors["gates.prometheus.for_seconds"] = f"A whole number from 0 to {MAX_FOR_SECONDS}."
    return {"url": url, "query": query, "max": maximum, "for_seconds": seconds}


def _settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """Stored settings with the defaults filled in (they were validated when saved)."""
    config = config or {}
    settings: dict[str, Any] = {key: config.get(key, True) is not False for key in SWITCHES}
    settings["prometheus"] = config.get("prometheus") or None
    return settings


def unhealthy_conditions(conditions: Any) -> dict[str, str]:
    """The cluster's unhealthy conditions: type → "status (reason: message)"."""
    found: dict[str, str] = {}
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, dict) or not condition.get("type"):
            continue
        kind, status = str(condition["type"]), str(condition.get("status", ""))
        healthy = status == "False" if kind in NEGATIVE_CONDITIONS else status == "True"
        if not healthy:
            reason = condition.get("reason") or "no reason"
            message = condition.get("message") or ""
            found[kind] = f"{kind}={status} ({reason}{': ' + message if message else ''})"
    return found


def gate_baseline(cluster: Cluster, *, config: dict[str, Any]) -> dict[str, Any]:
    """What the gates compare with later; taken just before the cluster's change starts.
    Quick (one read of the cluster at most): called from the run's checks.

    `errors` lists what could not be read (the workloads of an unreachable cluster): the
    check then holds every workload to fully available, since none can be compared."""
    settings = _settings(config)
    baseline: dict[str, Any] = {"status": cluster.status, "errors": []}
    if settings["conditions"]:
        baseline["conditions"] = sorted(unhealthy_conditions(cluster.conditions))
    if settings["workloads"]:
        snapshot = gates_workloads.workloads_read(cluster)
        if snapshot.error:
            baseline["errors"].append(snapshot.error)
        else:
            baseline["workloads"] = snapshot.as_json()
    if settings["policies"]:
        baseline["policies"] = gates_policies.critical_violations(cluster)
    return baseline


def gate_check(cluster: Cluster, baseline: dict[str, Any], *, config: dict[str, Any]) -> list[str]:
    """The failed gates, each a sentence a user understands; empty when healthy."""
    settings = _settings(config)
    cluster.refresh_from_db(fields=["status", "status_reason", "conditions"])
    failed: list[str] = []
    if cluster.status != ClusterStatus.READY:
        reason = f" ({cluster.status_reason})" if cluster.status_reason else ""
        failed.append(f"{cluster.name} is {cluster.get_status_display()}, not Ready{reason}.")
    if settings["conditions"]:
        before = set(baseline.get("conditions") or [])
        for kind, text in sorted(unhealthy_conditions(cluster.conditions).items()):
            if kind not in before:
                failed.append(f"{cluster.name} has a new unhealthy condition {text}.")
    if settings["workloads"]:
        failed.extend(gates_workloads.workloads_gate(cluster, baseline.get("workloads")))
    if settings["policies"]:
        failed.extend(gates_policies.policies_gate(cluster, baseline.get("policies") or {}))
    if settings["prometheus"]:
        prometheus = settings["prometheus"]
        failed.extend(gates_prometheus.prometheus_gate(prometheus, cluster=cluster.name))
    return failed
