from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clusters.localkube.runtime import read_progress
from fleet.dashboard.selectors import fleet_overview
from fleet.health import readiness


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no dependency."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when PostgreSQL, the broker and Redis answer, 503 naming the failures."""
    ready, checks = readiness()
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ok" if ready else "unavailable", "failing": failing, "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The fleet overview; an htmx request (a live refresh) gets just the panels."""
    context = {
        "overview": fleet_overview(user=request.user),
        "local_runtime": read_progress(settings.VAR_DIR),
    }
    template = "fleet/_overview.html" if request.htmx else "fleet/home.html"  # type: ignore[attr-defined]
    return render(request, template, context)
