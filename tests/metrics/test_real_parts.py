"""Real parts: Prometheus (Debian's `prometheus`) scraping a live Keelson, and a real
Celery worker recording task durations and failures that `/metrics` then shows."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from clusters.choices import ClusterStatus
from clusters.models import Cluster
from core.celery import app as celery_app
from fleet.tasks import fleet_ping_task
from metrics import tasks
from tests.factories import make_team
from tests.support import prometheus_server

TOKEN = "prometheus-scrape-token-42"


@pytest.fixture
def keelson(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """uvicorn serving Keelson with `/metrics` behind TOKEN (set before the server starts)."""
    monkeypatch.setenv("KEELSON_METRICS_TOKEN", TOKEN)
    return str(request.getfixturevalue("asgi_server"))


@pytest.fixture
def prometheus(keelson: str, tmp_path: Path) -> Iterator[str]:
    target = urllib.parse.urlsplit(keelson).netloc
    (tmp_path / "token").write_text(TOKEN)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "keelson",
                "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials_file": str(tmp_path / "token")},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    with prometheus_server(tmp_path, config) as url:
        yield url


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            body = json.load(response)
    except OSError:
        return []  # not listening yet
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.mark.django_db(transaction=True)
def test_prometheus_scrapes_keelson(prometheus: str) -> None:
    team = make_team(name="scraped")
    for name in ("p1", "p2", "p3"):
        Cluster.objects.create(
            name=name, team=team, status=ClusterStatus.READY, provider="azure",
            region="westeurope", last_seen_at=timezone.now(),
        )  # fmt: skip
    promql = 'keelson_clusters{status="ready",provider="azure",region="westeurope"}'
    deadline = time.monotonic() + 60
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not found:
        found = query(prometheus, promql)
        time.sleep(0.5)
    assert found, "Prometheus never stored keelson_clusters (see its log in tmp_path)"
    assert found[0]["metric"]["job"] == "keelson"
    assert float(found[0]["value"][1]) == 3
    up = query(prometheus, 'up{job="keelson"}')
    assert float(up[0]["value"][1]) == 1


@pytest.mark.django_db(transaction=True)
def test_worker_records_task_duration_and_failure(
    celery_worker: Any, settings: Any, client: Client
) -> None:
    settings.KEELSON_METRICS_TOKEN = TOKEN
    tasks.client().delete(tasks.key())
    try:
        assert fleet_ping_task.delay("hello").get(timeout=30)["payload"] == "hello"
        # Sent by name without its argument: the worker's call raises TypeError.
        failing = celery_app.send_task("fleet.tasks.fleet_ping_task", args=[], queue="default")
        with pytest.raises(TypeError):
            failing.get(timeout=30)
        labels = {"task": "fleet.tasks.fleet_ping_task", "queue": "default"}
        deadline = time.monotonic() + 10
        values: dict[str, float] = {}
        while time.monotonic() < deadline:
            response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
            values = {
                sample.name: sample.value
                for family in text_string_to_metric_families(response.content.decode())
                for sample in family.samples
                if sample.labels == labels
            }
            if values.get("keelson_celery_task_failures_total") == 1:
                break
            time.sleep(0.2)
        # Both runs finished (a duration each); one of them failed.
        assert values["keelson_celery_task_duration_seconds_count"] == 2
        assert values["keelson_celery_task_failures_total"] == 1
    finally:
        tasks.client().delete(tasks.key())
