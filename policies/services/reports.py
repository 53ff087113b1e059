"""Compliance reports: definitions scheduled with django-celery-beat, generated from the
evaluation history into HTML, PDF, CSV and JSON, kept in the database, optionally mailed.

The numbers come from the newest result of each (policy, cluster) pair as of a moment:
the end of the period for the tables, the end of each day for the trend. Compliance is
compliant / (compliant + noncompliant); errors are counted but not judged.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import Team, slug_validator
from audit.services import audit_record
from clusters.models import Cluster, ClusterSet
from clusters.services.lifecycle import cluster_set_clusters
from core.csvsafe import SafeWriter
from policies.choices import ReportFormat, ReportScope, ResultStatus
from policies.models import (
    ComplianceReport,
    Policy,
    PolicyEvaluation,
    ReportDefinition,
    ReportFile,
)
from policies.selectors import percent

logger = logging.getLogger(__name__)
TASK = "policies.tasks.report_generate_task"
TOP_VIOLATIONS = 10
CONTENT_TYPES = {
    ReportFormat.HTML: "text/html; charset=utf-8",
    ReportFormat.PDF: "application/pdf",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.JSON: "application/json",
}


@dataclass
class ReportSpec:
    name: str
    scope: str = ReportScope.FLEET
    scope_value: str = ""
    period_days: int = 7
    formats: list[str] = field(default_factory=lambda: list(ReportFormat.values))
    recipients: list[str] = field(default_factory=list)
    schedule: str = "0 6 * * 1"
    enabled: bool = True


def parse_schedule(text: str) -> crontab:
    """Five cron fields, UTC; ValidationError naming the problem."""
    fields = text.split()
    if len(fields) != 5:
        raise ValidationError(
            "Use five cron fields: minute hour day-of-month month day-of-week (UTC)."
        )
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
        )
    except Exception as error:
        raise ValidationError(f"Invalid schedule {text!r}: {error}") from None


def _validate(team: Team, spec: ReportSpec) -> None:
    errors: dict[str, list[str]] = {}
    try:
        slug_validator(spec.name)
    except ValidationError as error:
        errors["name"] = error.messages
    if spec.scope not in ReportScope.values:
        errors["scope"] = [f"Use one of {', '.join(ReportScope.values)}."]
    elif (
        spec.scope == ReportScope.CLUSTER_SET
        and not ClusterSet.objects.filter(team=team, name=spec.scope_value).exists()
    ):
        errors["scope_value"] = ["No such cluster set in the team."]
    elif (
        spec.scope == ReportScope.CLUSTER
        and not Cluster.objects.filter(team=team, name=spec.scope_value).exists()
    ):
        errors["scope_value"] = ["No such cluster in the team."]
    elif spec.scope == ReportScope.STANDARD and not spec.scope_value:
        errors["scope_value"] = ["Name the standard (e.g. pss-baseline)."]
    if not 1 <= spec.period_days <= 366:
        errors["period_days"] = ["Use 1 to 366 days."]
    bad = [f for f in spec.formats if f not in ReportFormat.values]
    if not spec.formats or bad:
        errors["formats"] = [f"Use some of {', '.join(ReportFormat.values)}."]
    for address in spec.recipients:
        try:
            validate_email(address)
        except ValidationError:
            errors.setdefault("recipients", []).append(f"{address!r} is not an e-mail address.")
    try:
        parse_schedule(spec.schedule)
    except ValidationError as error:
        errors["schedule"] = error.messages
    if errors:
        raise ValidationError(errors)


def _sync_beat(definition: ReportDefinition) -> None:
    """One PeriodicTask per definition, with the definition's crontab (UTC)."""
    minute, hour, day_of_month, month, day_of_week = definition.schedule.split()
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
        timezone="UTC",
    )
    values = {
        "task": TASK,
        "crontab": schedule,
        "args": json.dumps([definition.pk]),
        "enabled": definition.enabled,
    }
    if definition.periodic_task is None:
        definition.periodic_task = PeriodicTask.objects.create(
            name=f"policies-report-{definition.pk}", **values
        )
        definition.save(update_fields=["periodic_task"])
    else:
        for key, value in values.items():
            setattr(definition.periodic_task, key, value)
        definition.periodic_task.save()


@transaction.atomic
def report_definition_save(
    *,
    team: Team,
    spec: ReportSpec,
    actor: AbstractBaseUser | None,
    definition: ReportDefinition | None = None,
) -> ReportDefinition:
    """Create or change a definition and its beat schedule."""
    spec.formats = list(dict.fromkeys(spec.formats))
    _validate(team, spec)
    if definition is None:
        if ReportDefinition.objects.filter(team=team, name=spec.name).exists():
            raise ValidationError({"name": [f"The team already has a report named {spec.name}."]})
        definition = ReportDefinition(team=team, created_by_id=actor.pk if actor else None)
    elif spec.name != definition.name:
        raise ValidationError({"name": ["A report definition cannot be renamed."]})
    for key, value in spec.__dict__.items():
        setattr(definition, key, value)
    definition.save()
    _sync_beat(definition)
    audit_record(
        actor=actor,
        action="report.definition.save",
        target=definition,
        team=team,
        detail={"name": definition.name, "schedule": definition.schedule},
    )
    return definition


@transaction.atomic
def report_definition_delete(
    *, definition: ReportDefinition, actor: AbstractBaseUser | None
) -> None:
    audit_record(
        actor=actor,
        action="report.definition.delete",
        target=definition,
        team=definition.team,
        detail={"name": definition.name},
    )
    task = definition.periodic_task
    definition.delete()
    if task is not None:
        task.delete()


def _scope(definition: ReportDefinition) -> tuple[QuerySet[Policy], QuerySet[Cluster]]:
    policies = Policy.objects.filter(team_id=definition.team_id, enabled=True)
    clusters = Cluster.objects.filter(team_id=definition.team_id)
    if definition.scope == ReportScope.STANDARD:
        policies = policies.filter(standards__contains=[definition.scope_value])
    elif definition.scope == ReportScope.CLUSTER:
        clusters = clusters.filter(name=definition.scope_value)
    elif definition.scope == ReportScope.CLUSTER_SET:
        cluster_set = ClusterSet.objects.filter(
            team_id=definition.team_id, name=definition.scope_value
        ).first()
        members = (
            cluster_set_clusters(cluster_set=cluster_set) if cluster_set else Cluster.objects.none()
        )
        clusters = clusters.filter(pk__in=members.values("pk"))
    return policies, clusters


def _latest(
    policies: QuerySet[Policy], clusters: QuerySet[Cluster], until: datetime
) -> list[PolicyEvaluation]:
    return list(
        PolicyEvaluation.objects.filter(
            policy__in=policies.values("pk"),
            cluster__in=clusters.values("pk"),
            evaluated_at__lte=until,
        )
        .order_by("policy_id", "cluster_id", "-evaluated_at", "-id")
        .distinct("policy_id", "cluster_id")
        .select_related("policy", "cluster")
    )


def _counts(rows: list[PolicyEvaluation]) -> dict[str, Any]:
    counter = Counter(row.status for row in rows)
    counts: dict[str, Any] = {status: counter.get(status, 0) for status in ResultStatus.values}
    counts["percent"] = percent(counts["compliant"], counts["noncompliant"])
    return counts


def _grouped(rows: list[PolicyEvaluation], key: Any) -> list[dict[str, Any]]:
    groups: dict[str, list[PolicyEvaluation]] = defaultdict(list)
    for row in rows:
        for name in key(row):
            groups[name].append(row)
    return [{"name": name, **_counts(items)} for name, items in sorted(groups.items())]


def report_data(definition: ReportDefinition, start: datetime, end: datetime) -> dict[str, Any]:
    """Every number a report shows, JSON-ready."""
    policies, clusters = _scope(definition)
    rows = _latest(policies, clusters, end)
    top: Counter[tuple[str, str, str, str, str, str]] = Counter()
    for row in rows:
        seen = set()
        for v in row.violations:
            item = (
                row.policy.name,
                v.get("rule", ""),
                v.get("kind", ""),
                v.get("namespace", ""),
                v.get("name", ""),
                v.get("message", ""),
            )
            if item not in seen:
                seen.add(item)
                top[item] += 1
    trend = []
    days = max(1, (end - start).days)
    for index in range(1, days + 1):
        moment = min(start + timedelta(days=index), end)
        trend.append(
            {"date": moment.date().isoformat(), **_counts(_latest(policies, clusters, moment))}
        )
    return {
        "report": definition.name,
        "team": definition.team.name,
        "scope": definition.scope,
        "scope_value": definition.scope_value,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "overall": _counts(rows),
        "standards": _grouped(rows, lambda r: r.policy.standards or []),
        "clusters": _grouped(rows, lambda r: [r.cluster.name]),
        "policies": _grouped(rows, lambda r: [r.policy.name]),
        "top_violations": [
            {
                "policy": policy,
                "rule": rule,
                "kind": kind,
                "namespace": namespace,
                "name": name,
                "message": message,
                "clusters": count,
            }
            for (policy, rule, kind, namespace, name, message), count in top.most_common(
                TOP_VIOLATIONS
            )
        ],
        "trend": trend,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def render_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2).encode()


def render_csv(data: dict[str, Any]) -> bytes:
    """One table: section (overall, standard, cluster, policy, trend), name and counts."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(["section", "name", "compliant", "noncompliant", "error", "percent"])

    def row(section: str, name: str, c: dict[str, Any]) -> None:
        value = "" if c["percent"] is None else f"{c['percent']:.1f}"
        writer.writerow([section, name, c["compliant"], c["noncompliant"], c["error"], value])

    row("overall", data["report"], data["overall"])
    for section, key in (
        ("standard", "standards"),
        ("cluster", "clusters"),
        ("policy", "policies"),
    ):
        for item in data[key]:
            row(section, item["name"], item)
    for point in data["trend"]:
        row("trend", point["date"], point)
    return out.getvalue().encode()


def render_html(data: dict[str, Any]) -> bytes:
    return render_to_string("policies/report.html", {"data": data}).encode()


def _latin1(text: Any) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def render_pdf(data: dict[str, Any]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(f"Compliance report {data['report']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    scope = data["scope"] + (f" {data['scope_value']}" if data["scope_value"] else "")
    for line in (
        f"Team {data['team']}, scope {scope}",
        f"Period {data['period']['start'][:16]} to {data['period']['end'][:16]} UTC",
        f"Overall compliance {_pct(data['overall']['percent'])}: "
        f"{data['overall']['compliant']} compliant, {data['overall']['noncompliant']} "
        f"noncompliant, {data['overall']['error']} error",
    ):
        pdf.cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")

    def table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        with pdf.table(text_align="LEFT") as grid:
            grid.row([_latin1(h) for h in headers])
            for values in rows:
                grid.row([_latin1(v) for v in values])

    head = ["Name", "Compliant", "Noncompliant", "Error", "Compliance"]

    def counted(items: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [i["name"], i["compliant"], i["noncompliant"], i["error"], _pct(i["percent"])]
            for i in items
        ]

    if data["standards"]:
        table("By standard", head, counted(data["standards"]))
    table("By cluster", head, counted(data["clusters"]))
    if data["top_violations"]:
        table(
            "Top violations",
            ["Policy", "Object", "Clusters", "Message"],
            [
                [
                    v["policy"],
                    f"{v['kind']} {v['namespace'] + '/' if v['namespace'] else ''}{v['name']}",
                    v["clusters"],
                    v["message"][:80],
                ]
                for v in data["top_violations"]
            ],
        )
    table(
        "Trend",
        ["Day", "Compliant", "Noncompliant", "Error", "Compliance"],
        [
            [p["date"], p["compliant"], p["noncompliant"], p["error"], _pct(p["percent"])]
            for p in data["trend"]
        ],
    )
    return bytes(pdf.output())


RENDERERS = {
    ReportFormat.HTML: render_html,
    ReportFormat.PDF: render_pdf,
    ReportFormat.CSV: render_csv,
    ReportFormat.JSON: render_json,
}


def report_generate(
    *, definition: ReportDefinition, now: datetime | None = None
) -> ComplianceReport:
    """Generate (or return, when it exists) the report for the period ending `now`
    (to the minute), store each format and mail it to the recipients."""
    end = (now or timezone.now()).replace(second=0, microsecond=0)
    existing = ComplianceReport.objects.filter(definition=definition, period_end=end).first()
    if existing is not None:
        return existing
    start = end - timedelta(days=definition.period_days)
    data = report_data(definition, start, end)
    files = {fmt: RENDERERS[ReportFormat(fmt)](data) for fmt in definition.formats}
    try:
        with transaction.atomic():
            report = ComplianceReport.objects.create(
                definition=definition, period_start=start, period_end=end, data=data
            )
            ReportFile.objects.bulk_create(
                [
                    ReportFile(
                        report=report,
                        format=fmt,
                        content_type=CONTENT_TYPES[ReportFormat(fmt)],
                        content=content,
                        size=len(content),
                    )
                    for fmt, content in files.items()
                ]
            )
    except IntegrityError:
        # Another worker stored this period meanwhile: theirs is the report.
        return ComplianceReport.objects.get(definition=definition, period_end=end)
    if definition.recipients:
        _mail(definition, report, data, files)
    return report


def _mail(
    definition: ReportDefinition,
    report: ComplianceReport,
    data: dict[str, Any],
    files: dict[str, bytes],
) -> None:
    overall = _pct(data["overall"]["percent"])
    message = EmailMessage(
        subject=f"[Keelson] Compliance report {definition.name}: {overall}",
        body=(
            f"Compliance of {data['team']} ({data['scope']}) from {data['period']['start'][:16]} "
            f"to {data['period']['end'][:16]} UTC: {_pct(data['overall']['percent'])}.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(definition.recipients),
    )
    stamp = report.period_end.strftime("%Y%m%d-%H%M")
    for fmt, content in files.items():
        message.attach(
            f"{definition.name}-{stamp}.{fmt}", content, CONTENT_TYPES[ReportFormat(fmt)]
        )
    try:
        message.send()
    except Exception:  # the report is kept; the mail server's outage is logged
        logger.warning("mailing report %s failed", report.pk, exc_info=True)
        return
    ComplianceReport.objects.filter(pk=report.pk).update(mailed_to=list(definition.recipients))
