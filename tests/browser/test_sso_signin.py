"""Issue 25 in Debian's chromium: sign in through the identity provider's own login page
(oidc-provider on loopback), land with the mapped team roles, administer the team at phone
width, and log out of both; axe finds nothing serious on the new pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from accounts.choices import Role
from accounts.models import GroupMapping, Membership
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_accessibility import _findings
from tests.factories import make_team
from tests.sso.provider import CLIENT_ID, CLIENT_SECRET, running_provider
from tests.support import free_port

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def provider_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The provider's port, chosen before the web server starts with its settings."""
    port = free_port()
    monkeypatch.setenv("KEELSON_OIDC_ISSUER", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KEELSON_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("KEELSON_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    return port


@pytest.fixture
def provider(provider_port: int, asgi_server: str, tmp_path: Path) -> Iterator[Any]:
    with running_provider(tmp_path, app_base=asgi_server, port=provider_port) as running:
        yield running


def test_sign_in_through_the_providers_login_page(
    provider: Any, asgi_server: str, chromium: Any
) -> None:
    payments = make_team(name="payments")
    GroupMapping.objects.create(group="payments-admins", team=payments, role=Role.ADMIN)
    provider.set_users({"alice": {"email": "alice@example.org", "groups": ["payments-admins"]}})
    context = chromium.new_context(bypass_csp=True, viewport={"width": 390, "height": 844})
    page = context.new_page()

    page.goto(f"{asgi_server}/accounts/teams/")
    assert not _findings(page)
    page.get_by_role("link", name="Sign in with single sign-on").click()
    # The provider's own sign-in page (its development interactions: any password).
    page.locator("input[name=login]").fill("alice")
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("heading", name="Teams").wait_for()
    assert page.url == f"{asgi_server}/accounts/teams/"
    alice = get_user_model().objects.get(username="alice")
    assert Membership.objects.get(team=payments, user=alice).role == Role.ADMIN

    page.get_by_role("link", name="payments").click()
    page.get_by_role("heading", name="payments").wait_for()
    assert page.get_by_text("set by group mapping").is_visible()
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide, "the team page scrolls sideways at phone width"
    assert not _findings(page)
    page.screenshot(path=str(ARTIFACTS / "sso-team-phone.png"), full_page=True)

    alice.is_superuser = True
    alice.save()
    page.goto(f"{asgi_server}/accounts/group-mappings/")
    page.get_by_role("heading", name="Group mapping").wait_for()
    assert page.get_by_text("payments-admins", exact=True).is_visible()
    assert not _findings(page)

    # Logging out ends the provider's session too: its confirmation, then Keelson's login.
    page.get_by_role("button", name="Log out").click()
    page.locator("button[autofocus], button[type=submit]").first.click()
    page.get_by_role("heading", name="Log in to Keelson").wait_for()
    context.close()
