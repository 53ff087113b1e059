"""`/api/v1/notification-channels/` and `/api/v1/notification-deliveries/`: who may do
what, secrets write-only, every write audited, bad input refused with nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accounts.models import Team
from audit.models import AuditEvent
from notifications.choices import DeliveryState
from notifications.models import Channel, Delivery
from notifications.services import channel_secrets, dispatch
from tests.factories import Member
from tests.notifications.helpers import HMAC_SECRET, grouped, make_channel

pytestmark = pytest.mark.django_db
CHANNELS = "/api/v1/notification-channels/"
DELIVERIES = "/api/v1/notification-deliveries/"
SLACK_URL = "https://hooks.slack.example/services/T000/B000/TOKENTOKENTOKEN"


def webhook_body(**extra: Any) -> dict[str, Any]:
    return {
        "team_name": "payments",
        "name": "oncall-hook",
        "kind": "webhook",
        "url": "http://127.0.0.1:9/hooks/TOKEN-IN-PATH",
        "hmac_secret": HMAC_SECRET,
        **extra,
    }


def test_an_admin_adds_a_webhook_whose_secrets_are_never_shown(
    owner: Member, viewer: Member
) -> None:
    # when the team's admin adds a signed webhook
    response = owner.api.post(CHANNELS, webhook_body(min_severity="warning"), format="json")
    # then it is stored, its secrets encrypted
    assert response.status_code == 201, response.content
    channel = Channel.objects.get(name="oncall-hook")
    assert channel_secrets(channel) == {
        "url": "http://127.0.0.1:9/hooks/TOKEN-IN-PATH",
        "hmac_secret": HMAC_SECRET,
    }
    assert "TOKEN-IN-PATH" not in channel.ciphertext + json.dumps(channel.config)
    # and no answer, to the admin or a viewer, carries them
    for member in (owner, viewer):
        for answer in (
            response,
            member.api.get(CHANNELS),
            member.api.get(f"{CHANNELS}{channel.pk}/"),
        ):
            text = answer.content.decode()
            assert "TOKEN-IN-PATH" not in text and HMAC_SECRET not in text, text
    shown = owner.api.get(f"{CHANNELS}{channel.pk}/").json()
    assert shown["url_hint"] == "http://127.0.0.1:9/…"
    assert shown["secrets"] == ["hmac_secret", "url"]
    assert shown["min_severity"] == "warning"
    # and the creation is audited without the secrets
    event = AuditEvent.objects.get(action="notification.channel.create")
    assert event.actor_id == owner.user.pk
    assert event.detail["replaced"] == ["hmac_secret", "url"]
    assert "TOKEN" not in json.dumps(event.detail)


def test_a_change_without_the_secrets_keeps_them(owner: Member) -> None:
    channel_id = owner.api.post(CHANNELS, webhook_body(), format="json").json()["id"]
    response = owner.api.patch(f"{CHANNELS}{channel_id}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    channel = Channel.objects.get(pk=channel_id)
    assert channel.enabled is False
    assert channel_secrets(channel)["hmac_secret"] == HMAC_SECRET
    event = AuditEvent.objects.get(action="notification.channel.update")
    assert event.detail["changed"] == ["enabled"]
    assert event.detail["replaced"] == []
    # a new secret replaces the old one
    owner.api.patch(f"{CHANNELS}{channel_id}/", {"hmac_secret": "x" * 40}, format="json")
    assert channel_secrets(Channel.objects.get(pk=channel_id))["hmac_secret"] == "x" * 40


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://user@127.0.0.1:9/x"}, "url"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"hmac_secret": "short"}, "hmac_secret"),
        ({"kind": "email", "url": None, "hmac_secret": None}, "recipients"),
        ({"recipients": ["ops@payments.example"]}, "recipients"),
        ({"name": "Not A Slug"}, "name"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    owner: Member, body: dict[str, Any], field: str
) -> None:
    request = {k: v for k, v in {**webhook_body(), **body}.items() if v is not None}
    response = owner.api.post(CHANNELS, request, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not Channel.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="notification.").exists()


def test_a_kind_cannot_change(owner: Member) -> None:
    channel_id = owner.api.post(CHANNELS, webhook_body(), format="json").json()["id"]
    response = owner.api.patch(f"{CHANNELS}{channel_id}/", {"kind": "slack"}, format="json")
    assert response.status_code == 400
    assert Channel.objects.get(pk=channel_id).kind == "webhook"


def test_operators_send_tests_but_do_not_define_channels(
    team: Team, owner: Member, operator: Member, viewer: Member
) -> None:
    # an operator may not add a channel
    assert operator.api.post(CHANNELS, webhook_body(), format="json").status_code == 403
    channel = make_channel(team, "email", recipients=["oncall@payments.example"])
    assert (
        operator.api.patch(
            f"{CHANNELS}{channel.pk}/", {"enabled": False}, format="json"
        ).status_code
        == 403
    )
    assert operator.api.delete(f"{CHANNELS}{channel.pk}/").status_code == 403
    # a viewer may not send a test
    assert viewer.api.post(f"{CHANNELS}{channel.pk}/test/").status_code == 403
    # an operator may
    response = operator.api.post(f"{CHANNELS}{channel.pk}/test/")
    assert response.status_code == 202, response.content
    delivery = Delivery.objects.get(pk=response.json()["id"])
    assert delivery.test is True
    assert delivery.state == DeliveryState.PENDING
    assert delivery.title == "Test notification"
    assert AuditEvent.objects.filter(
        action="notification.channel.test", actor_id=operator.user.pk
    ).exists()
    # the admin deletes the channel
    assert owner.api.delete(f"{CHANNELS}{channel.pk}/").status_code == 204
    assert AuditEvent.objects.filter(action="notification.channel.delete").exists()
    assert not Channel.objects.exists()


def test_dead_letters_are_listed_and_retried(
    team: Team, operator: Member, viewer: Member, outsider: Member
) -> None:
    channel = make_channel(team, "email", recipients=["oncall@payments.example"])
    dispatch(grouped(team))
    dispatch(grouped(team, status="resolved"))
    dead, pending = Delivery.objects.order_by("pk")
    Delivery.objects.filter(pk=dead.pk).update(state=DeliveryState.DEAD, attempts=6, last_error="x")
    # viewers read the dead letters
    listed = viewer.api.get(f"{DELIVERIES}dead-letters/").json()["results"]
    assert [d["id"] for d in listed] == [dead.pk]
    assert listed[0]["channel_name"] == channel.name
    assert [d["id"] for d in viewer.api.get(f"{DELIVERIES}?state=pending").json()["results"]] == [
        pending.pk
    ]
    # another team sees none of them
    assert outsider.api.get(DELIVERIES).json()["results"] == []
    assert outsider.api.post(f"{DELIVERIES}{dead.pk}/retry/").status_code == 404
    # a viewer may not retry; an operator may, once
    assert viewer.api.post(f"{DELIVERIES}{dead.pk}/retry/").status_code == 403
    response = operator.api.post(f"{DELIVERIES}{dead.pk}/retry/")
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "pending"
    assert response.json()["attempts"] == 0
    assert operator.api.post(f"{DELIVERIES}{dead.pk}/retry/").status_code == 400
    assert AuditEvent.objects.filter(action="notification.delivery.retry").count() == 1


def test_the_delivery_list_stays_within_a_query_budget(
    team: Team, viewer: Member, django_assert_max_num_queries: Any
) -> None:
    make_channel(team, "email", recipients=["oncall@payments.example"])
    make_channel(team, "email", name="second", recipients=["second@payments.example"])
    for _ in range(10):
        dispatch(grouped(team))
    with django_assert_max_num_queries(8):
        results = viewer.api.get(DELIVERIES).json()["results"]
    assert len(results) == 20
