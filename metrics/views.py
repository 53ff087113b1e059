"""`/metrics` in the Prometheus text format (see metrics/access.py for who may read it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from metrics import process  # noqa: F401 (registers the web process's metrics)
from metrics.access import Verdict, verdict
from metrics.fleet import FleetCollector
from metrics.queues import QueueCollector
from metrics.tasks import TaskCollector


class Scrape:
    """What one scrape renders: this process's (or, in multiprocess mode, every web
    process's) metrics, then the fleet, task and queue figures read at scrape time."""

    collectors = (FleetCollector(), TaskCollector(), QueueCollector())

    def collect(self) -> Iterator[Metric]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client.multiprocess import MultiProcessCollector

            yield from MultiProcessCollector(None).collect()
        else:
            yield from REGISTRY.collect()
        for collector in self.collectors:
            yield from collector.collect()


def render() -> bytes:
    return generate_latest(Scrape())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    found = verdict(request)
    if found is Verdict.DISABLED:
        raise Http404
    if found is Verdict.UNAUTHENTICATED:
        response = HttpResponse(status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if found is Verdict.FORBIDDEN:
        return HttpResponse(status=403)
    # The classic text format (0.0.4): every Prometheus version reads it.
    return HttpResponse(render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
