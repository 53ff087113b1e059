"""The notification pages in a real browser: axe finds nothing serious in either theme,
and each page fits a phone (issue 24; the checks of test_accessibility and test_layout)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accounts.choices import Role
from notifications.choices import DeliveryState
from notifications.models import Delivery
from notifications.services import ChannelSpec, channel_save, dispatch
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_accessibility import _findings
from tests.browser.test_layout import PHONE
from tests.browser.test_operations_live import _log_in
from tests.factories import add_member, make_team, make_user
from tests.notifications.helpers import HMAC_SECRET, grouped

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _channels() -> dict[str, str]:
    team = make_team(name="platform-engineering")
    add_member(team, make_user(username="operator-on-call"), Role.ADMIN)
    email = channel_save(
        team=team,
        spec=ChannelSpec(
            name="platform-oncall-email-primary",
            kind="email",
            recipients=["platform-oncall-primary@very-long-domain-name.example.com"],
        ),
        actor=None,
    )
    channel_save(
        team=team,
        spec=ChannelSpec(
            name="signed-webhook",
            kind="webhook",
            url="http://127.0.0.1:9/hooks/a-rather-long-path/with/a-token-inside",
            hmac_secret=HMAC_SECRET,
            min_severity="warning",
        ),
        actor=None,
    )
    dispatch(grouped(team, count=40))
    Delivery.objects.filter(channel=email).update(
        state=DeliveryState.DEAD, attempts=6, last_error="The mail server answered 451."
    )
    return {
        "channels": "/notifications/",
        "channel": f"/notifications/channels/{email.pk}/",
        "deliveries": "/notifications/deliveries/",
        "dead letters": "/notifications/deliveries/?state=dead",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_notification_pages_have_no_serious_accessibility_findings(
    asgi_server: str, chromium: Any, scheme: str
) -> None:
    pages = _channels()
    context = chromium.new_context(
        bypass_csp=True, color_scheme=scheme, viewport={"width": 1366, "height": 800}
    )
    page = context.new_page()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    failures: dict[str, list[dict[str, Any]]] = {}
    for name, path in pages.items():
        response = page.goto(asgi_server + path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        if found := _findings(page):
            failures[name] = found
        page.screenshot(
            path=str(ARTIFACTS / f"a11y-{scheme}-{name.replace(' ', '-')}.png"), full_page=True
        )
    context.close()
    assert failures == {}, json.dumps(failures, indent=1)


def test_notification_pages_fit_a_phone(asgi_server: str, chromium: Any) -> None:
    pages = _channels()
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    too_wide = {}
    for name, path in pages.items():
        response = page.goto(asgi_server + path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[name] = width
        page.screenshot(path=str(ARTIFACTS / f"phone-{name.replace(' ', '-')}.png"), full_page=True)
    context.close()
    assert too_wide == {}
