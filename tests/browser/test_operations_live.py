"""In a real browser: log in, see the fleet page, follow an operation's progress live."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from operations.choices import OperationState
from operations.services import (
    operation_claim,
    operation_create,
    operation_finish,
    operation_update,
)
from tests.browser.conftest import ARTIFACTS, as_worker
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}")
    page.get_by_role("button", name="Log in").click()


def test_log_in_and_see_the_empty_fleet(asgi_server: str, page: Any) -> None:
    make_user(username="ops")
    _log_in(page, asgi_server, "ops")
    page.get_by_role("heading", name="Register your first cluster").wait_for()
    page.screenshot(path=str(ARTIFACTS / "fleet-empty.png"), full_page=True)
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in to Keelson").wait_for()


def test_operation_progress_bar_follows_the_work_live(asgi_server: str, page: Any) -> None:
    # given an operation the user started, open in the browser
    user = make_user(username="ops")
    operation = operation_create(kind="cluster.provision", created_by=user)
    operation_claim(operation_id=operation.pk)
    _log_in(page, asgi_server, "ops")
    page.goto(f"{asgi_server}/operations/{operation.pk}/")
    # Locators, not wait_for_function: that evaluates a string in the page, which the
    # Content-Security-Policy (no 'unsafe-eval') refuses.
    page.locator("#operation progress").wait_for(state="attached")
    page.wait_for_timeout(500)  # let the socket connect and take its snapshot
    # when the worker makes progress
    as_worker(
        operation_update, operation_id=operation.pk, progress=60, message="nodes joining", log="3/5"
    )
    # then the page shows it without a reload
    expect(page.locator("#operation progress")).to_have_js_property("value", 60, timeout=10_000)
    assert page.locator("[data-field=message]").inner_text() == "nodes joining"
    # when it ends
    as_worker(
        operation_finish, operation_id=operation.pk, state=OperationState.SUCCEEDED, message="ready"
    )
    page.wait_for_selector("#operation[data-state=succeeded]", timeout=10_000)
    assert page.locator("#operation progress").get_attribute("value") is not None
    assert re.search(r"\b100\b", page.locator("[data-field=progress]").inner_text())
    assert "3/5" in page.locator("[data-field=log]").inner_text()
    page.screenshot(path=str(ARTIFACTS / "operation-succeeded.png"), full_page=True)
