from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError
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
from dashboard.selectors import fleet_overview, overdue_pipelines_for
from localkube.runtime import read_progress
from operations.pipelines import pipeline_liveness


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no dependency."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when PostgreSQL, the broker and Redis answer, 503 naming the failures.

    The pipelines' liveness is shown here as information only and never turns readiness
    red: a load balancer or Kubernetes takes a not-ready web pod out of rotation, and a
    stopped beat is no reason to stop serving pages (every web pod would go at once, and
    with them the overview's banner that says what is wrong). Monitoring watches
    /healthz/pipeline, which does answer 503."""
    ready, checks = readiness()
    failing = [name for name, result in checks.items() if not result["ok"]]
    body: dict[str, object] = {
        "status": "ok" if ready else "unavailable",
        "failing": failing,
        "checks": checks,
    }
    if checks["database"]["ok"]:
        body["pipelines_overdue"] = [state.name for state in pipeline_liveness() if state.overdue]
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
@never_cache
def healthz_pipeline(request: HttpRequest) -> JsonResponse:
    """Liveness of the periodic pipelines, for monitoring (no login: names and times only):
    each one's last run, interval and whether it is overdue; 503 when one is, or when the
    database does not answer (the error by class only, as /readyz)."""
    try:
        states = pipeline_liveness()
    except DatabaseError as exc:
        error = f"database unreachable ({type(exc).__name__})"
        return JsonResponse({"status": "unknown", "error": error}, status=503)
    body = {
        "status": "overdue" if any(state.overdue for state in states) else "ok",
        "pipelines": {
            state.name: {
                "last_run": state.last_run.isoformat() if state.last_run else None,
                "interval_seconds": state.interval,
                "overdue": state.overdue,
            }
            for state in states
        },
    }
    return JsonResponse(body, status=503 if body["status"] == "overdue" else 200)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The fleet overview; an htmx request (a live refresh) gets just the panels."""
    context = {
        "overview": fleet_overview(user=request.user),
        "local_runtime": read_progress(settings.VAR_DIR),
        "can_refresh": user_operates_any(user=request.user),
        "overdue_pipelines": overdue_pipelines_for(user=request.user),
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
