"""The operation page (the API's `operation-detail` is the JSON view of the same row)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from accounts.permissions import deny
from operations.models import Operation
from operations.selectors import operation_get, operation_may_cancel
from operations.services import operation_cancel, operation_snapshot

# Pages of what an operation acts on, by `target_type` (the model's label); the target's
# name is its `target_repr` (str() of a cluster or an application is its name).
TARGET_PAGES = {
    "clusters.cluster": ("clusters:detail", "Cluster"),
    "placement.application": ("applications:detail", "Application"),
}


def target_link(operation: Operation) -> tuple[str, str] | None:
    """(url, what) of the page of the operation's target, when it has one."""
    page = TARGET_PAGES.get(operation.target_type)
    if page is None or not operation.target_repr:
        return None
    try:
        return reverse(page[0], kwargs={"name": operation.target_repr}), page[1]
    except NoReverseMatch:
        return None


def _operation_or_404(request: HttpRequest, operation_id: UUID) -> Operation:
    operation = operation_get(user=request.user, operation_id=operation_id)
    if operation is None:
        raise Http404("No such operation.")
    return operation


@login_required
def operation_detail(request: HttpRequest, operation_id: UUID) -> HttpResponse:
    """The operation page; an htmx request gets just the status fragment."""
    operation = _operation_or_404(request, operation_id)
    context = {
        "operation": operation,
        "snapshot": operation_snapshot(operation),
        "target": target_link(operation),
        "can_cancel": not operation.is_final
        and operation_may_cancel(user=request.user, operation=operation),
    }
    template = "operations/_status.html" if request.htmx else "operations/detail.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@login_required
@require_POST
def operation_cancel_page(request: HttpRequest, operation_id: UUID) -> HttpResponse:
    """Cancel through the same service as the API's `cancel` action."""
    operation = _operation_or_404(request, operation_id)
    if not operation_may_cancel(user=request.user, operation=operation):
        deny(
            "Only the operation's creator or a team operator can cancel it.",
            reason="cancel needs the creator or a team operator",
            request=request,
            target=operation,
        )
    try:
        operation = operation_cancel(operation=operation, actor=request.user)  # type: ignore[arg-type]
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(
            request,
            "Canceled."
            if operation.is_final
            else "Cancel requested: the operation stops at its next step.",
        )
    return redirect("operations:detail", operation_id=operation.pk)
