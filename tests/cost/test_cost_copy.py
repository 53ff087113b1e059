"""The hourly cost write goes through the one COPY implementation (`core.db.copy`):
NUL bytes are stripped (PostgreSQL's text and jsonb cannot hold them), separators are
escaped, and the fast line writer writes exactly what the generic one makes of a row."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from core.db.copy import copy_json, copy_line, copy_text, copy_value
from costs.allocation import Allocation
from costs.models import CostAllocation
from costs.services import allocation_lines, allocation_rows, allocations_replace
from tests.factories import make_cluster, make_team

pytestmark = pytest.mark.django_db
HOUR = datetime(2026, 11, 10, 14, 0, tzinfo=UTC)


def test_nul_is_stripped_from_text_and_from_json_strings() -> None:
    assert copy_text("we\x00b") == "web"
    assert copy_text("a\x00\tb") == "a\\tb"
    assert copy_value("\x00") == ""
    # JSON escapes NUL as \u0000: stripped from values and keys alike
    assert copy_json({"app": "we\x00b", "k\x00": "v"}) == '{"app":"web","k":"v"}'
    # the text `\u0000` (a backslash, then u0000) is no NUL and stays: JSON writes it as
    # `\\u0000`, and COPY doubles each backslash
    assert copy_json({"path": "C:\\u0000"}) == '{"path":"C:\\\\\\\\u0000"}'


def test_a_nul_bearing_label_is_stored_without_the_nul() -> None:
    cluster = make_cluster(team=make_team(), name="nul-1", environment="prod")
    allocations = {
        "shop": Allocation(
            "shop",
            controller="Deployment/we\x00b",
            labels=(("app", "we\x00b"), ("path", "C:\\u0000")),
            cpu_cost=D("0.25"),
            cpu_core_hours=D("1"),
        )
    }
    namespaces = {"shop": {"team": "re\x00tail"}}
    lines = allocation_lines(cluster, HOUR, allocations, namespaces, {"nodes": {"list": 1}})
    assert allocations_replace(cluster_ids=[cluster.pk], hour=HOUR, lines=lines) == 1
    stored = CostAllocation.objects.get(cluster=cluster)
    assert stored.labels == {"app": "web", "path": "C:\\u0000"}
    assert stored.namespace_labels == {"team": "retail"}
    assert (stored.controller, stored.environment) == ("Deployment/web", "prod")
    assert (stored.cpu_cost, stored.total_cost, stored.provenance) == (
        D("0.25"),
        D("0.25"),
        {"nodes": {"list": 1}},
    )


def test_the_line_writer_writes_what_copy_line_makes_of_each_row() -> None:
    cluster = make_cluster(team=make_team(), name="lines-1", region="dc\\1\tnorth")
    allocations = {
        "a": Allocation("a", cpu_cost=D("0.1"), cpu_usage_core_hours=D("0.5")),
        "b\x00": Allocation(
            "b\x00",
            controller="Job/x\ny",
            labels=(("k", "v\t"),),
            ram_cost=D("0.000002"),
            extra={"storage": D("0.3"), "load_balancer": D("0.0225")},
        ),
    }
    facts = {"nodes": {"estimate": 2}, "backfilled": True}
    namespaces = {"a": {"env": "prod"}}
    rows = allocation_rows(cluster, HOUR, allocations, namespaces, facts)
    lines = allocation_lines(cluster, HOUR, allocations, namespaces, facts)
    assert lines == [copy_line(row) for row in rows]
    # the total of b: 0.000002 + 0.3 + 0.0225; usage unmeasured is NULL; estimated
    fields = lines[1].split("\t")
    assert fields[3:5] == ["b", "Job/x\\ny"]
    assert fields[18] == "0.322502"
    assert fields[24:27] == ["\\N", "\\N", "t"]
