"""The Prometheus gate: an instant query (`GET /api/v1/query`) whose value must stay at or
below `max`. `$cluster` in the query stands for the name of the cluster being checked.

Each series the query returns is compared; no series passes (as an alerting rule with no
result does not fire). With `for_seconds`, the query becomes
`min_over_time((query)[Ns:])`: it fails only when the value stayed above `max` for the
whole window, as a rule's `for` would. The request goes where the egress policy allows,
checked at the connection (core/egress.py), follows no redirect, and takes
`QUERY_SECONDS` at most; an error (the server's for a bad query) fails the gate with it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)

from core import egress
from kube.client import safe_server_text

QUERY_SECONDS = 5.0
MAX_ANSWER_BYTES = 1024 * 1024
SHOWN_SERIES = 3
CLUSTER_VARIABLE = "$cluster"

_manager = egress.guard_pools(urllib3.PoolManager(num_pools=10, maxsize=2, retries=False))


class PrometheusError(Exception):
    """The query could not be answered; the message is safe to show."""


def promql(query: str, for_seconds: int, *, cluster: str = "") -> str:
    """The expression sent: the query with `$cluster` replaced by the cluster's name (a
    slug: nothing to escape in a PromQL string), or its minimum over the last
    `for_seconds`."""
    query = query.replace(CLUSTER_VARIABLE, cluster)
    return f"min_over_time(({query})[{for_seconds}s:])" if for_seconds else query


def prometheus_query(url: str, expression: str) -> list[tuple[dict[str, str], float]]:
    """The instant value of `expression` at `url`, as (labels, value) per series (a
    scalar is one series without labels)."""
    try:
        server = egress.parse_server(url)
    except egress.EgressDenied as error:
        raise PrometheusError(str(error)) from None
    target = f"{url.rstrip('/')}/api/v1/query?{urlencode({'query': expression})}"
    try:
        response = _manager.request(
            "GET",
            target,
            headers={"Accept": "application/json", "User-Agent": "Keelson-Gates/1"},
            timeout=urllib3.Timeout(connect=min(2.0, QUERY_SECONDS), total=QUERY_SECONDS),
            redirect=False,
            retries=False,
            preload_content=False,
        )
    except egress.EgressDenied as error:
        raise PrometheusError(str(error)) from None
    except NewConnectionError as error:  # before ConnectTimeoutError: urllib3 derives it
        reason = type(error.__cause__ or error).__name__
        raise PrometheusError(f"Could not reach Prometheus at {server.host} ({reason}).") from None
    except (ConnectTimeoutError, ReadTimeoutError):
        raise PrometheusError(
            f"Prometheus at {server.host} did not answer within {QUERY_SECONDS:g} s."
        ) from None
    except NameResolutionError:
        raise PrometheusError(f"{server.host} does not resolve.") from None
    except HTTPError as error:
        reason = type(getattr(error, "reason", None) or error).__name__
        raise PrometheusError(f"Could not reach Prometheus at {server.host} ({reason}).") from None
    try:
        raw = response.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    except ReadTimeoutError:
        raise PrometheusError(
            f"Prometheus at {server.host} did not answer within {QUERY_SECONDS:g} s."
        ) from None
    except HTTPError:
        raise PrometheusError(f"Prometheus at {server.host} broke off its answer.") from None
    finally:
        response.release_conn()
    return _values(server.host, response.status, raw)


def _values(host: str, status: int, raw: bytes) -> list[tuple[dict[str, str], float]]:
    if len(raw) > MAX_ANSWER_BYTES:
        raise PrometheusError(f"Prometheus at {host} answered more than 1 MiB: narrow the query.")
    try:
        body = json.loads(raw)
    except ValueError:
        raise PrometheusError(
            f"Prometheus at {host} answered HTTP {status} without its JSON API."
        ) from None
    if not isinstance(body, dict):
        raise PrometheusError(f"Prometheus at {host} answered HTTP {status} without its JSON API.")
    if body.get("status") != "success":
        said = safe_server_text(str(body.get("error") or f"HTTP {status}"))
        kind = safe_server_text(str(body.get("errorType") or "error"))
        raise PrometheusError(f"Prometheus refused the query ({kind}): {said}")
    data = body.get("data") or {}
    shape, result = data.get("resultType"), data.get("result")
    if shape == "scalar" and isinstance(result, list):
        return [({}, _number(result))]
    if shape == "vector" and isinstance(result, list):
        return [(dict(s.get("metric") or {}), _number(s.get("value"))) for s in result]
    raise PrometheusError(
        f"The query returned a {shape}: the gate needs an instant vector or a scalar."
    )


def _number(sample: Any) -> float:
    try:
        return float(sample[1])
    except (TypeError, ValueError, IndexError):
        raise PrometheusError("Prometheus answered a sample that is not a number.") from None


def _series(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}" if inner or not name else name


def prometheus_gate(settings: dict[str, Any], *, cluster: str = "") -> list[str]:
    """The gate's failure (one sentence) or nothing, for `cluster` (its name)."""
    query, maximum = str(settings["query"]), float(settings["max"])
    seconds = int(settings.get("for_seconds") or 0)
    try:
        values = prometheus_query(str(settings["url"]), promql(query, seconds, cluster=cluster))
    except PrometheusError as error:
        return [f"The Prometheus gate's query `{query}` failed: {error}"]
    above = [(labels, value) for labels, value in values if value > maximum]
    if not above:
        return []
    shown = "; ".join(
        f"{_series(labels)} = {value:g}" if labels else f"{value:g}"
        for labels, value in above[:SHOWN_SERIES]
    )
    if len(above) > SHOWN_SERIES:
        shown += f"; and {len(above) - SHOWN_SERIES} more series"
    during = f" for the last {seconds} s" if seconds else ""
    return [f"The Prometheus query `{query}` is above its maximum {maximum:g}{during}: {shown}."]
