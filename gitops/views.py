"""GitOps pages: the team's repositories, and one repository with its last sync, the
objects it declares (and their sync state, drift included), its sync history, "Sync now"
/ "Preview", "Roll back to this commit" (previewed first) and "Unpin"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.permissions import require_role, restrict, user_has_role
from gitops.choices import SyncResult, SyncTrigger
from gitops.drift import with_rollouts
from gitops.models import GitObject, GitRepository
from gitops.rollback import git_repository_unpin, git_rollback_start
from gitops.services import git_sync_start

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


@login_required
def repository_detail_page(request: HttpRequest, pk: int) -> HttpResponse:
    repository = _repository_or_404(request, pk)
    syncs = list(repository.syncs.all()[:HISTORY])
    last = next((s for s in syncs if s.result != SyncResult.PENDING), None)
    context = {
        "repository": repository,
        "syncs": syncs,
        "last": last,
        "objects": with_rollouts(list(GitObject.objects.filter(repository=repository))),
        "rollback_results": (SyncResult.APPLIED, SyncResult.UNCHANGED),
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


@login_required
@require_POST
def repository_rollback_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Roll back to `commit`, or (`preview=1`) plan it first: queued as an Operation."""
    repository = _repository_or_404(request, pk)
    require_role(request.user, repository.team, Role.OPERATOR, request=request, target=repository)
    preview = request.POST.get("preview") == "1"
    try:
        git_rollback_start(
            repository=repository,
            commit=request.POST.get("commit", ""),
            actor=request.user,  # type: ignore[arg-type]
            preview=preview,
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("gitops:detail", pk=repository.pk)
    messages.success(
        request,
        "Rollback preview queued: its plan appears below."
        if preview
        else "Rollback queued; the repository is pinned to that commit until you unpin it.",
    )
    return redirect("gitops:detail", pk=repository.pk)


@login_required
@require_POST
def repository_unpin_page(request: HttpRequest, pk: int) -> HttpResponse:
    repository = _repository_or_404(request, pk)
    require_role(request.user, repository.team, Role.OPERATOR, request=request, target=repository)
    git_repository_unpin(repository=repository, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Unpinned: the next poll syncs {repository.ref}.")
    return redirect("gitops:detail", pk=repository.pk)
