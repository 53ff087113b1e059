"""Dispatching and sending notifications to real receivers on loopback: a webhook server
checking the HMAC signature, Slack and Teams payloads, e-mail to aiosmtpd, retries then a
dead letter, and Alertmanager's v2 API (notifications/services.py, delivery.py)."""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Team
from notifications.choices import DeliveryState
from notifications.delivery import deliveries_purge, deliveries_requeue_due, delivery_attempt
from notifications.models import Channel, Delivery
from notifications.payloads import resolved, signature_valid
from notifications.services import delivery_retry, dispatch
from tests.notifications.conftest import Alertmanager, Mailbox, Receiver
from tests.notifications.helpers import HMAC_SECRET, grouped, make_channel, make_due

pytestmark = pytest.mark.django_db


def only_delivery() -> Delivery:
    (delivery,) = Delivery.objects.all()
    return delivery


def test_dispatch_queues_one_delivery_per_matching_enabled_channel(
    team: Team, receiver: Receiver
) -> None:
    # given four channels: two match, one is disabled, one wants critical only
    make_channel(team, "slack", url=f"{receiver.url}/slack")
    make_channel(team, "email", recipients=["oncall@payments.example"])
    make_channel(team, "teams", url=f"{receiver.url}/teams", enabled=False)
    make_channel(
        team,
        "webhook",
        url=f"{receiver.url}/hook",
        hmac_secret=HMAC_SECRET,
        min_severity="critical",
    )
    # when a warning is dispatched
    queued = dispatch(grouped(team, severity="warning"))
    # then the slack and e-mail channels get a delivery each
    assert queued == 2
    assert sorted(Delivery.objects.values_list("channel__name", flat=True)) == ["email", "slack"]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}
    # and a critical one reaches the webhook too
    assert dispatch(grouped(team, severity="critical")) == 3


def test_dispatch_to_named_channels_only(team: Team, receiver: Receiver) -> None:
    slack = make_channel(team, "slack", url=f"{receiver.url}/slack")
    make_channel(team, "email", recipients=["oncall@payments.example"])
    notification = grouped(team)
    from dataclasses import replace

    assert dispatch(replace(notification, channel_ids=(slack.pk,))) == 1
    assert only_delivery().channel_id == slack.pk


def test_webhook_body_is_signed_with_the_channels_secret(team: Team, receiver: Receiver) -> None:
    # given a generic webhook channel
    make_channel(team, "webhook", url=f"{receiver.url}/hooks/abc", hmac_secret=HMAC_SECRET)
    dispatch(grouped(team, count=3))
    delivery = only_delivery()
    # when the delivery is sent
    assert delivery_attempt(delivery_id=delivery.pk) == DeliveryState.DELIVERED
    # then the receiver got the JSON, signed over its exact bytes
    (request,) = receiver.requests
    assert request.path == "/hooks/abc"
    assert request.headers["Content-Type"] == "application/json"
    signature = request.headers["X-Keelson-Signature"]
    assert signature.startswith("sha256=")
    assert signature_valid(HMAC_SECRET, request.body, signature)
    assert not signature_valid("another-secret-of-32-characters!", request.body, signature)
    body = request.json()
    assert request.headers["X-Keelson-Timestamp"] == str(body["timestamp"])
    assert abs(body["timestamp"] - time.time()) < 60
    assert request.headers["X-Keelson-Delivery"] == str(delivery.pk)
    assert body["team"] == "payments"
    assert [a["labels"]["cluster"] for a in body["alerts"]] == ["eu-0", "eu-1", "eu-2"]
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert delivery.attempts == 1
    assert delivery.response_status == 200


def test_slack_and_teams_receive_their_payload_shapes(team: Team, receiver: Receiver) -> None:
    make_channel(team, "slack", url=f"{receiver.url}/services/T0/B0/XXXX")
    make_channel(team, "teams", url=f"{receiver.url}/webhookb2/abc")
    dispatch(grouped(team))
    for delivery in Delivery.objects.all():
        assert delivery_attempt(delivery_id=delivery.pk) == DeliveryState.DELIVERED
    by_path = {r.path: r.json() for r in receiver.requests}
    slack = by_path["/services/T0/B0/XXXX"]
    assert slack["text"].startswith("[Keelson] FIRING (2) critical")
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section"]
    assert "X-Keelson-Signature" not in receiver.requests[0].headers
    teams = by_path["/webhookb2/abc"]
    assert teams["type"] == "message"
    assert teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert teams["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_email_has_a_plain_text_and_an_html_part_listing_the_alerts(
    team: Team, smtp: Mailbox
) -> None:
    make_channel(team, "email", recipients=["oncall@payments.example", "lead@payments.example"])
    dispatch(grouped(team, count=3))
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DELIVERED
    ((recipients, message),) = smtp.messages
    assert recipients == ["oncall@payments.example", "lead@payments.example"]
    assert message["Subject"] == "[Keelson] FIRING (3) critical: 3 clusters unreachable in eu"
    assert message["From"] == "keelson@keelson.test"
    parts = {
        part.get_content_type(): bytes(part.get_payload(decode=True)).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert set(parts) == {"text/plain", "text/html"}
    for i in range(3):
        assert f"eu-{i}: eu-{i} has not answered for 5 minutes" in parts["text/plain"]
        assert f'<a href="https://keelson.example/clusters/eu-{i}/">' in parts["text/html"]
    assert "3 alerts:" in parts["text/plain"]


def test_a_failing_receiver_is_retried_then_dead_lettered(
    team: Team, receiver: Receiver, settings: Any
) -> None:
    # given a receiver that answers 500, and three attempts per delivery
    settings.KEELSON_NOTIFY_MAX_ATTEMPTS = 3
    settings.KEELSON_NOTIFY_BACKOFF_SECONDS = 10
    receiver.answers = [500, 500, 500]
    make_channel(team, "slack", url=f"{receiver.url}/services/T0/B0/SECRET")
    dispatch(grouped(team))
    delivery = only_delivery()
    # when the first attempt fails, the next waits for the backoff (5 to 10 s)
    assert delivery_attempt(delivery_id=delivery.pk) == DeliveryState.PENDING
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert delivery.last_error == "127.0.0.1 answered HTTP 500."
    assert delivery.next_attempt_at is not None
    assert 4 <= (delivery.next_attempt_at - delivery.created_at).total_seconds() <= 11
    # an attempt before it is due does nothing
    assert delivery_attempt(delivery_id=delivery.pk) == DeliveryState.PENDING
    assert len(receiver.requests) == 1
    make_due(delivery)
    assert delivery_attempt(delivery_id=delivery.pk) == DeliveryState.PENDING
    make_due(delivery)
    # then the third failure makes it a dead letter
    assert delivery_attempt(delivery_id=delivery.pk) == DeliveryState.DEAD
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("dead", 3, 500)
    assert delivery.dead_at is not None
    assert "SECRET" not in delivery.last_error
    assert len(receiver.requests) == 3
    # and a retry sends it again with fresh attempts
    delivery_retry(delivery=delivery, actor=None)
    assert delivery_attempt(delivery_id=delivery.pk) == DeliveryState.DELIVERED
    assert len(receiver.requests) == 4
    with pytest.raises(ValidationError):
        delivery_retry(delivery=Delivery.objects.get(pk=delivery.pk), actor=None)


def test_a_refusal_retrying_cannot_fix_is_dead_at_once(team: Team, receiver: Receiver) -> None:
    receiver.answers = [404]
    make_channel(team, "teams", url=f"{receiver.url}/gone")
    dispatch(grouped(team))
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DEAD
    assert only_delivery().attempts == 1


def test_a_receiver_that_does_not_answer_in_time_is_retried(
    team: Team, receiver: Receiver, settings: Any
) -> None:
    settings.KEELSON_NOTIFY_TIMEOUT = 0.5
    receiver.delay = 2.0
    make_channel(team, "slack", url=f"{receiver.url}/slow")
    dispatch(grouped(team))
    started = time.monotonic()
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.PENDING
    assert time.monotonic() - started < 1.5
    assert only_delivery().last_error == "127.0.0.1 did not answer within 0.5 s."


def test_nothing_listens_is_transient(team: Team, settings: Any) -> None:
    from tests.support import free_port

    make_channel(team, "slack", url=f"http://127.0.0.1:{free_port()}/x")
    dispatch(grouped(team))
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.PENDING
    assert only_delivery().last_error.startswith("Could not reach 127.0.0.1")


def test_the_egress_policy_is_checked_again_when_sending(
    team: Team, receiver: Receiver, settings: Any
) -> None:
    # given a channel saved while loopback was allowed
    make_channel(team, "slack", url=f"{receiver.url}/x")
    dispatch(grouped(team))
    # when loopback is no longer allowed
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    # then the delivery is refused without connecting, for good
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DEAD
    assert "loopback" in only_delivery().last_error
    assert receiver.requests == []


def test_alertmanager_receives_the_alert_firing_then_resolved(
    team: Team, alertmanager: Alertmanager
) -> None:
    # given an Alertmanager channel
    make_channel(team, "alertmanager", url=alertmanager.url)
    firing = grouped(team, count=2)
    # when the firing notification is sent
    dispatch(firing)
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DELIVERED
    # then Alertmanager holds both alerts, active, with Keelson's labels
    alerts = alertmanager.alerts(filter='alertname="ClusterUnreachable"')
    assert sorted(a["labels"]["cluster"] for a in alerts) == ["eu-0", "eu-1"]
    first = next(a for a in alerts if a["labels"]["cluster"] == "eu-0")
    assert first["status"]["state"] == "active"
    assert first["labels"]["team"] == "payments"
    assert first["labels"]["severity"] == "critical"
    assert first["annotations"]["summary"] == "eu-0 has not answered for 5 minutes"
    assert first["generatorURL"] == "https://keelson.example/clusters/eu-0/"
    # when the resolved notification is sent
    Delivery.objects.all().delete()
    dispatch(resolved(firing, at=firing.alerts[0].starts_at.replace(minute=20)))
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DELIVERED
    # then they are resolved: Alertmanager's list of alerts leaves out ended ones
    assert alertmanager.alerts(filter='alertname="ClusterUnreachable"') == []


def test_alertmanager_basic_auth_password_is_sent_not_stored_in_clear(
    team: Team, receiver: Receiver
) -> None:
    channel = make_channel(
        team, "alertmanager", url=f"{receiver.url}/am", username="keelson", password="am-pass-1234"
    )
    assert "am-pass-1234" not in json.dumps(channel.config) + channel.ciphertext
    dispatch(grouped(team))
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DELIVERED
    (request,) = receiver.requests
    assert request.path == "/am/api/v2/alerts"
    import base64

    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"keelson:am-pass-1234").decode()
    )
    assert isinstance(request.json(), list)


def test_debug_logs_never_hold_a_webhook_token(
    team: Team, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # settings keep urllib3 at ERROR; were it at DEBUG, its request lines hold the path
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    make_channel(team, "slack", url=f"{receiver.url}/services/T0/B0/LOGTOKEN?sig=QUERYTOKEN")
    dispatch(grouped(team))
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DELIVERED
    assert receiver.requests[0].path == "/services/T0/B0/LOGTOKEN?sig=QUERYTOKEN"
    # urllib3 logged the connection, but not the request line that holds the token
    assert any(r.name == "urllib3.connectionpool" for r in caplog.records)
    assert "LOGTOKEN" not in caplog.text and "QUERYTOKEN" not in caplog.text


def test_the_sweep_queues_due_retries_and_frees_a_dead_workers_claim(
    team: Team, receiver: Receiver
) -> None:
    make_channel(team, "slack", url=f"{receiver.url}/x")
    dispatch(grouped(team))
    dispatch(grouped(team, status="resolved"))
    dispatch(grouped(team, severity="warning"))
    due, claimed, later = Delivery.objects.order_by("pk")
    now = timezone.now()
    # a retry whose time came, a claim of a worker gone for 10 minutes, a retry not yet due
    Delivery.objects.filter(pk=due.pk).update(next_attempt_at=now - timedelta(seconds=1))
    Delivery.objects.filter(pk=claimed.pk).update(
        state=DeliveryState.SENDING, claimed_at=now - timedelta(minutes=10), attempts=1
    )
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=now + timedelta(minutes=5))
    assert deliveries_requeue_due(now=now) == 2
    claimed.refresh_from_db()
    assert (claimed.state, claimed.claimed_at) == (DeliveryState.PENDING, None)
    # what the sweep queued is sent once, however often it is queued
    assert delivery_attempt(delivery_id=claimed.pk) == DeliveryState.DELIVERED
    assert delivery_attempt(delivery_id=claimed.pk) == DeliveryState.DELIVERED
    assert len(receiver.requests) == 1


def test_the_management_command_sends_a_test_and_says_so(team: Team, receiver: Receiver) -> None:
    channel = make_channel(team, "teams", url=f"{receiver.url}/webhookb2/x", enabled=False)
    out = io.StringIO()
    call_command("keelson_send_test_notification", "--channel", str(channel.pk), stdout=out)
    assert out.getvalue().strip() == (
        f"Delivered to teams (teams) as delivery {only_delivery().pk}."
    )
    card = receiver.requests[0].json()["attachments"][0]["content"]
    assert card["body"][0]["text"] == "[Keelson test] FIRING info: Test notification"
    receiver.answers = [404]
    with pytest.raises(CommandError, match="answered HTTP 404"):
        call_command("keelson_send_test_notification", "--channel", str(channel.pk))
    with pytest.raises(CommandError, match="No channel has id 0"):
        call_command("keelson_send_test_notification", "--channel", "0")


def test_old_delivered_and_dead_deliveries_are_purged(team: Team, settings: Any) -> None:
    settings.KEELSON_NOTIFY_RETENTION_DAYS = 30
    make_channel(team, "email", recipients=["oncall@payments.example"])
    for _ in range(4):
        dispatch(grouped(team))
    old_delivered, old_dead, old_pending, recent = Delivery.objects.order_by("pk")
    long_ago = timezone.now() - timedelta(days=31)
    Delivery.objects.filter(pk=old_delivered.pk).update(state="delivered", created_at=long_ago)
    Delivery.objects.filter(pk=old_dead.pk).update(state="dead", created_at=long_ago)
    Delivery.objects.filter(pk=old_pending.pk).update(created_at=long_ago)
    Delivery.objects.filter(pk=recent.pk).update(state="delivered")
    assert deliveries_purge() == 2
    assert sorted(Delivery.objects.values_list("pk", flat=True)) == [old_pending.pk, recent.pk]


def test_a_mail_server_outage_is_retried(team: Team, settings: Any) -> None:
    from tests.support import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nothing listens
    make_channel(team, "email", recipients=["oncall@payments.example"])
    dispatch(grouped(team))
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.PENDING
    assert only_delivery().last_error == (
        "Could not reach the mail server (ConnectionRefusedError)."
    )


def test_a_channel_disabled_before_sending_gets_nothing(team: Team, receiver: Receiver) -> None:
    channel = make_channel(team, "slack", url=f"{receiver.url}/x")
    dispatch(grouped(team))
    Channel.objects.filter(pk=channel.pk).update(enabled=False)
    assert delivery_attempt(delivery_id=only_delivery().pk) == DeliveryState.DEAD
    assert only_delivery().last_error == "The channel was disabled before this was sent."
    assert receiver.requests == []
