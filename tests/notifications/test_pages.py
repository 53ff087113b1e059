"""The channel and delivery pages: what each role sees and may do, secrets never shown."""

from __future__ import annotations

import pytest

from accounts.models import Team
from audit.models import AuditEvent
from notifications.choices import DeliveryState
from notifications.models import Channel, Delivery
from notifications.services import channel_secrets, dispatch
from tests.factories import Member
from tests.notifications.helpers import HMAC_SECRET, grouped, make_channel

pytestmark = pytest.mark.django_db
SECRET_URL = "http://127.0.0.1:9/hooks/PAGE-TOKEN"


def test_an_admin_adds_a_channel_from_the_page(owner: Member) -> None:
    response = owner.page.post(
        "/notifications/",
        {
            "team": "payments",
            "name": "oncall",
            "kind": "webhook",
            "enabled": "on",
            "min_severity": "warning",
            "url": SECRET_URL,
            "hmac_secret": HMAC_SECRET,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="oncall")
    assert channel_secrets(channel)["url"] == SECRET_URL
    page = owner.page.get("/notifications/").content.decode()
    assert "oncall" in page and "http://127.0.0.1:9/…" in page
    assert "PAGE-TOKEN" not in page and HMAC_SECRET not in page
    # the edit page leaves the secrets out too, and an empty secret keeps the stored one
    edit = owner.page.get(f"/notifications/channels/{channel.pk}/").content.decode()
    assert "PAGE-TOKEN" not in edit and HMAC_SECRET not in edit
    response = owner.page.post(
        f"/notifications/channels/{channel.pk}/",
        {"name": "oncall", "min_severity": "critical", "url": "", "hmac_secret": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert channel.min_severity == "critical"
    assert channel.enabled is False  # the box was left unticked
    assert channel_secrets(channel) == {"url": SECRET_URL, "hmac_secret": HMAC_SECRET}


def test_a_refused_url_is_explained_on_the_page(owner: Member) -> None:
    response = owner.page.post(
        "/notifications/",
        {
            "team": "payments",
            "name": "metadata",
            "kind": "slack",
            "min_severity": "info",
            "url": "http://169.254.169.254/latest/",
        },
    )
    assert response.status_code == 200
    assert "link-local" in response.content.decode()
    assert not Channel.objects.exists()


def test_what_each_role_may_press(
    team: Team, owner: Member, operator: Member, viewer: Member
) -> None:
    channel = make_channel(team, "email", recipients=["oncall@payments.example"])
    viewer_page = viewer.page.get("/notifications/").content.decode()
    assert "oncall@payments.example" in viewer_page
    assert "Send test" not in viewer_page and "Add a channel" not in viewer_page
    assert viewer.page.get(f"/notifications/channels/{channel.pk}/").status_code == 403
    assert viewer.page.post(f"/notifications/channels/{channel.pk}/test/").status_code == 403
    operator_page = operator.page.get("/notifications/").content.decode()
    assert "Send test" in operator_page and "Add a channel" not in operator_page
    assert operator.page.post(f"/notifications/channels/{channel.pk}/delete/").status_code == 403
    response = operator.page.post(f"/notifications/channels/{channel.pk}/test/")
    assert response.status_code == 302
    assert Delivery.objects.get().test is True
    assert "Add a channel" in owner.page.get("/notifications/").content.decode()
    assert owner.page.post(f"/notifications/channels/{channel.pk}/delete/").status_code == 302
    assert not Channel.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied").count() >= 3


def test_dead_letters_page_retries(
    team: Team, operator: Member, viewer: Member, outsider: Member
) -> None:
    make_channel(team, "email", recipients=["oncall@payments.example"])
    dispatch(grouped(team))
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.DEAD, attempts=6, last_error="127.0.0.1 answered HTTP 500."
    )
    page = viewer.page.get("/notifications/deliveries/?state=dead").content.decode()
    assert "2 clusters unreachable in eu" in page and "answered HTTP 500" in page
    assert "Retry" not in page
    assert (
        "clusters unreachable"
        not in outsider.page.get("/notifications/deliveries/").content.decode()
    )
    assert outsider.page.post(f"/notifications/deliveries/{delivery.pk}/retry/").status_code == 404
    assert "Retry" in operator.page.get("/notifications/deliveries/?state=dead").content.decode()
    assert operator.page.post(f"/notifications/deliveries/{delivery.pk}/retry/").status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING
    assert delivery.attempts == 0
