"""The Prometheus gate against Debian's Prometheus: a value above `max` fails naming the
series, one at or below passes, a query Prometheus refuses fails with its error, and a
server that is not there fails at once."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, prometheus_server
from updates.gates_prometheus import prometheus_gate


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("prometheus")
    with prometheus_server(directory, {"global": {"evaluation_interval": "1s"}}) as url:
        _wait_ready(url, directory / "prometheus.log")
        yield url


def _wait_ready(url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"Prometheus never got ready: {log.read_text()[-2000:]}")


def _gate(url: str, query: str, maximum: float, for_seconds: int = 0) -> list[str]:
    settings = {"url": url, "query": query, "max": maximum, "for_seconds": for_seconds}
    return prometheus_gate(settings)


def test_a_value_above_max_fails_naming_the_series(prometheus: str) -> None:
    query = 'label_replace(vector(0.2), "service", "checkout", "", "")'
    assert _gate(prometheus, query, 0.05) == [
        f'The Prometheus query `{query}` is above its maximum 0.05: {{service="checkout"}} = 0.2.'
    ]


def test_the_query_names_the_cluster_being_checked(prometheus: str) -> None:
    query = 'label_replace(vector(0.2), "cluster", "$cluster", "", "")'
    settings = {"url": prometheus, "query": query, "max": 0.05}
    assert prometheus_gate(settings, cluster="prod-eu-1") == [
        f'The Prometheus query `{query}` is above its maximum 0.05: {{cluster="prod-eu-1"}} = 0.2.'
    ]


def test_a_scalar_above_max_fails_and_values_at_or_below_pass(prometheus: str) -> None:
    assert _gate(prometheus, "scalar(vector(3))", 2) == [
        "The Prometheus query `scalar(vector(3))` is above its maximum 2: 3."
    ]
    assert _gate(prometheus, "vector(0.01)", 0.05) == []
    assert _gate(prometheus, "vector(0.05)", 0.05) == []  # at the maximum is not above it


def test_no_series_passes_as_an_alerting_rule_would_not_fire(prometheus: str) -> None:
    assert _gate(prometheus, 'up{job="nothing-scrapes-this"}', 0) == []


def test_for_seconds_fails_only_a_value_above_max_for_the_whole_window(prometheus: str) -> None:
    query = "vector(0.2)"
    assert _gate(prometheus, query, 0.05, for_seconds=60) == [
        f"The Prometheus query `{query}` is above its maximum 0.05 for the last 60 s: 0.2."
    ]
    # time() grows: its minimum over the last minute is a minute ago
    now = time.time()
    assert _gate(prometheus, "vector(time())", now - 30, for_seconds=60) == []
    assert _gate(prometheus, "vector(time())", now - 30) != []


def test_a_bad_query_fails_with_prometheus_error(prometheus: str) -> None:
    failures = _gate(prometheus, "sum(rate(", 1)
    assert len(failures) == 1
    assert failures[0].startswith(
        "The Prometheus gate's query `sum(rate(` failed: Prometheus refused the query (bad_data): "
    )
    assert "parse error" in failures[0]


def test_a_range_query_fails(prometheus: str) -> None:
    assert _gate(prometheus, "vector(1)[1m:]", 2) == [
        "The Prometheus gate's query `vector(1)[1m:]` failed: The query returned a matrix: "
        "the gate needs an instant vector or a scalar."
    ]


def test_a_missing_server_fails_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    failures = _gate(url, "vector(1)", 2)
    assert time.monotonic() - started < 2
    assert failures == [
        "The Prometheus gate's query `vector(1)` failed: Could not reach Prometheus at "
        "127.0.0.1 (ConnectionRefusedError)."
    ]
