from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.text import capfirst
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import deny
from clusters.selectors import cluster_list
from clusters.services.refresh import (
    BOTH,
    COST_ONLY,
    clusters_refresh_now,
    user_operates_any,
)
from core.health import readiness
from dashboard.selectors import fleet_overview
from localkube.runtime import read_progress


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
        "can_refresh": user_operates_any(user=request.user),
    }
    template = "fleet/_overview.html" if request.htmx else "fleet/home.html"  # type: ignore[attr-defined]
    return render(request, template, context)


# Where a fleet-wide refresh is asked from: the page to return to and what it refreshes (the
# cost page computes cost only). Unknown origins fall back to the overview.
REFRESH_FROM = {
    "home": ("home", BOTH),
    "cost": ("cost:explorer", COST_ONLY),
}


@login_required
@require_POST
def refresh_now(request: HttpRequest) -> HttpResponse:
    """Queue the refresh of every cluster the user operates (the overview's and the cost
    page's "evaluate now" / "compute now")."""
    page, what = REFRESH_FROM.get(request.POST.get("from", ""), REFRESH_FROM["home"])
    if not user_operates_any(user=request.user):
        deny(
            "You need the operator role in a team.",
            reason="needs the operator role in a team",
            request=request,
        )
    # Ids and teams only: a fleet of thousands is one light query, queued in batches.
    operated = cluster_list(user=request.user, action="operate")
    clusters = list(operated.only("pk", "team_id", "name", "mode"))
    queued = clusters_refresh_now(
        actor=request.user, clusters=clusters, what=what, scope="fleet", request=request
    )
    if queued:
        messages.success(
            request,
            f"{capfirst(what.wording)} queued for {queued} cluster{'s' if queued != 1 else ''}: "
            "results appear when the workers finish.",
        )
    else:
        messages.info(request, "No clusters to refresh yet.")
    return redirect(page)
