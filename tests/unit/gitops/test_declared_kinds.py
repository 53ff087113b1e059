"""The cost and report kinds and an application's parts as documents: the state they
declare (worked out by hand from each API's defaults) and errors naming file and line."""

from __future__ import annotations

import pytest

from gitops.documents import DocumentErrors, desired_objects, parse_documents
from tests.unit.gitops.test_documents import WEB

CARD = """\
apiVersion: keelson.io/v1
kind: RateCard
metadata: {name: edge}
spec:
  versions:
  - {valid_from: 2027-03-01, cpu_core_hour: "0.05", ram_gb_hour: 0.004}
  - valid_from: 2027-01-01
    cpu_core_hour: 0.03
    ram_gb_hour: "0.004"
    gpu_hour: 1.5
    instance_prices: {onprem.medium: "0.21"}
"""
BUDGET = """\
apiVersion: keelson.io/v1
kind: Budget
metadata: {name: payments-monthly}
spec: {monthly_amount: 1500, cluster_set: prod}
"""
REPORT = """\
apiVersion: keelson.io/v1
kind: ReportDefinition
metadata: {name: weekly}
spec: {scope: cluster_set, scope_value: prod, formats: [csv, json, csv], schedule: "0 7 * * 1"}
"""
OVERRIDES = """\
apiVersion: keelson.io/v1
kind: Overrides
metadata: {name: web-eu}
spec:
  application: web
  overrides:
  - {clusters: [eu-1], replicas: 5}
---
apiVersion: keelson.io/v1
kind: RolloutStrategy
metadata: {name: web}
spec: {application: web, strategy: rolling, max_concurrency: 2}
"""


def _desired(*files: tuple[str, str]) -> dict[tuple[str, str], dict[str, object]]:
    return {
        (d.kind, d.name): d.state
        for d in desired_objects(parse_documents(list(files)), team="payments")
    }


def _errors(*files: tuple[str, str]) -> list[str]:
    with pytest.raises(DocumentErrors) as raised:
        desired_objects(parse_documents(list(files)), team="payments")
    return raised.value.errors


def test_cost_and_report_kinds_read_as_the_api_would_store_them() -> None:
    state = _desired(("costs.yaml", CARD + "---\n" + BUDGET), ("report.yaml", REPORT))

    assert state[("RateCard", "edge")] == {
        "versions": [  # oldest first; prices to the micro-unit, as the columns hold them
            {
                "valid_from": "2027-01-01",
                "cpu_core_hour": "0.030000",
                "ram_gb_hour": "0.004000",
                "gpu_hour": "1.500000",
                "storage_gb_month": "0.000000",
                "instance_prices": {"onprem.medium": "0.21"},
            },
            {
                "valid_from": "2027-03-01",
                "cpu_core_hour": "0.050000",
                "ram_gb_hour": "0.004000",
                "gpu_hour": "0.000000",
                "storage_gb_month": "0.000000",
                "instance_prices": {},
            },
        ]
    }
    assert state[("Budget", "payments-monthly")] == {
        "monthly_amount": "1500.00",
        "cluster_set": "prod",
    }
    assert state[("ReportDefinition", "weekly")] == {
        "scope": "cluster_set",
        "scope_value": "prod",
        "period_days": 7,
        "formats": ["csv", "json"],
        "recipients": [],
        "schedule": "0 7 * * 1",
        "enabled": True,
    }


def test_each_kind_reports_its_errors_with_file_and_line() -> None:
    card = CARD.replace('cpu_core_hour: "0.05"', "cpu_core_hour: lots").replace(
        "    gpu_hour: 1.5", "    gpu: 1.5"
    )
    twice = CARD.replace("valid_from: 2027-01-01", "valid_from: 2027-03-01")
    budget = BUDGET.replace("monthly_amount: 1500", "monthly_amount: -5")
    report = REPORT.replace('"0 7 * * 1"', "weekly").replace("[csv, json, csv]", "[doc]")

    errors = _errors(("costs.yaml", card + "---\n" + budget), ("report.yaml", report))

    assert errors == [
        "costs.yaml:1: RateCard edge: spec.versions[1].cpu_core_hour: A valid number is required.",
        "costs.yaml:1: RateCard edge: spec.versions[2]: unknown fields gpu",
        "costs.yaml:13: Budget payments-monthly: spec.monthly_amount: The amount must be above 0.",
        'report.yaml:1: ReportDefinition weekly: spec.formats.0: "doc" is not a valid choice.',
    ]
    assert _errors(("card.yaml", twice)) == [
        "card.yaml:1: RateCard edge: spec.versions: 2027-03-01 is declared twice"
    ]
    (schedule,) = _errors(("report.yaml", REPORT.replace('"0 7 * * 1"', "weekly")))
    assert schedule.startswith("report.yaml:1: ReportDefinition weekly: spec.schedule: Use five")


def test_overrides_and_rollout_strategy_documents_join_their_application() -> None:
    state = _desired(("web.yaml", WEB), ("parts.yaml", OVERRIDES))

    assert set(state) == {("Application", "web")}
    assert state[("Application", "web")]["overrides"] == [{"clusters": ["eu-1"], "replicas": 5}]
    assert state[("Application", "web")]["rollout"] == {"strategy": "rolling", "max_concurrency": 2}
    assert state[("Application", "web")]["placement"] == {"selector": "env=prod"}


def test_a_part_declared_twice_names_both_files() -> None:
    inline = WEB.replace("  description: The shop\n", "  description: The shop\n  rollout: {}\n")
    second = OVERRIDES.split("---\n")[0].replace("web-eu", "web-us")

    errors = _errors(("web.yaml", inline), ("parts.yaml", OVERRIDES), ("more.yaml", second))

    assert errors == [
        "more.yaml:1: Overrides web-us: the overrides of web is also declared by Overrides "
        "web-eu at parts.yaml:1",
        "web.yaml:1: Application web: spec.rollout: also declared by RolloutStrategy web at "
        "parts.yaml:9; declare it in one place",
    ]


def test_a_part_of_no_declared_application_or_with_a_bad_spec_is_an_error() -> None:
    orphan = OVERRIDES.replace("application: web", "application: api", 1)
    bad = OVERRIDES.replace("strategy: rolling", "strategy: sideways")

    assert _errors(("web.yaml", WEB), ("parts.yaml", orphan))[0] == (
        "parts.yaml:1: Overrides web-eu: no Application api declared"
    )
    assert _errors(("web.yaml", WEB), ("parts.yaml", bad)) == [
        "parts.yaml:9: RolloutStrategy web: strategy: One of all_at_once, rolling, canary."
    ]
