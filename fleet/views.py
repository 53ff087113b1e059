from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clusters.choices import ClusterStatus
from clusters.selectors import cluster_list
from fleet.health import readiness
from fleet.operations.selectors import operation_list


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
    operations = operation_list(user=request.user).order_by("-created_at")[:10]
    counts = dict(
        cluster_list(user=request.user).values_list("status").annotate(n=Count("id")).order_by()
    )
    context = {
        "operations": operations,
        "cluster_total": sum(counts.values()),
        "cluster_counts": [(status, counts.get(status.value, 0)) for status in ClusterStatus],
    }
    return render(request, "fleet/home.html", context)
