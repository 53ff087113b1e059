"""In a real browser: register a cluster through the wizard and watch its status arrive live."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from accounts.choices import Role
from clusters.models import Cluster
from clusters.services.collection import clusters_collect
from localkube.env import LocalCluster
from tests.browser.conftest import ARTIFACTS, as_worker
from tests.browser.test_operations_live import _log_in
from tests.factories import add_member, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.kube, pytest.mark.django_db(transaction=True)]


def test_register_through_the_wizard_and_see_ready_arrive_live(
    asgi_server: str, page: Any, kube_cluster: LocalCluster
) -> None:
    # given an operator of team "platform"
    add_member(make_team(name="platform"), make_user(username="ops"), Role.OPERATOR)
    _log_in(page, asgi_server, "ops")
    # when they register a cluster by pasting its kubeconfig and choosing the context
    page.get_by_role("link", name="Clusters").click()
    page.get_by_role("link", name="Register a cluster").first.click()
    page.get_by_label("Name", exact=True).fill("browser-1")
    page.get_by_label("Team").select_option("platform")
    page.get_by_label("Region").fill("local")
    page.get_by_label("Labels", exact=True).fill("env=prod")
    page.get_by_label("Kubeconfig", exact=True).fill(
        yaml.safe_dump(kube_cluster.control_plane.kubeconfig())
    )
    page.get_by_role("button", name="Load contexts").click()
    page.get_by_label("Context").select_option("member-1")
    page.screenshot(path=str(ARTIFACTS / "cluster-register.png"), full_page=True)
    page.get_by_role("button", name="Register").click()
    # then the cluster page opens, Pending (neutral) until the first collection answers
    page.get_by_role("heading", name="browser-1").wait_for()
    assert page.locator("#cluster [data-field=status]").inner_text() == "Pending"
    page.wait_for_timeout(500)  # let the socket connect
    # when the collection runs
    as_worker(clusters_collect, cluster_ids=[Cluster.objects.get(name="browser-1").pk])
    # then Ready shows without a reload
    page.wait_for_selector("#cluster[data-status=ready]", timeout=10_000)
    assert page.locator("#cluster [data-field=status]").inner_text() == "Ready"
    page.reload()
    page.get_by_role("cell", name="member-1-node-0").wait_for()
    page.wait_for_selector("#health-chart[data-points='1']", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "cluster-detail.png"), full_page=True)
    page.get_by_role("link", name="Clusters").first.click()
    page.get_by_role("link", name="browser-1").wait_for()
    page.screenshot(path=str(ARTIFACTS / "cluster-list.png"), full_page=True)


def test_cost_explorer_in_the_browser(asgi_server: str, page: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from costs.services import cost_compute
    from tests.cost.test_costs import _fleet

    team = make_team(name="payments")
    _fleet(team, name="eu-1")
    now = timezone.now()
    for days in range(3):
        cost_compute(hour=now - timedelta(days=days))
    add_member(team, make_user(username="ops"), Role.VIEWER)
    _log_in(page, asgi_server, "ops")
    page.get_by_role("link", name="Cost").first.click()
    page.get_by_role("heading", name="Cost").wait_for()
    page.get_by_label("Group by").select_option("namespace")
    page.get_by_label("Period").select_option("7d")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("cell", name="batch").wait_for()
    page.wait_for_selector("#cost-chart .uplot", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "cost-explorer.png"), full_page=True)
    # the cluster page's cost card comes from the costs app (htmx), as compliance does
    page.goto(f"{asgi_server}/clusters/eu-1/")
    card = page.locator("#cost")
    card.get_by_role("heading", name="Cost this month").wait_for()
    card.get_by_role("cell", name="batch").wait_for()
    assert card.get_by_text("Change pricing").count() == 0  # a viewer cannot
    page.screenshot(path=str(ARTIFACTS / "cluster-cost-card.png"), full_page=True)
