"""Sending one delivery: claim it, render it for its channel, send it within a bounded
time, then record the outcome: delivered, retried later (exponential backoff with
jitter) or, once its attempts are spent or the failure is one retrying cannot fix, a dead
letter that waits for someone to press "Retry".

A delivery is claimed with a conditional update (pending → sending), so a task that runs
twice (late ack, the periodic sweep re-queueing it) sends it once. A worker that dies while
sending leaves it claimed; the sweep (`deliveries_requeue_due`) gives it back after
CLAIM_TIMEOUT, so the channel may see it twice rather than never."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from core.celery import task_send
from core.crypto import DecryptionError
from notifications import payloads
from notifications.choices import ChannelKind, DeliveryState
from notifications.models import Channel, Delivery
from notifications.services import SEND_TASK, channel_secrets
from notifications.transport import SendError, Sent, post_json, send_email
from notifications.types import Notification

logger = logging.getLogger(__name__)
# Longer than a send can take (KEELSON_NOTIFY_TIMEOUT, EMAIL_TIMEOUT, the task's limit).
CLAIM_TIMEOUT = timedelta(minutes=5)
# Retries due sooner than this go straight back on the queue with a countdown; later ones
# wait for the sweep (a message held for long by a worker counts against RabbitMQ's
# consumer timeout).
COUNTDOWN_MAX = 60.0
SWEEP_BATCH = 500


def _body(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _email(channel: Channel, notification: Notification, test: bool) -> Sent:
    listed, more = payloads._listed(notification)
    context = {
        "notification": notification,
        "alerts": [
            {
                "name": payloads.alert_name(alert, notification),
                "line": payloads.alert_line(alert, notification),
                "alert": alert,
                # only web links become links (an e-mail client may run anything else)
                "link": alert.url if alert.url.startswith(("https://", "http://")) else "",
                "resolved": alert.ends_at is not None or notification.status == "resolved",
            }
            for alert in listed
        ],
        "more": more,
        "team": channel.team.name,
        "channel": channel,
        "test": test,
        "color": payloads.RESOLVED_COLOR
        if notification.status == "resolved"
        else payloads.SEVERITY_COLORS.get(notification.severity, "#57606a"),
    }
    return send_email(
        recipients=channel.recipients,
        subject=payloads.subject(notification, test=test),
        text=render_to_string("notifications/email.txt", context),
        html=render_to_string("notifications/email.html", context),
    )


def send(delivery: Delivery, channel: Channel, *, now: datetime) -> Sent:
    """Render `delivery` for its channel and send it once; SendError when it failed."""
    notification = payloads.notification_from_dict(delivery.payload)
    try:
        secrets = channel_secrets(channel)
    except DecryptionError as error:
        raise SendError(f"The channel's secrets: {error}.", transient=False) from None
    if channel.kind == ChannelKind.EMAIL:
        return _email(channel, notification, delivery.test)
    if channel.kind == ChannelKind.WEBHOOK:
        timestamp = int(now.timestamp())
        body = _body(
            payloads.webhook_body(
                notification,
                delivery_id=delivery.pk,
                timestamp=timestamp,
                team=channel.team.name,
                test=delivery.test,
            )
        )
        headers = {
            payloads.SIGNATURE_HEADER: payloads.sign(secrets["hmac_secret"], body),
            payloads.TIMESTAMP_HEADER: str(timestamp),
            payloads.DELIVERY_HEADER: str(delivery.pk),
        }
        return post_json(secrets["url"], body, headers=headers)
    if channel.kind == ChannelKind.SLACK:
        return post_json(
            secrets["url"], _body(payloads.slack_body(notification, test=delivery.test))
        )
    if channel.kind == ChannelKind.TEAMS:
        return post_json(
            secrets["url"], _body(payloads.teams_body(notification, test=delivery.test))
        )
    if channel.kind == ChannelKind.ALERTMANAGER:
        alerts = payloads.alertmanager_body(
            notification,
            team=channel.team.name,
            now=now,
            ttl=timedelta(seconds=settings.KEELSON_ALERTMANAGER_ALERT_TTL),
        )
        url = str(channel.config.get("url", "")).rstrip("/") + "/api/v2/alerts"
        auth = (channel.username, secrets["password"]) if secrets.get("password") else None
        return post_json(url, _body(alerts), auth=auth)
    raise SendError(f"Unknown channel kind {channel.kind!r}.", transient=False)


def _claim(delivery_id: int, now: datetime) -> bool:
    # Nothing updated: another worker sent it, or it is not due (dead, delivered).
    return bool(
        Delivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(state=DeliveryState.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    )


def delivery_attempt(*, delivery_id: int) -> str:
    """Make one attempt at the delivery if it is due; return its state afterwards."""
    now = timezone.now()
    if not _claim(delivery_id, now):
        state = Delivery.objects.filter(pk=delivery_id).values_list("state", flat=True).first()
        return state or "missing"
    delivery = Delivery.objects.select_related("channel__team").get(pk=delivery_id)
    channel = delivery.channel
    started = time.monotonic()
    try:
        if not channel.enabled and not delivery.test:
            raise SendError("The channel was disabled before this was sent.", transient=False)
        sent = send(delivery, channel, now=now)
    except SendError as error:
        return _failed(delivery, error)
    except Exception:  # a bug must not leave the delivery claimed: record it, keep the trace
        logger.exception("delivery %s to channel %s failed", delivery.pk, channel.pk)
        return _failed(
            delivery, SendError("Keelson failed to send it (see the worker log).", transient=True)
        )
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.DELIVERED,
        delivered_at=timezone.now(),
        response_status=sent.status,
        last_error="",
        claimed_at=None,
    )
    logger.info(
        "delivery %s to channel %s sent in %.2f s",
        delivery.pk,
        channel.pk,
        time.monotonic() - started,
    )
    return DeliveryState.DELIVERED


def _failed(delivery: Delivery, error: SendError) -> str:
    attempts = delivery.attempts  # counted at the claim
    message = str(error)[:500]
    if error.transient and attempts < settings.KEELSON_NOTIFY_MAX_ATTEMPTS:
        delay = payloads.backoff_seconds(
            attempts,
            base=settings.KEELSON_NOTIFY_BACKOFF_SECONDS,
            cap=settings.KEELSON_NOTIFY_BACKOFF_MAX_SECONDS,
        )
        Delivery.objects.filter(pk=delivery.pk).update(
            state=DeliveryState.PENDING,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=message,
            response_status=error.status,
            claimed_at=None,
        )
        if delay <= COUNTDOWN_MAX:
            transaction.on_commit(lambda: task_send(SEND_TASK, args=[delivery.pk], countdown=delay))
        return DeliveryState.PENDING
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.DEAD,
        dead_at=timezone.now(),
        last_error=message,
        response_status=error.status,
        claimed_at=None,
    )
    logger.warning(
        "delivery %s to channel %s is a dead letter after %s attempts: %s",
        delivery.pk,
        delivery.channel_id,
        attempts,
        message,
    )
    return DeliveryState.DEAD


def deliveries_requeue_due(*, now: datetime | None = None) -> int:
    """Queue the deliveries that are due and not on their way: retries whose time came,
    pending ones whose message was lost, and claims of a worker that died. Run every 15 s
    by beat; at most SWEEP_BATCH per run (one indexed query, one update)."""
    now = now or timezone.now()
    stale = now - CLAIM_TIMEOUT
    Delivery.objects.filter(state=DeliveryState.SENDING, claimed_at__lt=stale).update(
        state=DeliveryState.PENDING, claimed_at=None, next_attempt_at=now
    )
    due = list(
        Delivery.objects.filter(state=DeliveryState.PENDING)
        .filter(
            Q(next_attempt_at__lte=now)
            | Q(next_attempt_at__isnull=True, created_at__lt=now - timedelta(minutes=1))
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in due:
        task_send(SEND_TASK, args=[pk])
    return len(due)


def deliveries_purge(*, now: datetime | None = None) -> int:
    """Delete delivered and dead deliveries older than KEELSON_NOTIFY_RETENTION_DAYS (a dead
    letter nobody retried by then is gone too); pending ones are kept whatever their age."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.KEELSON_NOTIFY_RETENTION_DAYS)
    deleted, _ = Delivery.objects.filter(
        state__in=[DeliveryState.DELIVERED, DeliveryState.DEAD], created_at__lt=cutoff
    ).delete()
    return deleted
