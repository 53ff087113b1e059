"""Entry points of the notifications package: channels (save, delete, send a test) and
`dispatch`, which queues one delivery per matching channel. Sending is in delivery.py."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Team
from audit.services import audit_record
from core import egress
from core.celery import task_send
from core.crypto import DecryptionError, decrypt, encrypt
from notifications.choices import ChannelKind, DeliveryState, Severity
from notifications.models import Channel, Delivery
from notifications.payloads import notification_to_dict, test_notification
from notifications.transport import check_webhook_url, parse_webhook_url
from notifications.types import Notification

logger = logging.getLogger(__name__)
SEND_TASK = "notifications.tasks.delivery_send_task"
MAX_RECIPIENTS = 50
MIN_HMAC_SECRET = 16
MAX_SECRET = 512
# Which secrets each kind needs ("url" is secret for chat and generic webhooks: their path
# carries the token; Alertmanager's URL is not, its password is).
SECRET_URL_KINDS = (ChannelKind.WEBHOOK, ChannelKind.SLACK, ChannelKind.TEAMS)
URL_KINDS = (*SECRET_URL_KINDS, ChannelKind.ALERTMANAGER)


@dataclass
class ChannelSpec:
    """What a user sets on a channel. A secret left None keeps the stored one (secrets are
    write-only); "" removes an optional one (the Alertmanager password)."""

    name: str
    kind: str
    enabled: bool = True
    min_severity: str = Severity.INFO
    recipients: list[str] = field(default_factory=list)
    url: str | None = None
    hmac_secret: str | None = None
    username: str = ""
    password: str | None = None


def channel_secrets(channel: Channel) -> dict[str, str]:
    """The channel's decrypted secrets (empty when it has none)."""
    if not channel.ciphertext:
        return {}
    data = json.loads(decrypt(channel.ciphertext))
    assert isinstance(data, dict)
    return {str(k): str(v) for k, v in data.items()}


def _url_hint(kind: str, url: str) -> str:
    server = parse_webhook_url(url)
    if kind == ChannelKind.ALERTMANAGER:
        return url
    host = f"[{server.host}]" if ":" in server.host else server.host
    default = 443 if server.scheme == "https" else 80
    port = "" if server.port == default else f":{server.port}"
    return f"{server.scheme}://{host}{port}/…"


def _validate(spec: ChannelSpec, stored: dict[str, str], current_url: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        validate_slug(spec.name)
        if not 1 <= len(spec.name) <= 63:
            raise ValidationError("Use 1 to 63 characters.")
    except ValidationError as error:
        errors["name"] = error.messages
    if spec.kind not in ChannelKind.values:
        errors["kind"] = [f"Use one of {', '.join(ChannelKind.values)}."]
        return errors
    if spec.min_severity not in Severity.values:
        errors["min_severity"] = [f"Use one of {', '.join(Severity.values)}."]
    if spec.kind == ChannelKind.EMAIL:
        if not spec.recipients:
            errors["recipients"] = ["Give at least one e-mail address."]
        elif len(spec.recipients) > MAX_RECIPIENTS:
            errors["recipients"] = [f"Give at most {MAX_RECIPIENTS} addresses."]
        for address in spec.recipients:
            try:
                validate_email(address)
            except ValidationError:
                errors.setdefault("recipients", []).append(f"{address!r} is not an e-mail address.")
    elif spec.recipients:
        errors["recipients"] = ["Only e-mail channels have recipients."]
    if spec.kind in URL_KINDS:
        url = spec.url if spec.url is not None else current_url
        if not url:
            errors["url"] = ["Give the URL to post to."]
        else:
            try:
                if spec.kind == ChannelKind.ALERTMANAGER:
                    egress.check_egress(url)  # a base URL: /api/v2/alerts is appended
                else:
                    check_webhook_url(url)
            except egress.EgressDenied as error:
                errors["url"] = [str(error).replace("server URL", "URL")]
    elif spec.url:
        errors["url"] = ["E-mail channels have no URL."]
    if spec.kind == ChannelKind.WEBHOOK:
        secret = spec.hmac_secret if spec.hmac_secret is not None else stored.get("hmac_secret", "")
        if not MIN_HMAC_SECRET <= len(secret) <= MAX_SECRET:
            errors["hmac_secret"] = [
                f"Give a signing secret of {MIN_HMAC_SECRET} to {MAX_SECRET} characters "
                "(e.g. `openssl rand -hex 32`)."
            ]
    elif spec.hmac_secret:
        errors["hmac_secret"] = ["Only generic webhooks are signed."]
    if spec.kind == ChannelKind.ALERTMANAGER:
        password = spec.password if spec.password is not None else stored.get("password", "")
        if password and not spec.username:
            errors["username"] = ["Give the user name the password belongs to."]
        if len(spec.username) > 150 or ":" in spec.username:
            errors["username"] = ["Use at most 150 characters and no colon."]
        if len(password) > MAX_SECRET:
            errors["password"] = [f"Use at most {MAX_SECRET} characters."]
    elif spec.username or spec.password:
        errors["username"] = ["Only Alertmanager channels log in."]
    return errors


def _current_url(channel: Channel | None, stored: dict[str, str]) -> str:
    if channel is None:
        return ""
    if channel.kind == ChannelKind.ALERTMANAGER:
        return str(channel.config.get("url", ""))
    return stored.get("url", "")


@transaction.atomic
def channel_save(
    *, team: Team, spec: ChannelSpec, actor: AbstractBaseUser | None, channel: Channel | None = None
) -> Channel:
    """Create the channel (`channel` None) or change it: validated, secrets encrypted,
    audited (naming which fields and secrets changed, never their values). A channel's
    kind is fixed once created: its secrets mean something else in another kind."""
    if channel is not None and spec.kind != channel.kind:
        raise ValidationError({"kind": ["A channel's kind cannot change; create another."]})
    try:
        stored = channel_secrets(channel) if channel is not None else {}
    except DecryptionError:
        stored = {}  # the secrets must be entered again: validation asks for them
    current_url = _current_url(channel, stored)
    errors = _validate(spec, stored, current_url)
    if errors:
        raise ValidationError(errors)
    url = spec.url if spec.url is not None else current_url
    secrets: dict[str, str] = {}
    config: dict[str, Any] = {}
    if spec.kind == ChannelKind.EMAIL:
        config["recipients"] = list(spec.recipients)
    if spec.kind in SECRET_URL_KINDS:
        secrets["url"] = url
    if spec.kind in URL_KINDS:
        config["url_hint"] = _url_hint(spec.kind, url)
    if spec.kind == ChannelKind.ALERTMANAGER:
        config["url"] = url
        config["username"] = spec.username
        password = spec.password if spec.password is not None else stored.get("password", "")
        if password:
            secrets["password"] = password
    if spec.kind == ChannelKind.WEBHOOK:
        secrets["hmac_secret"] = (
            spec.hmac_secret if spec.hmac_secret is not None else stored["hmac_secret"]
        )
    changed_secrets = sorted(
        k for k in set(secrets) | set(stored) if secrets.get(k) != stored.get(k)
    )
    values = {
        "name": spec.name,
        "kind": spec.kind,
        "enabled": spec.enabled,
        "min_severity": spec.min_severity,
        "config": config,
        "ciphertext": encrypt(json.dumps(secrets)) if secrets else "",
        "secret_names": sorted(secrets),
    }
    creating = channel is None
    before = {} if creating else {k: getattr(channel, k) for k in values if k != "ciphertext"}
    if channel is None:
        channel = Channel(team=team)
        channel.created_by_id = actor.pk if actor is not None else None
    for key, value in values.items():
        setattr(channel, key, value)
    try:
        with transaction.atomic():
            channel.save()
    except IntegrityError:
        raise ValidationError({"name": ["The team has a channel of this name."]}) from None
    changed = sorted(k for k, v in before.items() if v != values[k]) if not creating else []
    audit_record(
        actor=actor,
        action="notification.channel.create" if creating else "notification.channel.update",
        target=channel,
        team=team,
        detail={
            "kind": channel.kind,
            "changed": changed,
            "replaced": changed_secrets,  # which secrets, never their values
        },
    )
    return channel


@transaction.atomic
def channel_delete(*, channel: Channel, actor: AbstractBaseUser | None) -> None:
    """Delete the channel and its deliveries (dead letters included), audited."""
    audit_record(
        actor=actor,
        action="notification.channel.delete",
        target=channel,
        team=channel.team,
        detail={"kind": channel.kind},
    )
    channel.delete()


def _queue(deliveries: list[Delivery]) -> None:
    ids = [d.pk for d in deliveries]

    def send() -> None:
        try:
            for pk in ids:
                task_send(SEND_TASK, args=[pk])
        except Exception:  # the broker is down: the rows are stored, the sweep sends them
            logger.warning("could not queue deliveries %s; the sweep will", ids, exc_info=True)

    transaction.on_commit(send)


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return Severity.INFO.rank


def _delivery(channel: Channel, notification: Notification, *, test: bool = False) -> Delivery:
    return Delivery(
        channel=channel,
        team_id=channel.team_id,
        group_key=notification.group_key[:255],
        status=notification.status,
        severity=notification.severity,
        title=notification.title[:255],
        payload=notification_to_dict(notification),
        test=test,
    )


def dispatch(notification: Notification) -> int:
    """Queue one delivery of `notification` per matching enabled channel of its team and
    return how many were queued. Sending happens on a worker, with retries; inside the
    caller's transaction the deliveries are sent once it commits."""
    channels = Channel.objects.filter(team_id=notification.team_id, enabled=True)
    if notification.channel_ids is not None:
        channels = channels.filter(pk__in=notification.channel_ids)
    rank = _rank(notification.severity)
    matching = [c for c in channels if rank >= _rank(c.min_severity)]
    if not matching:
        return 0
    with transaction.atomic():
        deliveries = Delivery.objects.bulk_create(
            [_delivery(channel, notification) for channel in matching]
        )
        _queue(deliveries)
    return len(deliveries)


@transaction.atomic
def channel_send_test(
    *, channel: Channel, actor: AbstractBaseUser | None, queue: bool = True
) -> Delivery:
    """Queue a test notification to this channel (even a disabled one), audited; with
    `queue=False` the caller sends it (`delivery_attempt`, the management command)."""
    notification = test_notification(
        team_id=channel.team_id,
        team=channel.team.name,
        channel_id=channel.pk,
        now=timezone.now(),
    )
    delivery = _delivery(channel, notification, test=True)
    delivery.save()
    audit_record(
        actor=actor,
        action="notification.channel.test",
        target=channel,
        team=channel.team,
        detail={"delivery": delivery.pk},
    )
    if queue:
        _queue([delivery])
    return delivery


@transaction.atomic
def delivery_retry(*, delivery: Delivery, actor: AbstractBaseUser | None) -> Delivery:
    """Send a dead letter again with a fresh set of attempts, audited. Only a dead letter
    is retried (a pending one is on its way already)."""
    updated = Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.DEAD).update(
        state=DeliveryState.PENDING, attempts=0, next_attempt_at=None, dead_at=None
    )
    if not updated:
        raise ValidationError("Only a dead letter can be retried.")
    audit_record(
        actor=actor,
        action="notification.delivery.retry",
        target=delivery,
        team=delivery.team,
        detail={"channel": delivery.channel_id, "attempts_before": delivery.attempts},
    )
    delivery.refresh_from_db()
    _queue([delivery])
    return delivery
