"""Application pages: list, create, detail (where it runs, per-cluster status, versions,
rollouts), the placement editor with a live what-if preview, rollout and delete buttons.
Each calls the same services as the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.permissions import (
    has_role_anywhere,
    require_role,
    restrict,
    teams_for,
    user_has_role,
)
from applications.diff import versions_diff
from applications.guard import running_clusters
from applications.models import Application, ClusterWork, PlacementStatus, WorkState
from applications.rollout import (
    ROLLOUT_KIND,
    application_delete_start,
    application_evict_everywhere_start,
    rollout_start,
)
from applications.services import (
    application_create,
    application_update,
    application_version_add,
    placement_simulate,
)
from core.managed import refuse_page_if_managed
from operations.models import Operation

PAGE_SIZE = 50


def _visible(request: HttpRequest) -> QuerySet[Application]:
    return restrict(Application.objects.select_related("team", "placement"), request.user, "view")


def _application_or_404(request: HttpRequest, name: str) -> Application:
    application = _visible(request).filter(name=name).first()
    if application is None:
        raise Http404("No such application.")
    return application


def _errors(error: ValidationError) -> dict[str, list[str]]:
    if hasattr(error, "error_dict"):
        return {key: [str(m) for m in value] for key, value in error.message_dict.items()}
    return {"form": list(error.messages)}


def _json_field(text: str, name: str, empty: Any) -> Any:
    if not text.strip():
        return empty
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(
            {name: f"Not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}."}
        ) from None


@login_required
def application_list_page(request: HttpRequest) -> HttpResponse:
    query = _visible(request).annotate(
        clusters=Count("works", distinct=True),
        available=Count("works", filter=Q(works__state=WorkState.AVAILABLE), distinct=True),
        failing=Count("works", filter=Q(works__state=WorkState.FAILED), distinct=True),
    )
    search = request.GET.get("q", "").strip()
    if search:
        query = query.filter(Q(name__icontains=search) | Q(description__icontains=search))
    page = Paginator(query.order_by("name"), PAGE_SIZE).get_page(request.GET.get("page"))
    can_create = has_role_anywhere(request.user, Role.OPERATOR)
    return render(
        request,
        "placement/list.html",
        {"page": page, "q": search, "can_create": can_create},
    )


STARTER_MANIFESTS = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        resources:
          requests: {cpu: 100m, memory: 64Mi}
"""


@login_required
def application_create_page(request: HttpRequest) -> HttpResponse:
    teams = list(teams_for(request.user, "operate"))
    values = {
        "name": "",
        "team": teams[0].name if len(teams) == 1 else "",
        "namespace": "",
        "description": "",
        "manifests": STARTER_MANIFESTS,
        "placement": '{\n  "prioritizers": {"least_allocated": 1}\n}',
    }
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {key: request.POST.get(key, "") for key in values}
        team = next((t for t in teams if t.name == values["team"]), None)
        try:
            if team is None:
                raise ValidationError({"team": "Choose a team where you are an operator."})
            application = application_create(
                actor=request.user,  # type: ignore[arg-type]
                team=team,
                name=values["name"].strip(),
                namespace=values["namespace"].strip() or values["name"].strip(),
                description=values["description"],
                manifests=values["manifests"],
                placement=_json_field(values["placement"], "placement", {}),
            )
        except ValidationError as error:
            errors = _errors(error)
        else:
            messages.success(request, f"Application {application.name} created.")
            return redirect("applications:detail", name=application.name)
    return render(
        request,
        "placement/create.html",
        {"teams": teams, "values": values, "errors": errors},
        status=400 if errors else 200,
    )


@login_required
def application_detail_page(request: HttpRequest, name: str) -> HttpResponse:
    application = _application_or_404(request, name)
    works = ClusterWork.objects.filter(application=application).select_related("cluster")
    rollouts = Operation.objects.filter(
        target_type=Application._meta.label_lower, target_id=str(application.pk)
    ).order_by("-created_at")[:10]
    decision = application.decisions.first()
    versions = list(application.versions.all()[:10])
    choices = list(application.versions.values_list("number", flat=True)[:200])
    return render(
        request,
        "placement/detail.html",
        {
            "application": application,
            "works": works.order_by("cluster__name"),
            "rollouts": rollouts,
            "rollout_kind": ROLLOUT_KIND,
            "decision": decision,
            "versions": versions,
            "latest": versions[0].number if versions else 0,
            "version_numbers": choices,
            "diff": versions_diff(
                application=application,
                old=request.GET.get("old", ""),
                new=request.GET.get("new", ""),
            ),
            "can_operate": user_has_role(request.user, application.team, Role.OPERATOR),
            "strategy": application.rollout or {"strategy": "all_at_once"},
            "unschedulable": application.placement.status == PlacementStatus.UNSCHEDULABLE,
            "running_on": running_clusters(application),
            "placement_json": json.dumps(application.placement.spec, sort_keys=True),
        },
    )


@login_required
@require_POST
def application_rollout_page(request: HttpRequest, name: str) -> HttpResponse:
    application = _application_or_404(request, name)
    require_role(request.user, application.team, Role.OPERATOR, request=request, target=application)
    version = request.POST.get("version", "")
    # A refused removal everywhere (RemovalRefused) shows the page marked Unschedulable.
    return _start(
        request,
        application,
        lambda: rollout_start(
            application=application,
            actor=request.user,  # type: ignore[arg-type]
            version=int(version) if version.isdigit() else None,
        ),
    )


def _start(
    request: HttpRequest, application: Application, start: Callable[[], Operation]
) -> HttpResponse:
    """Start an operation and follow it, or back to the application with why not."""
    try:
        operation = start()
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("applications:detail", name=application.name)
    return redirect("operations:detail", operation_id=operation.pk)


@login_required
@require_POST
def application_version_page(request: HttpRequest, name: str) -> HttpResponse:
    application = _application_or_404(request, name)
    require_role(request.user, application.team, Role.OPERATOR, request=request, target=application)
    refuse_page_if_managed(application)
    try:
        version = application_version_add(
            actor=request.user,  # type: ignore[arg-type]
            application=application,
            manifests=request.POST.get("manifests", ""),
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"Version {version.number} added; roll it out when ready.")
    return redirect("applications:detail", name=application.name)


@login_required
@require_POST
def application_delete_page(request: HttpRequest, name: str) -> HttpResponse:
    application = _application_or_404(request, name)
    require_role(request.user, application.team, Role.OPERATOR, request=request, target=application)
    refuse_page_if_managed(application)
    if request.POST.get("confirm", "") != application.name:
        messages.error(request, "Type the application's name to confirm.")
        return redirect("applications:detail", name=application.name)
    return _start(
        request,
        application,
        lambda: application_delete_start(
            application=application,
            actor=request.user,  # type: ignore[arg-type]
        ),
    )


@login_required
@require_POST
def application_evict_page(request: HttpRequest, name: str) -> HttpResponse:
    """Remove the application from every cluster it runs on; the form lists those clusters
    and each must be ticked (the service checks they are exactly the running ones)."""
    application = _application_or_404(request, name)
    require_role(request.user, application.team, Role.OPERATOR, request=request, target=application)
    return _start(
        request,
        application,
        lambda: application_evict_everywhere_start(
            application=application,
            actor=request.user,  # type: ignore[arg-type]
            clusters=request.POST.getlist("clusters"),
        ),
    )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


@login_required
def placement_edit_page(request: HttpRequest, name: str) -> HttpResponse:
    """The placement, overrides and rollout strategy as JSON, checked on save, with a live
    preview of what the placement would decide now."""
    application = _application_or_404(request, name)
    values = {
        "placement": _pretty(application.placement.spec),
        "overrides": _pretty(application.overrides),
        "rollout": _pretty(application.rollout),
    }
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        require_role(
            request.user, application.team, Role.OPERATOR, request=request, target=application
        )
        refuse_page_if_managed(application)
        values = {key: request.POST.get(key, "") for key in values}
        try:
            changes = {
                "placement": _json_field(values["placement"], "placement", {}),
                "overrides": _json_field(values["overrides"], "overrides", []),
                "rollout": _json_field(values["rollout"], "rollout", {}),
            }
            application_update(
                actor=request.user,  # type: ignore[arg-type]
                application=application,
                changes=changes,
            )
        except ValidationError as error:
            errors = _errors(error)
        else:
            messages.success(request, "Saved. Clusters change at the next rollout (or reschedule).")
            return redirect("applications:detail", name=application.name)
    preview = _preview(application, values["placement"])
    return render(
        request,
        "placement/edit.html",
        {"application": application, "values": values, "errors": errors, **preview},
        status=400 if errors else 200,
    )


PREVIEW_FIRST = 10


def _preview(application: Application, text: str) -> dict[str, Any]:
    try:
        spec = _json_field(text, "placement", {})
        decision = placement_simulate(application=application, spec=spec)
    except ValidationError as error:
        return {"preview_errors": [f"{k}: {'; '.join(v)}" for k, v in _errors(error).items()]}
    # The first few per reason, with counts: at 10,000 clusters the full lists are a
    # page nobody reads (the API's ?exclusions=all and the stored decisions have them).
    return {"preview": decision.summarized(PREVIEW_FIRST), "preview_first": PREVIEW_FIRST}


@login_required
@require_POST
def placement_preview_fragment(request: HttpRequest, name: str) -> HttpResponse:
    """What-if: the decision for the placement being edited (nothing is stored)."""
    application = _application_or_404(request, name)
    context = {
        "application": application,
        **_preview(application, request.POST.get("placement", "")),
    }
    return render(request, "placement/_preview.html", context)
