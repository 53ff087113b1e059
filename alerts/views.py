"""Alert pages: alerts (firing, acknowledged, silenced, resolved) with acknowledge, rules
(create, enable or disable, delete), silences (create, expire), the cluster page's alert
card and the overview's "firing alerts" panel. Same services as the API."""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import require_role, teams_for
from alerts.choices import AlertState, RuleKind, Severity
from alerts.filtersets import AlertFilterSet
from alerts.models import AlertRule
from alerts.selectors import alert_list, rule_list, silence_list, state_counts
from alerts.services.lifecycle import alert_acknowledge
from alerts.services.rules import RuleSpec, alert_rule_create, alert_rule_delete, alert_rule_update
from alerts.services.silences import silence_create, silence_expire
from clusters.selectors import cluster_get_or_404
from core.ui.filters import any_by_default

LISTED = 200
SILENCE_HOURS = (1, 2, 4, 8, 24, 72, 168)


def _errors(request: HttpRequest, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, problems in error.message_dict.items():
            for problem in problems:
                messages.error(request, f"{field.replace('_', ' ')}: {problem}")
    else:
        for problem in error.messages:
            messages.error(request, problem)


def _team(request: HttpRequest, role: Role) -> Team:
    """The team named in the form, if the user holds `role` in it (else 403, audited)."""
    team = teams_for(request.user).filter(name=request.POST.get("team", "")).first()
    require_role(request.user, team, role, request=request)
    assert team is not None  # require_role refuses a missing team
    return team


def _names(request: HttpRequest, action: str) -> list[str]:
    return list(teams_for(request.user, action).values_list("name", flat=True))  # type: ignore[arg-type]


@login_required
def alerts_page(request: HttpRequest) -> HttpResponse:
    visible = alert_list(user=request.user)
    params = request.GET.copy()
    if "state" not in params and "active" not in params:
        params.setlist("state", ["firing", "acknowledged", "silenced"])
    filterset = AlertFilterSet(params, queryset=visible)
    any_by_default(filterset.form)
    alerts = filterset.qs if filterset.is_valid() else visible.none()
    context = {
        "alerts": alerts.order_by("-starts_at", "-id")[:LISTED],
        "counts": state_counts(visible),
        "filterset": filterset,
        "operate_teams": _names(request, "operate"),
    }
    return render(request, "alerts/list.html", context)


@login_required
def alert_detail_page(request: HttpRequest, pk: int) -> HttpResponse:
    alert = alert_list(user=request.user).filter(pk=pk).first()
    if alert is None:
        raise Http404("No such alert.")
    history = alert_list(user=request.user).filter(fingerprint=alert.fingerprint)[:50]
    context = {
        "alert": alert,
        "history": history,
        "can_operate": alert.team.name in _names(request, "operate"),
    }
    return render(request, "alerts/detail.html", context)


@login_required
@require_POST
def alert_acknowledge_page(request: HttpRequest, pk: int) -> HttpResponse:
    alert = alert_list(user=request.user).filter(pk=pk).first()
    if alert is None:
        raise Http404("No such alert.")
    require_role(request.user, alert.team, Role.OPERATOR, request=request, target=alert)
    try:
        alert_acknowledge(actor=request.user, alert=alert)  # type: ignore[arg-type]
    except ValidationError as error:
        _errors(request, error)
    else:
        messages.success(request, f"Acknowledged: {alert.subject} ({alert.rule.name}).")
    return redirect(request.POST.get("next") or reverse("alerts:list"))


@login_required
def rules_page(request: HttpRequest) -> HttpResponse:
    context = {
        "rules": rule_list(user=request.user).order_by("team__name", "name"),
        "admin_teams": _names(request, "admin"),
        "kinds": RuleKind.choices,
        "severities": Severity.choices,
    }
    return render(request, "alerts/rules.html", context)


@login_required
@require_POST
def rule_create_page(request: HttpRequest) -> HttpResponse:
    team = _team(request, Role.ADMIN)
    try:
        params = json.loads(request.POST.get("params") or "{}")
    except ValueError:
        messages.error(request, 'params: enter a JSON object, e.g. {"for_minutes": 10}.')
        return redirect("alerts:rules")
    spec = RuleSpec(
        name=request.POST.get("name", ""),
        kind=request.POST.get("kind", ""),
        params=params,
        severity=request.POST.get("severity", Severity.WARNING),
        description=request.POST.get("description", ""),
        cluster_set=request.POST.get("cluster_set", "").strip(),
        selector=request.POST.get("selector", ""),
    )
    try:
        rule = alert_rule_create(actor=request.user, team=team, spec=spec)  # type: ignore[arg-type]
    except ValidationError as error:
        _errors(request, error)
    else:
        messages.success(request, f"Rule {rule.name} created.")
    return redirect("alerts:rules")


def _rule_for_admin(request: HttpRequest, pk: int) -> AlertRule:
    rule = rule_list(user=request.user).filter(pk=pk).first()
    if rule is None:
        raise Http404("No such rule.")
    require_role(request.user, rule.team, Role.ADMIN, request=request, target=rule)
    return rule


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


@login_required
def rule_edit_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a rule (admins): its parameters, scope, severity and grouping."""
    rule = _rule_for_admin(request, pk)
    if request.method == "POST":
        form = request.POST
        try:
            params = json.loads(form.get("params") or "{}")
        except ValueError:
            messages.error(request, 'params: enter a JSON object, e.g. {"for_minutes": 10}.')
            return redirect("alerts:rule-edit", pk=rule.pk)
        spec = RuleSpec(
            params=params,
            severity=form.get("severity", rule.severity),
            description=form.get("description", ""),
            cluster_set=form.get("cluster_set", "").strip(),
            selector=form.get("selector", ""),
            group_by=[n.strip() for n in form.get("group_by", "").split(",") if n.strip()],
            group_wait=_int_or_none(form.get("group_wait", "")),
            group_interval=_int_or_none(form.get("group_interval", "")),
            repeat_interval=_int_or_none(form.get("repeat_interval", "")),
        )
        try:
            alert_rule_update(actor=request.user, rule=rule, spec=spec)  # type: ignore[arg-type]
        except ValidationError as error:
            _errors(request, error)
            return redirect("alerts:rule-edit", pk=rule.pk)
        messages.success(request, f"Rule {rule.name} saved.")
        return redirect("alerts:rules")
    context = {
        "rule": rule,
        "params": json.dumps(rule.params),
        "severities": Severity.choices,
    }
    return render(request, "alerts/rule_edit.html", context)


@login_required
@require_POST
def rule_toggle_page(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _rule_for_admin(request, pk)
    rule = alert_rule_update(
        actor=request.user,  # type: ignore[arg-type]
        rule=rule,
        spec=RuleSpec(enabled=not rule.enabled),
    )
    messages.success(request, f"Rule {rule.name} {'enabled' if rule.enabled else 'disabled'}.")
    return redirect("alerts:rules")


@login_required
@require_POST
def rule_delete_page(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _rule_for_admin(request, pk)
    alert_rule_delete(actor=request.user, rule=rule)  # type: ignore[arg-type]
    messages.success(request, f"Rule {rule.name} deleted.")
    return redirect("alerts:rules")


@login_required
def silences_page(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    silences = silence_list(user=request.user)
    context = {
        "active": silences.filter(starts_at__lte=now, ends_at__gt=now),
        "pending": silences.filter(starts_at__gt=now),
        "ended": silences.filter(ends_at__lte=now)[:50],
        "operate_teams": _names(request, "operate"),
        "hours": SILENCE_HOURS,
        "prefill": request.GET.get("matchers", ""),
    }
    return render(request, "alerts/silences.html", context)


@login_required
@require_POST
def silence_create_page(request: HttpRequest) -> HttpResponse:
    team = _team(request, Role.OPERATOR)
    matchers = [
        line.strip() for line in request.POST.get("matchers", "").splitlines() if line.strip()
    ]
    try:
        hours = int(request.POST.get("hours", "2"))
    except ValueError:
        hours = 0
    if hours not in SILENCE_HOURS:
        messages.error(request, "Duration: pick one of the offered durations.")
        return redirect("alerts:silences")
    try:
        silence_create(
            actor=request.user,  # type: ignore[arg-type]
            team=team,
            matchers=matchers,
            comment=request.POST.get("comment", ""),
            ends_at=timezone.now() + timedelta(hours=hours),
        )
    except ValidationError as error:
        _errors(request, error)
    else:
        messages.success(request, f"Silence created for {hours} h.")
    return redirect("alerts:silences")


@login_required
@require_POST
def silence_expire_page(request: HttpRequest, pk: int) -> HttpResponse:
    silence = silence_list(user=request.user).filter(pk=pk).first()
    if silence is None:
        raise Http404("No such silence.")
    require_role(request.user, silence.team, Role.OPERATOR, request=request, target=silence)
    try:
        silence_expire(actor=request.user, silence=silence)  # type: ignore[arg-type]
    except ValidationError as error:
        _errors(request, error)
    else:
        messages.success(request, "Silence expired.")
    return redirect("alerts:silences")


@login_required
def cluster_alerts_fragment(request: HttpRequest, name: str) -> HttpResponse:
    """The cluster page's alerts card (loaded by htmx): its alerts, newest first."""
    cluster = cluster_get_or_404(user=request.user, name=name)
    alerts = alert_list(user=request.user).filter(cluster=cluster).order_by("-starts_at")[:20]
    return render(request, "alerts/_cluster.html", {"cluster": cluster, "alerts": alerts})


@login_required
def firing_panel_fragment(request: HttpRequest) -> HttpResponse:
    """The overview's "firing alerts" panel (loaded by htmx)."""
    firing = alert_list(user=request.user).filter(state=AlertState.FIRING)
    context = {
        "alerts": firing.order_by("severity", "-starts_at")[:8],
        "total": firing.count(),
    }
    return render(request, "alerts/_panel.html", context)
