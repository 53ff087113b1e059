"""In a real browser: an update run's page shows its stages and clusters at desktop and
phone width without scrolling sideways, and follows the run live (a cluster's change
reaches the page through the run's Operation websocket and an htmx re-fetch)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.choices import Role
from operations.services import operation_update
from tests.browser.conftest import ARTIFACTS, as_worker
from tests.browser.test_accessibility import _findings
from tests.browser.test_operations_live import _log_in
from tests.factories import add_member, make_team, make_user
from tests.updates.runs_pages_support import make_draft, make_running
from updates.models import UpdateRunCluster

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def _run() -> Any:
    team = make_team(name="platform-engineering")
    user = make_user(username="operator-on-call")
    add_member(team, user, Role.OPERATOR)
    run, operation = make_running(team, user, prefix="production-eu-west-1-primary")
    return run, operation


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_run_page_shows_stages_and_clusters_without_sideways_scroll(
    asgi_server: str, chromium: Any, viewport: dict[str, int]
) -> None:
    run, _ = _run()
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    page.goto(f"{asgi_server}/updates/{run.pk}/")
    page.get_by_role("heading", name="Stage 2: eu").wait_for()
    for name in ("canary-1", "eu-1", "eu-2"):
        expect(
            page.get_by_role("link", name=f"production-eu-west-1-primary-{name}")
        ).to_be_visible()
    expect(page.get_by_role("button", name="Approve stage eu")).to_be_visible()
    expect(
        page.get_by_role("button", name="Skip production-eu-west-1-primary-eu-2")
    ).to_be_visible()
    expect(page.locator("#operation progress")).to_have_js_property("value", 33)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"]
    page.screenshot(path=str(ARTIFACTS / f"update-run-{viewport['width']}.png"), full_page=True)
    for path in ("/updates/", "/updates/strategies/", "/updates/windows/", "/updates/new/"):
        page.goto(asgi_server + path)
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], path
        name = path.strip("/").replace("/", "-")
        page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport['width']}.png"), full_page=True)
    context.close()


def test_run_page_follows_the_run_live(asgi_server: str, page: Any) -> None:
    # given the run's page open
    run, operation = _run()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    page.goto(f"{asgi_server}/updates/{run.pk}/")
    row = page.locator('tr[data-cluster="production-eu-west-1-primary-eu-2"]')
    expect(row).to_contain_text("Pending")
    page.wait_for_timeout(500)  # let the socket connect and take its snapshot

    # when the engine changes a cluster and reports progress on the run's operation
    def engine_step() -> None:
        UpdateRunCluster.objects.filter(
            run=run, cluster_name="production-eu-west-1-primary-eu-2"
        ).update(state="changing", message="control plane upgrading")
        operation_update(operation_id=operation.pk, progress=50, message="eu: 1 changing")

    as_worker(engine_step)
    # then the bar, the message and the cluster's row follow without a reload
    expect(page.locator("#operation progress")).to_have_js_property("value", 50, timeout=10_000)
    expect(row).to_contain_text("Changing", timeout=10_000)
    expect(row).to_contain_text("control plane upgrading")
    assert page.locator("#operation [data-field=message]").inner_text() == "eu: 1 changing"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_update_pages_have_no_serious_accessibility_findings(
    asgi_server: str, chromium: Any, scheme: str
) -> None:
    run, _ = _run()
    draft = make_draft(run.team, run.created_by, prefix="draft")
    # CSP bypassed in this context only, so that axe can be added (test_accessibility.py)
    context = chromium.new_context(bypass_csp=True, color_scheme=scheme, viewport=DESKTOP)
    page = context.new_page()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    found = {}
    for path in (
        f"/updates/{run.pk}/",
        f"/updates/{draft.pk}/",
        "/updates/",
        "/updates/strategies/",
        "/updates/strategies/new/",
        "/updates/windows/",
        "/updates/windows/new/",
        "/updates/new/",
    ):
        page.goto(asgi_server + path)
        page.wait_for_load_state("load")
        findings = _findings(page)
        if findings:
            found[path] = findings
    assert found == {}
    context.close()


def test_new_run_form_shows_the_chosen_kinds_parameters(asgi_server: str, page: Any) -> None:
    _run()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    page.goto(f"{asgi_server}/updates/new/")
    expect(page.get_by_role("textbox", name="Kubernetes version")).to_be_visible()
    expect(page.get_by_label("Node image")).to_be_hidden()
    page.get_by_role("radio", name="Node pool (image or instance type)").check()
    expect(page.get_by_label("Node image")).to_be_visible()
    expect(page.get_by_label("Kubelet version")).to_be_visible()
    expect(page.get_by_role("textbox", name="Kubernetes version")).to_be_hidden()
