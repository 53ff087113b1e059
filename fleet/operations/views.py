from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from fleet.operations.selectors import operation_get
from fleet.operations.services import operation_snapshot


@login_required
def operation_detail(request: HttpRequest, operation_id: UUID) -> HttpResponse:
    """The operation page; an htmx request gets just the status fragment."""
    operation = operation_get(user=request.user, operation_id=operation_id)
    if operation is None:
        raise Http404("No such operation.")
    context = {"operation": operation, "snapshot": operation_snapshot(operation)}
    template = "operations/_status.html" if request.htmx else "operations/detail.html"  # type: ignore[attr-defined]
    return render(request, template, context)
