"""Update-run pages: the runs, a new run (draft with its preview), one run's live
progress with its actions. Strategies and maintenance windows: views_strategies.py.
Every action calls the same service as the API (updates.services)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.permissions import require_role, restrict, teams_for, user_has_role
from applications.models import Application
from operations.services import operation_snapshot
from policies.models import Policy
from updates.choices import RUN_FINAL, ChangeKind, RunState
from updates.display import gate_labels, preview_context
from updates.drafts import update_run_delete_draft
from updates.forms import RunForm, add_service_errors
from updates.models import UpdateRun
from updates.selectors import (
    run_get,
    run_list,
    run_progress,
    strategy_list,
)
from updates.services import (
    update_run_abort,
    update_run_approve_stage,
    update_run_create,
    update_run_pause,
    update_run_preview,
    update_run_resume,
    update_run_skip_cluster,
    update_run_start,
)

LISTED = 200
# Run states in which each action button is offered (the service has the last word).
PAUSABLE = (RunState.RUNNING, RunState.WAITING_APPROVAL)
ACTIONS: dict[str, tuple[Callable[..., Any], str]] = {
    "start": (update_run_start, "Run {name} started."),
    "pause": (update_run_pause, "Run {name} paused: changes under way finish, no new one starts."),
    "resume": (update_run_resume, "Run {name} resumed."),
    "abort": (update_run_abort, "Run {name} aborted: nothing new starts, nothing is reverted."),
}


def message_errors(request: HttpRequest, error: ValidationError) -> None:
    """A service's refusal as messages on the next page, each naming its field."""
    if hasattr(error, "error_dict"):
        for field, problems in error.message_dict.items():
            for problem in problems:
                prefix = "" if field == "__all__" else f"{field.replace('_', ' ')}: "
                messages.error(request, prefix + problem)
    else:
        for problem in error.messages:
            messages.error(request, problem)


def _run_or_404(request: HttpRequest, pk: UUID) -> UpdateRun:
    run = run_get(user=request.user, pk=pk)
    if run is None:
        raise Http404("No such update run.")
    return run


def _operated(request: HttpRequest, pk: UUID) -> UpdateRun:
    run = _run_or_404(request, pk)
    require_role(request.user, run.team, Role.OPERATOR, request=request, target=run)
    return run


@login_required
def run_list_page(request: HttpRequest) -> HttpResponse:
    runs = list(run_list(user=request.user).order_by("-created_at")[:LISTED])
    context = {
        "runs": runs,
        "can_create": teams_for(request.user, "operate").exists(),
    }
    return render(request, "updates/list.html", context)


@login_required
def run_create_page(request: HttpRequest) -> HttpResponse:
    """A draft run: nothing changes on any cluster until it is started from its page."""
    strategies = list(
        strategy_list(user=request.user, action="operate").order_by("team__name", "name")
    )
    if not teams_for(request.user, "operate").exists():
        require_role(request.user, None, Role.OPERATOR, request=request)
    form = RunForm(
        request.POST or None,
        strategies=strategies,
        initial={"change_kind": ChangeKind.KUBERNETES_VERSION},
    )
    if request.method == "POST" and form.is_valid():
        strategy = form.chosen_strategy()
        try:
            run = update_run_create(
                actor=request.user,  # type: ignore[arg-type]
                team=strategy.team,
                name=form.cleaned_data["name"],
                strategy=strategy,
                change_kind=form.cleaned_data["change_kind"],
                change_params=form.change_params(),
                gates=form.cleaned_data["gates"],
                scope=form.scope(),
            )
        except ValidationError as error:
            add_service_errors(form, error, field_for=form.field_for)
        else:
            messages.success(
                request, f"Draft {run.name} created: check the preview, then start it."
            )
            return redirect("updates:detail", pk=run.pk)
    team_ids = [s.team_id for s in strategies]
    context = {
        "form": form,
        "policies": Policy.objects.filter(team_id__in=team_ids).values_list("name", flat=True),
        "applications": restrict(Application.objects.all(), request.user, "operate").values_list(
            "name", flat=True
        ),
    }
    return render(request, "updates/new.html", context, status=400 if form.errors else 200)


def _progress_context(request: HttpRequest, run: UpdateRun) -> dict[str, Any]:
    return {
        "run": run,
        "progress": run_progress(run),
        "can_operate": user_has_role(request.user, run.team, Role.OPERATOR),
        "final": run.state in RUN_FINAL,
        "pausable": run.state in PAUSABLE,
    }


@login_required
def run_detail_page(request: HttpRequest, pk: UUID) -> HttpResponse:
    run = _run_or_404(request, pk)
    context = _progress_context(request, run)
    context["gate_labels"] = gate_labels(run.gates or {})
    if run.operation is not None:
        context["snapshot"] = operation_snapshot(run.operation)
    return render(request, "updates/detail.html", context)


@login_required
def run_progress_fragment(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The run's state, actions, stages and clusters: re-fetched on each live update."""
    run = _run_or_404(request, pk)
    return render(request, "updates/_progress.html", _progress_context(request, run))


@login_required
def run_preview_fragment(request: HttpRequest, pk: UUID) -> HttpResponse:
    """What starting the run would do (update_run_preview), loaded by the draft's page."""
    run = _run_or_404(request, pk)
    context = preview_context(update_run_preview(run=run))
    return render(request, "updates/_preview.html", {"run": run, **context})


@login_required
@require_POST
def run_action_page(request: HttpRequest, pk: UUID, action: str) -> HttpResponse:
    """Start, pause, resume or abort (operators and admins of the run's team)."""
    run = _operated(request, pk)
    service, done = ACTIONS[action]
    try:
        service(actor=request.user, run=run)
    except ValidationError as error:
        message_errors(request, error)
    except PermissionDenied as error:  # a run that takes an admin to start
        messages.error(request, str(error))
    else:
        messages.success(request, done.format(name=run.name))
    return redirect("updates:detail", pk=run.pk)


@login_required
@require_POST
def run_approve_page(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Let a stage that waits for approval start; the approver is recorded."""
    run = _operated(request, pk)
    try:
        index = int(request.POST.get("stage_index", ""))
    except ValueError:
        messages.error(request, "stage index: give the number of the stage to approve.")
        return redirect("updates:detail", pk=run.pk)
    try:
        update_run_approve_stage(actor=request.user, run=run, stage_index=index)  # type: ignore[arg-type]
    except ValidationError as error:
        message_errors(request, error)
    else:
        messages.success(request, f"Stage {index + 1} approved.")
    return redirect("updates:detail", pk=run.pk)


@login_required
@require_POST
def run_skip_page(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Skip one cluster that has not changed yet."""
    run = _operated(request, pk)
    name = request.POST.get("cluster", "").strip()
    try:
        update_run_skip_cluster(actor=request.user, run=run, cluster_name=name)  # type: ignore[arg-type]
    except ValidationError as error:
        message_errors(request, error)
    else:
        messages.success(request, f"{name} will be skipped.")
    return redirect("updates:detail", pk=run.pk)


@login_required
def run_delete_page(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Delete a draft, after a confirmation page."""
    run = _operated(request, pk)
    if request.method == "POST":
        try:
            update_run_delete_draft(actor=request.user, run=run)  # type: ignore[arg-type]
        except ValidationError as error:
            message_errors(request, error)
            return redirect("updates:detail", pk=run.pk)
        messages.success(request, f"Draft {run.name} deleted.")
        return redirect("updates:list")
    context = {
        "what": "draft run",
        "name": run.name,
        "consequence": "Nothing has changed on any cluster; the draft and its plan go.",
        "back": reverse("updates:detail", kwargs={"pk": run.pk}),
    }
    return render(request, "updates/confirm_delete.html", context)
