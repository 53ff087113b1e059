"""In a real browser: create a local cluster through the form and follow its provisioning
live to the end, with a real Celery worker doing the work."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.choices import Role
from clusters.providers.local import stop_all
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_operations_live import _log_in
from tests.factories import add_member, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.kube, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def local_clusters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[Path]:
    """Set before the worker starts, so the worker builds clusters here."""
    root = tmp_path / "local-clusters"
    monkeypatch.setenv("KEELSON_LOCAL_CLUSTERS_DIR", str(root))
    settings.KEELSON_LOCAL_CLUSTERS_DIR = str(root)
    yield root
    stop_all()


def test_create_a_local_cluster_and_follow_the_progress_bar(
    local_clusters: Path, celery_worker: subprocess.Popen[bytes], asgi_server: str, page: Any
) -> None:
    add_member(make_team(name="platform"), make_user(username="ops"), Role.OPERATOR)
    _log_in(page, asgi_server, "ops")
    page.goto(f"{asgi_server}/clusters/create/")
    page.get_by_label("Name", exact=True).fill("browser-local")
    page.get_by_label("Team").select_option("platform")
    page.get_by_label("Region").fill("lab")
    page.get_by_label("Node pools").fill("workers m5.large 2")
    page.screenshot(path=str(ARTIFACTS / "cluster-create.png"), full_page=True)
    page.get_by_role("button", name="Create").click()
    # the operation page follows the work live, to the end
    page.wait_for_selector("#operation progress")
    page.wait_for_selector("#operation[data-state=succeeded]", timeout=120_000)
    assert page.locator("#operation progress").get_attribute("value") == "100"
    log = page.locator("[data-field=log]").inner_text()
    assert "2 of 2 nodes Ready" in log
    page.screenshot(path=str(ARTIFACTS / "operation-provision.png"), full_page=True)
    page.goto(f"{asgi_server}/clusters/browser-local/")
    page.get_by_role("heading", name="Lifecycle").wait_for()
    assert page.locator("#cluster [data-field=status]").inner_text() == "Ready"
