"""In a real browser: the placement editor's what-if preview follows the typing, explains
each excluded cluster, and saving stores the placement."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.choices import Role
from applications.models import Application
from applications.services import application_create
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_operations_live import _log_in
from tests.factories import add_member, make_cluster, make_team, make_user
from tests.placement.test_pages import MANIFESTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
GIB = 2**30


def test_the_what_if_preview_follows_the_placement_being_typed(asgi_server: str, page: Any) -> None:
    team = make_team(name="shop")
    add_member(team, make_user(username="ops"), Role.OPERATOR)
    capacity = {"allocatable_cpu_millis": 4000, "allocatable_memory_bytes": 8 * GIB}
    for name, env in (("eu-1", "prod"), ("eu-2", "prod"), ("us-1", "dev")):
        make_cluster(team=team, name=name, status="ready", labels={"env": env}, **capacity)
    application_create(actor=None, team=team, name="web", namespace="web", manifests=MANIFESTS)
    _log_in(page, asgi_server, "ops")
    page.goto(f"{asgi_server}/applications/web/placement/")
    # on load: every cluster is feasible
    page.wait_for_selector("#preview >> text=Would run on 3 clusters")
    editor = page.get_by_label("Placement", exact=True)
    editor.fill('{"selector": "env=prod", "number_of_clusters": 1}')
    editor.press("End")  # a keystroke, as typing ends
    page.wait_for_selector("#preview >> text=Would run on 1 cluster")
    preview = page.locator("#preview").inner_text()
    assert "LabelSelector" in preview and "us-1" in preview
    assert "enough clusters (1)" in preview  # eu-2: feasible, not selected
    page.screenshot(path=str(ARTIFACTS / "placement-editor.png"), full_page=True)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{asgi_server}/applications/web/")
    assert "Saved." in page.locator(".messages").inner_text()
    assert Application.objects.get(name="web").placement.spec == {
        "selector": "env=prod",
        "number_of_clusters": 1,
    }
    page.screenshot(path=str(ARTIFACTS / "application-detail.png"), full_page=True)
