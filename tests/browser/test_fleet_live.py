"""In a real browser: a cluster going Unreachable shows on an open overview, no reload."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.choices import Role
from clusters.choices import ClusterStatus
from clusters.health import Observation
from clusters.services.collection import cluster_record_observation
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_operations_live import _log_in
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_unreachable_cluster_arrives_live_on_the_overview(asgi_server: str, page: Any) -> None:
    team = make_team(name="platform")
    add_member(team, make_user(username="ops"), Role.VIEWER)
    cluster = make_cluster(
        team=team,
        name="edge-7",
        status="ready",
        provider="edge",
        region="store-7",
        node_count=1,
        nodes_ready=1,
        last_seen_at=timezone.now(),  # probed Ready before (a never-seen one shows Pending)
    )
    make_cluster(
        team=team,
        name="eu-1",
        status="ready",
        provider="aws",
        region="eu-west-1",
        node_count=3,
        nodes_ready=3,
        last_seen_at=timezone.now(),
    )
    _log_in(page, asgi_server, "ops")
    page.wait_for_selector('[data-count="ready"]')
    assert page.locator('[data-count="ready"]').inner_text() == "2"
    page.wait_for_timeout(700)  # the socket connects
    page.screenshot(path=str(ARTIFACTS / "fleet-overview.png"), full_page=True)

    def probes_fail() -> None:
        # As a collection worker would, outside the browser's event loop.
        for _ in range(3):
            cluster_record_observation(
                cluster_id=cluster.pk,
                at=timezone.now(),
                inventory=None,
                observation=Observation(ClusterStatus.UNREACHABLE, "ProbeFailed", "no answer"),
            )

    worker = threading.Thread(target=probes_fail)
    worker.start()
    worker.join(timeout=30)
    # a locator, not wait_for_function (an eval, which the page's CSP refuses)
    expect(page.locator('[data-count="unreachable"]')).to_have_text("1", timeout=5_000)
    assert page.locator('[data-count="ready"]').inner_text() == "1"
    # and the panels are re-fetched: the timeline and the needs-attention table show it
    page.wait_for_selector("#fleet[data-refreshed]", timeout=5_000)
    events = page.locator("section", has=page.get_by_role("heading", name="Recent events"))
    assert "edge-7" in events.inner_text() and "Unreachable" in events.inner_text()
    page.screenshot(path=str(ARTIFACTS / "fleet-overview-unreachable.png"), full_page=True)
