"""Compliance reports: correct numbers in every format (PDF parsed back), mailed, kept,
scheduled with django-celery-beat and generated on time by real beat and worker processes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from pypdf import PdfReader

from accounts.models import Team
from policies.models import ComplianceReport, Policy, ReportDefinition
from policies.services.policies import PolicySpec, policy_create
from policies.services.reports import ReportSpec, report_definition_save, report_generate
from tests.clusters.helpers import wait_for
from tests.conftest import REPO
from tests.factories import make_cluster, make_evaluation, make_team
from tests.support import child_database_url

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
RULE = {"name": "r", "kind": "cluster", "expression": "cluster.nodeCount >= 0"}


def _policy(team: Team, name: str, standard: str) -> Policy:
    return policy_create(
        team=team, actor=None, spec=PolicySpec(name=name, standards=[standard], rules=[RULE])
    )


def _history(team: Team) -> None:
    """Two clusters, two policies, results over the week (see the expected numbers). The
    clusters are pull-mode so that creating the policies queues no evaluation of them."""
    eu1 = make_cluster(team=team, name="eu-1", mode="pull")
    eu2 = make_cluster(team=team, name="eu-2", mode="pull")
    pss, ops = _policy(team, "pss-a", "pss-baseline"), _policy(team, "ops-b", "ops")

    def result(policy: Policy, cluster: Any, status: str, days_ago: int, *violations: str) -> None:
        make_evaluation(
            policy=policy,
            cluster=cluster,
            status=status,
            at=NOW - timedelta(days=days_ago) + timedelta(hours=1),
            violations=[
                {"rule": "r", "kind": kind, "namespace": "web", "name": name, "message": "bad"}
                for kind, name in (v.split("/") for v in violations)
            ],
        )

    result(pss, eu1, "noncompliant", 3, "Pod/priv")
    result(pss, eu1, "compliant", 1)
    result(pss, eu2, "noncompliant", 2, "Deployment/priv-web")
    result(ops, eu1, "compliant", 5)
    result(ops, eu2, "error", 1)


@pytest.mark.django_db
def test_report_numbers_in_every_format_mailed_and_kept_once() -> None:
    # given a week of history and a weekly fleet report mailed to two people
    team = make_team(name="payments")
    _history(team)
    definition = report_definition_save(
        team=team,
        actor=None,
        spec=ReportSpec(name="weekly", recipients=["sec@example.com", "ops@example.com"]),
    )

    # when generated for the week ending NOW
    report = report_generate(definition=definition, now=NOW)

    # then the newest result per pair counts: 2 compliant, 1 noncompliant, 1 error
    files = {f.format: bytes(f.content) for f in report.files.all()}
    assert set(files) == {"html", "pdf", "csv", "json"}
    data = json.loads(files["json"])
    assert data == report.data
    assert data["overall"] == {"compliant": 2, "noncompliant": 1, "error": 1, "percent": 66.7}
    assert [(s["name"], s["percent"]) for s in data["standards"]] == [
        ("ops", 100.0),
        ("pss-baseline", 50.0),
    ]
    assert [(c["name"], c["percent"]) for c in data["clusters"]] == [
        ("eu-1", 100.0),
        ("eu-2", 0.0),
    ]
    # superseded violations are gone; the trend replays the week day by day
    assert [(v["policy"], v["kind"], v["name"]) for v in data["top_violations"]] == [
        ("pss-a", "Deployment", "priv-web")
    ]
    assert [p["percent"] for p in data["trend"]] == [None, None, 100.0, 100.0, 50.0, 33.3, 66.7]

    rows = list(csv.DictReader(io.StringIO(files["csv"].decode())))
    assert {"section": "overall", "name": "weekly", "compliant": "2", "noncompliant": "1",
            "error": "1", "percent": "66.7"} in rows  # fmt: skip
    assert [r["percent"] for r in rows if r["section"] == "cluster"] == ["100.0", "0.0"]
    assert [r["percent"] for r in rows if r["section"] == "trend"][-3:] == ["50.0", "33.3", "66.7"]

    assert '<strong id="overall">66.7%</strong>' in files["html"].decode()

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(files["pdf"])).pages)
    assert "Overall compliance 66.7%: 2 compliant, 1 noncompliant, 1 error" in text
    assert "pss-baseline" in text and "50.0%" in text
    assert "Deployment web/priv-web" in text

    [sent] = mail.outbox
    assert sent.to == ["sec@example.com", "ops@example.com"]
    assert "66.7%" in sent.subject
    assert sorted(name for name, _, _ in sent.attachments) == [
        "weekly-20261123-0600.csv",
        "weekly-20261123-0600.html",
        "weekly-20261123-0600.json",
        "weekly-20261123-0600.pdf",
    ]
    report.refresh_from_db()
    assert report.mailed_to == ["sec@example.com", "ops@example.com"]

    # and a second run for the same minute returns the stored report
    assert report_generate(definition=definition, now=NOW).pk == report.pk
    assert ComplianceReport.objects.count() == 1


@pytest.mark.django_db
def test_scoped_reports_and_bad_definitions() -> None:
    team = make_team(name="payments")
    _history(team)
    standard = report_definition_save(
        team=team,
        actor=None,
        spec=ReportSpec(name="pss", scope="standard", scope_value="pss-baseline", formats=["json"]),
    )
    data = report_generate(definition=standard, now=NOW).data
    assert data["overall"]["percent"] == 50.0
    cluster = report_definition_save(
        team=team,
        actor=None,
        spec=ReportSpec(name="eu2", scope="cluster", scope_value="eu-2", formats=["csv"]),
    )
    assert report_generate(definition=cluster, now=NOW).data["overall"]["percent"] == 0.0

    with pytest.raises(ValidationError) as raised:
        report_definition_save(
            team=team,
            actor=None,
            spec=ReportSpec(
                name="bad", schedule="61 * * *", formats=["docx"], recipients=["nobody"]
            ),
        )
    assert set(raised.value.message_dict) == {"schedule", "formats", "recipients"}


@pytest.mark.django_db
def test_the_schedule_is_a_utc_crontab_for_beat() -> None:
    definition = report_definition_save(
        team=make_team(), actor=None, spec=ReportSpec(name="daily", schedule="30 6 * * *")
    )
    task = definition.periodic_task
    assert task is not None and task.task == "policies.tasks.report_generate_task"
    assert json.loads(task.args) == [definition.pk]
    crontab = task.crontab
    assert crontab is not None
    assert (crontab.minute, crontab.hour, str(crontab.timezone)) == ("30", "6", "UTC")


@pytest.mark.usefixtures("celery_worker")
def test_beat_and_worker_generate_a_scheduled_report_on_time() -> None:
    # given a report due every minute and real beat (database scheduler) and worker
    team = make_team(name="payments")
    _history(team)
    definition = report_definition_save(
        team=team, actor=None, spec=ReportSpec(name="minutely", schedule="* * * * *")
    )
    env = dict(os.environ, DATABASE_URL=child_database_url())
    log = (REPO / "var" / "test-beat.log").open("ab")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "fleet", "beat", "-l", "info",
         "-S", "django_celery_beat.schedulers:DatabaseScheduler", "--max-interval", "5"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    started = datetime.now(UTC)
    try:
        # when the next minute starts, then the report is there within seconds of it
        report = wait_for(
            lambda: ComplianceReport.objects.filter(definition=definition).first(),
            timeout=100,
            what="the scheduled report",
        )
    finally:
        beat.terminate()
        beat.wait(timeout=20)
        log.close()
    next_minute = started.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert report.period_end == next_minute
    assert report.generated_at - next_minute < timedelta(seconds=30)
    assert report.data["overall"]["percent"] == 66.7  # the newest results, as above
    assert report.files.count() == 4


@pytest.mark.django_db
def test_reports_api_defines_generates_downloads_and_is_team_scoped() -> None:
    from rest_framework.test import APIClient

    from accounts.choices import Role
    from tests.factories import add_member, make_user

    team = make_team(name="payments")
    _history(team)
    user, outsider = make_user(), make_user()
    add_member(team, user, Role.OPERATOR)
    add_member(make_team(), outsider, Role.ADMIN)
    client, other = APIClient(), APIClient()
    client.force_authenticate(user)
    other.force_authenticate(outsider)

    # a bad schedule is refused with the field named
    bad = client.post(
        "/api/v1/report-definitions/",
        {"name": "weekly", "team_name": "payments", "schedule": "every monday"},
        format="json",
    )
    assert bad.status_code == 400
    assert "schedule" in bad.json()["error"]["fields"]

    created = client.post(
        "/api/v1/report-definitions/",
        {"name": "weekly", "team_name": "payments", "formats": ["pdf", "csv"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["schedule"] == "0 6 * * 1"
    generated = client.post("/api/v1/report-definitions/weekly/generate/")
    assert generated.status_code == 201
    report = generated.json()
    assert {f["format"] for f in report["files"]} == {"pdf", "csv"}

    pdf = client.get(f"/api/v1/compliance-reports/{report['id']}/download/pdf/")
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    missing = client.get(f"/api/v1/compliance-reports/{report['id']}/download/json/")
    assert missing.status_code == 404

    # an outsider sees none of it
    assert other.get("/api/v1/report-definitions/").json()["results"] == []
    assert other.get("/api/v1/compliance-reports/").json()["results"] == []
    assert other.get(f"/api/v1/compliance-reports/{report['id']}/download/pdf/").status_code == 404
    assert other.post("/api/v1/report-definitions/weekly/generate/").status_code == 404
    assert other.delete("/api/v1/report-definitions/weekly/").status_code == 404


@pytest.mark.django_db
def test_reports_page_schedules_generates_and_downloads() -> None:
    from django.test import Client

    from accounts.choices import Role
    from tests.factories import add_member, make_user

    team = make_team(name="payments")
    _history(team)
    user, outsider = make_user(), make_user()
    add_member(team, user, Role.OPERATOR)
    add_member(make_team(), outsider, Role.ADMIN)
    client, other = Client(), Client()
    client.force_login(user)
    other.force_login(outsider)
    form = {
        "team": "payments",
        "name": "weekly",
        "scope": "fleet",
        "period_days": "7",
        "formats": ["pdf", "json"],
        "schedule": "0 6 * *",
    }

    refused = client.post("/policies/reports/", form)
    assert "Use five cron fields" in refused.content.decode()
    assert client.post("/policies/reports/", {**form, "schedule": "0 6 * * 1"}).status_code == 302
    definition_id = ReportDefinition.objects.get().pk
    assert (
        client.post(f"/policies/reports/definitions/{definition_id}/generate/").status_code == 302
    )
    report = ComplianceReport.objects.get()
    page = client.get("/policies/reports/").content.decode()
    assert f"/policies/reports/{report.pk}/pdf/" in page
    assert "66.7%" in page
    download = client.get(f"/policies/reports/{report.pk}/json/")
    assert json.loads(download.content)["overall"]["percent"] == 66.7
    assert other.get(f"/policies/reports/{report.pk}/json/").status_code == 404
    assert "weekly" not in other.get("/policies/reports/").content.decode()
