"""In a real browser: phone widths, local timestamps, the cost chart's axis (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from accounts.choices import Role
from costs.models import CostAllocation
from operations.models import Operation
from operations.services import operation_create
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_operations_live import _log_in
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def _fleet() -> tuple[Any, Operation]:
    team = make_team(name="platform-engineering")
    user = make_user(username="operator-on-call")
    add_member(team, user, Role.ADMIN)
    cluster = make_cluster(
        team=team,
        name="production-eu-west-1-primary",
        display_name="Production EU West (primary)",
        status="ready",
        provider="aws",
        region="eu-west-1",
        node_count=12,
        nodes_ready=12,
        labels={"env": "production", "tier": "web", "cost-center": "platform-1234"},
        api_server_url="https://production-eu-west-1-primary.k8s.example.com:6443",
        last_seen_at=timezone.now(),
    )
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for namespace, total in (("shop", "3.25"), ("payments", "1.50")):
        CostAllocation.objects.create(
            cluster=cluster,
            cluster_name=cluster.name,
            hour=hour,
            namespace=namespace,
            team=team,
            provider="aws",
            region="eu-west-1",
            cpu_cost=Decimal(total),
            ram_cost=Decimal(0),
            gpu_cost=Decimal(0),
            total_cost=Decimal(total),
        )
    operation = operation_create(
        kind="cluster.provision", created_by=user, target=cluster, team=team
    )
    return cluster, operation


def _git_repository(team: Any) -> Any:
    """A repository pinned by a rollback, with an applied sync (its rollback button), a
    planned change (a manifests diff), a failed sync, and objects drifted (a manifests
    diff), failed and pending."""
    from gitops.models import GitObject, GitRepository, GitSync

    repository = GitRepository.objects.create(
        team=team,
        name="platform-fleet-production",
        url="https://git.example.com/platform-engineering/fleet-configuration-production.git",
        path="clusters/production/eu-west-1",
        last_commit="0123456789abcdef0123456789abcdef01234567",
        last_result="planned",
        last_synced_at=timezone.now(),
        pinned_commit="89abcdef0123456789abcdef0123456789abcdef",
        pinned_at=timezone.now(),
    )
    diff = (
        "--- manifests (now)\n+++ manifests (in git)\n@@ -1 +1 @@\n"
        "-      - {name: web, image: registry.example.com/platform/storefront-web:1.25.0}\n"
        "+      - {name: web, image: registry.example.com/platform/storefront-web:1.26.0}\n"
    )
    plan = [
        {
            "action": "change",
            "kind": "Application",
            "name": "storefront-web-production",
            "file": "clusters/production/eu-west-1/applications/storefront.yaml",
            "line": 1,
            "diff": {"manifests": {"diff": diff}, "description": {"old": "a", "new": "b"}},
            "placement": {
                "clusters": ["production-eu-west-1-payments-primary-cluster"],
                "added": ["production-eu-west-1-payments-primary-cluster"],
                "removed": ["production-eu-west-1-payments-secondary-cluster"],
                "replicas_moved": {
                    "production-eu-west-1-payments-primary-cluster": {"old": 2, "new": 4}
                },
                "warnings": [],
                "cost_per_month": "123.45",
                "cost_unpriced": ["production-eu-west-1-payments-secondary-cluster"],
            },
        },
        {
            "action": "create",
            "kind": "Policy",
            "name": "storefront-deployments-must-run-a-single-replica",
            "file": "clusters/production/eu-west-1/policies.yaml",
            "line": 1,
            "diff": {},
            "compliance": {
                "clusters": [
                    {
                        "cluster": "production-eu-west-1-payments-primary-cluster",
                        "violations": 2,
                        "objects": [
                            "Deployment storefront-web-production/storefront-web-frontend",
                            "Deployment storefront-web-production/storefront-web-backend",
                        ],
                        "new": True,
                    }
                ],
                "not_previewed": [
                    {"cluster": "edge-pull-cluster", "reason": "pull mode: its agent evaluates it"}
                ],
            },
        },
    ]
    GitSync.objects.create(
        repository=repository,
        trigger="rollback",
        commit=repository.pinned_commit,
        result="applied",
        finished_at=timezone.now(),
    )
    long_file = "clusters/production/eu-west-1/applications/storefront.yaml"
    for name, status, reason, changed in (
        ("storefront-web-production", "drifted", "changed outside Git: manifests", diff),
        ("storefront-api-production", "failed", f"{long_file}:1: Application x: bad", ""),
        ("storefront-worker-production", "pending", "would change at 0123456", ""),
    ):
        GitObject.objects.create(
            repository=repository,
            kind="Application",
            name=name,
            file=long_file,
            line=1,
            commit=repository.pinned_commit,
            status=status,
            reason=reason,
            diff={"manifests": {"diff": changed}} if changed else {},
        )
    GitSync.objects.create(
        repository=repository,
        trigger="manual",
        result="failed",
        errors=["clusters/production/eu-west-1/policies.yaml:12: Policy x: rules: bad CEL"],
        finished_at=timezone.now(),
    )
    GitSync.objects.create(
        repository=repository,
        trigger="preview",
        apply=False,
        commit=repository.last_commit,
        result="planned",
        plan=plan,
        finished_at=timezone.now(),
    )
    return repository


def test_every_main_page_fits_a_phone(asgi_server: str, chromium: Any) -> None:
    # given a fleet with long names, and a phone-sized window
    cluster, operation = _fleet()
    repository = _git_repository(cluster.team)
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    pages = [
        "/",
        "/clusters/",
        f"/clusters/{cluster.name}/",
        "/clusters/register/",
        "/clusters/create/",
        "/applications/",
        "/costs/",
        "/costs/chargeback/",
        "/costs/rate-cards/",
        "/policies/",
        "/policies/reports/",
        "/alerts/",
        "/alerts/rules/",
        "/alerts/silences/",
        "/gitops/",
        f"/gitops/{repository.pk}/",
        f"/operations/{operation.pk}/",
    ]
    too_wide = {}
    for path in pages:
        # when each page is opened
        response = page.goto(asgi_server + path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[path] = width
        # then Log out is on screen
        logout = page.get_by_role("button", name="Log out")
        box = logout.bounding_box()
        assert logout.is_visible() and box is not None, path
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], path
        name = path.strip("/").replace("/", "-") or "fleet"
        page.screenshot(path=str(ARTIFACTS / f"phone-{name[:40]}.png"), full_page=True)
    # and no page is wider than the phone (wide tables scroll inside their card)
    assert too_wide == {}
    context.close()


def test_times_show_in_the_viewers_zone_with_utc_on_hover(asgi_server: str, chromium: Any) -> None:
    # given an operation started at 08:00:05 UTC, seen from Berlin (UTC+1 in December)
    _, operation = _fleet()
    Operation.objects.filter(pk=operation.pk).update(
        started_at=datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC)
    )
    context = chromium.new_context(
        timezone_id="Europe/Berlin", viewport={"width": 1366, "height": 800}
    )
    page = context.new_page()
    _log_in(page, asgi_server, "operator-on-call")
    page.goto(f"{asgi_server}/operations/{operation.pk}/")
    started = page.locator('[data-field="started_at"] time')
    # then
    page.wait_for_function(
        "document.querySelector('[data-field=\"started_at\"] time').textContent.indexOf('UTC') < 0"
    )
    assert started.inner_text() == "2026-12-01 09:00:05 CET"
    assert started.get_attribute("title") == "2026-12-01 08:00:05 UTC"
    context.close()


def test_cost_chart_axis_covers_one_day_of_data(asgi_server: str, page: Any) -> None:
    # given one day of cost (two namespaces, the same hour today)
    _fleet()
    _log_in(page, asgi_server, "operator-on-call")
    page.goto(f"{asgi_server}/costs/?group_by=namespace")
    page.wait_for_function("document.getElementById('cost-chart').uplot !== undefined")
    # then the x axis runs from today 00:00 UTC to tomorrow 00:00 UTC, not over years
    scale = page.evaluate(
        "(() => { const x = document.getElementById('cost-chart').uplot.scales.x;"
        " return [x.min, x.max]; })()"
    )
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert scale == [today.timestamp(), (today + timedelta(days=1)).timestamp()]
    label = page.evaluate("document.getElementById('cost-chart').uplot.axes[1].label")
    assert label == "USD / day"
    assert "4.75 USD" in page.locator("main").inner_text()  # 3.25 + 1.50
    page.screenshot(path=str(ARTIFACTS / "cost-one-day.png"), full_page=True)


OVERLAPS = """() => {
  const boxes = [...document.querySelectorAll('form .field')].map(f => {
    const r = f.getBoundingClientRect();
    const inner = [...f.querySelectorAll('input, select, textarea, label, legend')]
      .map(e => e.getBoundingClientRect());
    // a field's controls must stay inside the field
    const spills = inner.some(b => b.width && (b.right > r.right + 1 || b.left < r.left - 1));
    return {r, spills};
  });
  const hits = [];
  boxes.forEach((a, i) => {
    if (a.spills) hits.push('field ' + i + ' spills');
    boxes.forEach((b, j) => {
      if (j <= i) return;
      const x = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
      const y = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
      if (x > 1 && y > 1) hits.push(i + '/' + j);
    });
  });
  return hits;
}"""


def test_report_definition_form_does_not_overlap(asgi_server: str, chromium: Any) -> None:
    _fleet()
    for viewport in ({"width": 1366, "height": 900}, PHONE):
        context = chromium.new_context(viewport=viewport)
        page = context.new_page()
        _log_in(page, asgi_server, "operator-on-call")
        page.goto(f"{asgi_server}/policies/reports/")
        page.get_by_role("heading", name="Schedule a report").wait_for()
        assert page.evaluate(OVERLAPS) == [], viewport
        page.screenshot(
            path=str(ARTIFACTS / f"report-form-{viewport['width']}.png"), full_page=True
        )
        context.close()
