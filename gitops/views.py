"""GitOps pages: the team's repositories, and one repository with its last sync, the
objects it manages (and their state), its sync history and "Sync now" / "Preview"."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.permissions import require_role, restrict, user_has_role
from applications.models import Application
from clusters.models import ClusterSet
from costs.models import Budget, RateCard
from gitops.choices import SyncResult, SyncTrigger
from gitops.models import GitRepository, GitSync
from gitops.plan import Action
from gitops.services import git_sync_start
from policies.models import Policy, ReportDefinition

HISTORY = 20


def _visible(request: HttpRequest) -> QuerySet[GitRepository]:
    return restrict(GitRepository.objects.select_related("team"), request.user, "view")


def _repository_or_404(request: HttpRequest, pk: int) -> GitRepository:
    repository = _visible(request).filter(pk=pk).first()
    if repository is None:
        raise Http404("No such repository.")
    return repository


@login_required
def repository_list_page(request: HttpRequest) -> HttpResponse:
    repositories = _visible(request).order_by("team__name", "name")
    return render(request, "gitops/list.html", {"repositories": repositories})


def _objects(repository: GitRepository, last: GitSync | None) -> list[dict[str, Any]]:
    """Each object the repository manages or declared at the last sync, with its state:
    synced (at the last applied commit), out of sync (the last plan would change it,
    not applied yet), failed (the last sync failed)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    models: tuple[tuple[str, Any], ...] = (
        ("ClusterSet", ClusterSet),
        ("Application", Application),
        ("Policy", Policy),
        ("RateCard", RateCard),
        ("Budget", Budget),
        ("ReportDefinition", ReportDefinition),
    )
    for kind, model in models:
        for obj in model.objects.filter(managed_by__repository=repository.pk):
            marker = obj.managed_by or {}
            state = "pruning" if marker.get("pruning") else "synced"
            rows[(kind, obj.name)] = {
                "kind": kind,
                "name": obj.name,
                "commit": str(marker.get("commit", ""))[:7],
                "state": state,
                "file": "",
                "reason": "",
            }
    if last is not None:
        for change in last.plan:
            key = (change["kind"], change["name"])
            row = rows.setdefault(
                key, {"kind": key[0], "name": key[1], "commit": "", "state": "", "reason": ""}
            )
            row["file"] = f"{change['file']}:{change['line']}" if change.get("file") else ""
            if last.result == SyncResult.PLANNED and change["action"] != Action.UNCHANGED:
                row["state"] = "out of sync"
                row["reason"] = f"would {change['action']}"
        if last.result == SyncResult.FAILED:
            for row in rows.values():
                row["state"], row["reason"] = "failed", "the last sync failed"
    return sorted(rows.values(), key=lambda row: (row["kind"], row["name"]))


@login_required
def repository_detail_page(request: HttpRequest, pk: int) -> HttpResponse:
    repository = _repository_or_404(request, pk)
    syncs = list(repository.syncs.all()[:HISTORY])
    last = next((s for s in syncs if s.result != SyncResult.PENDING), None)
    context = {
        "repository": repository,
        "syncs": syncs,
        "last": last,
        "objects": _objects(repository, last),
        "webhook_path": f"/api/v1/git-repositories/{repository.pk}/webhook/",
        "can_operate": user_has_role(request.user, repository.team, Role.OPERATOR),
    }
    return render(request, "gitops/detail.html", context)


@login_required
@require_POST
def repository_sync_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Sync now, or preview (`preview=1`): queued as an Operation."""
    repository = _repository_or_404(request, pk)
    require_role(request.user, repository.team, Role.OPERATOR, request=request, target=repository)
    preview = request.POST.get("preview") == "1"
    try:
        git_sync_start(
            repository=repository,
            trigger=SyncTrigger.PREVIEW if preview else SyncTrigger.MANUAL,
            actor=request.user,  # type: ignore[arg-type]
            apply=not preview,
            commit="" if preview else request.POST.get("commit", ""),
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("gitops:detail", pk=repository.pk)
    messages.success(
        request, "Preview queued: the plan appears below." if preview else "Sync queued."
    )
    return redirect("gitops:detail", pk=repository.pk)
