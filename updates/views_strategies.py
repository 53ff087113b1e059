"""Pages of update strategies and maintenance windows: lists for everyone of the team;
create, edit and delete (after a confirmation page) for its operators and admins."""

from __future__ import annotations

from typing import Any

import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import require_role, teams_for
from clusters.models import ClusterSet
from updates.forms import ISO_DAYS, StrategyForm, WindowForm, add_service_errors
from updates.models import MaintenanceWindow, UpdateStrategy
from updates.selectors import cluster_set_choices, strategy_list, window_list
from updates.services import (
    maintenance_window_delete,
    maintenance_window_save,
    update_strategy_delete,
    update_strategy_save,
)

STAGES_EXAMPLE = """\
- name: canary
  groups:
    - {name: canary, cluster_set: canary}
  max_concurrency: 1
  soak_seconds: 600
- name: eu
  approval: true
  groups:
    - {name: eu-web, selector: "region=eu,tier=web"}
    - {name: eu-data, cluster_set: eu-data}
  max_concurrency: "25%"
  soak_seconds: 1800
"""


def _operate_teams(request: HttpRequest) -> list[str]:
    names = list(teams_for(request.user, "operate").values_list("name", flat=True))
    if not names:
        require_role(request.user, None, Role.OPERATOR, request=request)
    return names


def _edited(request: HttpRequest, queryset: Any, pk: int | None) -> Any:
    """The object to edit (operators of its team), or None for a new one."""
    if pk is None:
        return None
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404("Not found.")
    require_role(request.user, obj.team, Role.OPERATOR, request=request, target=obj)
    return obj


def _confirm_delete(
    request: HttpRequest, *, what: str, name: str, consequence: str, back: str
) -> HttpResponse:
    context = {"what": what, "name": name, "consequence": consequence, "back": back}
    return render(request, "updates/confirm_delete.html", context)


@login_required
def strategy_list_page(request: HttpRequest) -> HttpResponse:
    context = {
        "strategies": strategy_list(user=request.user).order_by("team__name", "name"),
        "operate_teams": list(teams_for(request.user, "operate").values_list("name", flat=True)),
    }
    return render(request, "updates/strategies.html", context)


@login_required
def strategy_edit_page(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    strategy: UpdateStrategy | None = _edited(request, strategy_list(user=request.user), pk)
    teams = [strategy.team.name] if strategy else _operate_teams(request)
    initial = {}
    if strategy is not None:
        initial = {
            "team": strategy.team.name,
            "name": strategy.name,
            "description": strategy.description,
            "stages": yaml.safe_dump(strategy.stages, sort_keys=False, width=100),
        }
    form = StrategyForm(
        request.POST or None, initial=initial, teams=teams, editing=strategy is not None
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        target = strategy or UpdateStrategy(
            team=Team.objects.get(name=data["team"]),
            name=data["name"],
            created_by_id=request.user.pk,
        )
        target.description, target.stages = data["description"], data["stages"]
        try:
            saved = update_strategy_save(actor=request.user, strategy=target)  # type: ignore[arg-type]
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Strategy {saved.name} saved.")
            return redirect("updates:strategies")
    context = {"form": form, "strategy": strategy, "example": STAGES_EXAMPLE}
    return render(
        request, "updates/strategy_edit.html", context, status=400 if form.errors else 200
    )


@login_required
def strategy_delete_page(request: HttpRequest, pk: int) -> HttpResponse:
    strategy: UpdateStrategy = _edited(request, strategy_list(user=request.user), pk)
    if request.method == "POST":
        update_strategy_delete(actor=request.user, strategy=strategy)  # type: ignore[arg-type]
        messages.success(request, f"Strategy {strategy.name} deleted.")
        return redirect("updates:strategies")
    return _confirm_delete(
        request,
        what="strategy",
        name=strategy.name,
        consequence="Runs made from it keep their own copy of its stages.",
        back=reverse("updates:strategies"),
    )


@login_required
def window_list_page(request: HttpRequest) -> HttpResponse:
    context = {
        "windows": window_list(user=request.user).order_by("team__name", "name"),
        "operate_teams": list(teams_for(request.user, "operate").values_list("name", flat=True)),
        "day_names": dict((int(value), label) for value, label in ISO_DAYS),
    }
    return render(request, "updates/windows.html", context)


@login_required
def window_edit_page(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    window: MaintenanceWindow | None = _edited(request, window_list(user=request.user), pk)
    teams = [window.team.name] if window else _operate_teams(request)
    initial: dict[str, Any] = {}
    if window is not None:
        initial = {
            "team": window.team.name,
            "name": window.name,
            "cluster_set": str(window.cluster_set_id),
            "days": [str(day) for day in window.days],
            "start_time": window.start_time,
            "duration_minutes": window.duration_minutes,
            "timezone": window.timezone,
            "enabled": window.enabled,
        }
    form = WindowForm(
        request.POST or None,
        initial=initial,
        teams=teams,
        cluster_sets=cluster_set_choices(user=request.user),
        editing=window is not None,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        target = window or MaintenanceWindow(
            team=Team.objects.get(name=data["team"]), name=data["name"]
        )
        target.cluster_set = ClusterSet.objects.get(pk=data["cluster_set"])
        target.days = data["days"]
        target.start_time = data["start_time"]
        target.duration_minutes = data["duration_minutes"]
        target.timezone = data["timezone"]
        target.enabled = data["enabled"]
        try:
            saved = maintenance_window_save(actor=request.user, window=target)  # type: ignore[arg-type]
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Maintenance window {saved.name} saved.")
            return redirect("updates:windows")
    context = {"form": form, "window": window}
    return render(request, "updates/window_edit.html", context, status=400 if form.errors else 200)


@login_required
def window_delete_page(request: HttpRequest, pk: int) -> HttpResponse:
    window: MaintenanceWindow = _edited(request, window_list(user=request.user), pk)
    if request.method == "POST":
        maintenance_window_delete(actor=request.user, window=window)  # type: ignore[arg-type]
        messages.success(request, f"Maintenance window {window.name} deleted.")
        return redirect("updates:windows")
    return _confirm_delete(
        request,
        what="maintenance window",
        name=window.name,
        consequence=(
            f"Clusters of {window.cluster_set.name} may then change whenever a run reaches "
            "them, unless another window covers them."
        ),
        back=reverse("updates:windows"),
    )
