"""Celery task durations and failures, recorded by the workers in Redis.

Workers run on other hosts than the web process and in several processes each, so they
do not serve metrics themselves: each finished task adds to counters in one Redis hash
(a pipelined HINCRBY per task), and `/metrics` reads the hash at scrape time
(`TaskCollector`). The counters only grow, as Prometheus counters should; they survive
worker restarts. Recording is best effort: with Redis down a task still runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from celery import signals
from django.conf import settings
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_SEP = "\t"
_started: dict[str, float] = {}
_client: redis.Redis[bytes] | None = None


def key() -> str:
    return f"{settings.KEELSON_REDIS_PREFIX}:metrics:celery"


def client() -> redis.Redis[bytes]:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=1.0
        )
    return _client


def _queue(task: Any) -> str:
    info = getattr(getattr(task, "request", None), "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("queue") or "unknown")


def record(*, task: str, queue: str, seconds: float | None = None, failed: bool = False) -> None:
    """Add one finished task (a duration) or one failure to the counters."""
    prefix = f"{task}{_SEP}{queue}{_SEP}"
    try:
        pipe = client().pipeline(transaction=False)
        if seconds is not None:
            pipe.hincrby(key(), prefix + "count", 1)
            pipe.hincrbyfloat(key(), prefix + "sum", seconds)
            bucket = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), "inf")
            pipe.hincrby(key(), f"{prefix}b{bucket}", 1)
        if failed:
            pipe.hincrby(key(), prefix + "failures", 1)
        pipe.execute()
    except redis.RedisError as error:
        logger.warning("task metrics not recorded (%s)", type(error).__name__)


def _prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


def _postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    if started is not None and task is not None:
        record(task=task.name, queue=_queue(task), seconds=time.monotonic() - started)


def _failure(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        record(task=sender.name, queue=_queue(sender), failed=True)


def connect() -> None:
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="metrics-prerun")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="metrics-postrun")
    signals.task_failure.connect(_failure, weak=False, dispatch_uid="metrics-failure")


class TaskCollector(Collector):
    """The workers' counters as a histogram and a failure counter per (task, queue)."""

    def collect(self) -> Iterator[Metric]:
        durations = HistogramMetricFamily(
            "keelson_celery_task_duration_seconds",
            "Run time of finished Celery tasks.",
            labels=["task", "queue"],
        )
        failures = CounterMetricFamily(
            "keelson_celery_task_failures",
            "Celery tasks that raised.",
            labels=["task", "queue"],
        )
        up = 1.0
        try:
            raw: dict[bytes, bytes] = client().hgetall(key())
        except redis.RedisError as error:
            logger.warning("task metrics unavailable (%s)", type(error).__name__)
            raw, up = {}, 0.0
        series: dict[tuple[str, str], dict[str, float]] = {}
        for field, value in raw.items():
            task, queue, name = field.decode().split(_SEP, 2)
            series.setdefault((task, queue), {})[name] = float(value)
        for (task, queue), values in sorted(series.items()):
            if "count" in values:
                cumulative, buckets = 0.0, []
                for index, bound in enumerate(BUCKETS):
                    cumulative += values.get(f"b{index}", 0.0)
                    buckets.append((repr(bound), cumulative))
                buckets.append(("+Inf", values["count"]))
                durations.add_metric([task, queue], buckets, values.get("sum", 0.0))
            if "failures" in values:
                failures.add_metric([task, queue], values["failures"])
        yield durations
        yield failures
        yield GaugeMetricFamily(
            "keelson_task_metrics_up", "1 if the workers' task counters could be read.", up
        )
