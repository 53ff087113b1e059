"""What each kind of channel receives: pure functions from a Notification to a body.

Nothing here does I/O, so every format is checked by unit tests against the receivers'
documented shapes: Slack's incoming webhooks (`text` fallback plus Block Kit blocks),
Microsoft Teams' incoming webhooks and Workflows (a message carrying an Adaptive Card),
Alertmanager's `POST /api/v2/alerts` (a list of postable alerts) and Keelson's own JSON."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from notifications.types import AlertItem, Notification

SCHEMA_VERSION = "1"
SIGNATURE_HEADER = "X-Keelson-Signature"
TIMESTAMP_HEADER = "X-Keelson-Timestamp"
DELIVERY_HEADER = "X-Keelson-Delivery"
# Slack: a header's text is at most 150 characters, a section's 3000, a message 50 blocks.
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
# Alerts listed by chat messages and e-mails; the rest are counted ("and 12 more").
LISTED_ALERTS = 25
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")
SEVERITY_COLORS = {"critical": "#d1242f", "warning": "#bf8700", "info": "#0969da"}
RESOLVED_COLOR = "#1a7f37"


# --- storing a notification on a delivery row -------------------------------------------------


def notification_to_dict(notification: Notification) -> dict[str, Any]:
    data = asdict(notification)
    data["alerts"] = [
        {
            **asdict(alert),
            "starts_at": alert.starts_at.isoformat(),
            "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        }
        for alert in notification.alerts
    ]
    data["channel_ids"] = list(notification.channel_ids) if notification.channel_ids else None
    return data


def notification_from_dict(data: dict[str, Any]) -> Notification:
    alerts = tuple(
        AlertItem(
            fingerprint=item["fingerprint"],
            labels=dict(item["labels"]),
            annotations=dict(item["annotations"]),
            starts_at=datetime.fromisoformat(item["starts_at"]),
            ends_at=datetime.fromisoformat(item["ends_at"]) if item.get("ends_at") else None,
            url=item.get("url", ""),
        )
        for item in data["alerts"]
    )
    fields = {k: v for k, v in data.items() if k in Notification.__dataclass_fields__}
    channel_ids = fields.pop("channel_ids", None)
    fields["alerts"] = alerts
    return Notification(**fields, channel_ids=tuple(channel_ids) if channel_ids else None)


# --- helpers ----------------------------------------------------------------------------------


def alert_name(alert: AlertItem, notification: Notification) -> str:
    """What a person reads first: the alert's subject or, failing one, its rule."""
    for key in ("cluster", "subject", "alertname"):
        if alert.labels.get(key):
            return alert.labels[key]
    return notification.rule_name or notification.title


def alert_line(alert: AlertItem, notification: Notification) -> str:
    summary = alert.annotations.get("summary") or alert.annotations.get("description", "")
    name = alert_name(alert, notification)
    return f"{name}: {summary}" if summary else name


def subject(notification: Notification, *, test: bool = False) -> str:
    state = "RESOLVED" if notification.status == "resolved" else "FIRING"
    prefix = "[Keelson test] " if test else "[Keelson] "
    count = f" ({len(notification.alerts)})" if len(notification.alerts) > 1 else ""
    return f"{prefix}{state}{count} {notification.severity}: {notification.title}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listed(notification: Notification) -> tuple[list[AlertItem], int]:
    alerts = list(notification.alerts)
    return alerts[:LISTED_ALERTS], max(0, len(alerts) - LISTED_ALERTS)


# --- Keelson's JSON (generic webhooks) --------------------------------------------------------


def webhook_body(
    notification: Notification, *, delivery_id: int, timestamp: int, team: str, test: bool
) -> dict[str, Any]:
    """The generic webhook's JSON. `timestamp` (Unix seconds) is inside the signed body as
    well as in a header, so a receiver can refuse replays of old deliveries."""
    return {
        "version": SCHEMA_VERSION,
        "delivery_id": delivery_id,
        "timestamp": timestamp,
        "test": test,
        "team": team,
        "group_key": notification.group_key,
        "status": notification.status,
        "severity": notification.severity,
        "rule": notification.rule_name,
        "title": notification.title,
        "summary": notification.summary,
        "alerts": [
            {
                "fingerprint": alert.fingerprint,
                "status": "resolved" if alert.ends_at else notification.status,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "starts_at": alert.starts_at.isoformat(),
                "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
                "url": alert.url,
            }
            for alert in notification.alerts
        ],
    }


def sign(secret: str, body: bytes) -> str:
    """The `X-Keelson-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    """How a receiver checks the header (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), header)


# --- Slack ------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (`<!channel>` would ping everyone).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notification: Notification, *, test: bool = False) -> dict[str, Any]:
    """An incoming-webhook message: `text` is the notification's fallback (and what
    Slack-compatible receivers without Block Kit show), the blocks the formatted message."""
    title = subject(notification, test=test)
    listed, more = _listed(notification)
    lines = []
    for alert in listed:
        line = _slack_escape(alert_line(alert, notification))
        web = alert.url.startswith(("https://", "http://")) and "|" not in alert.url
        lines.append(f"• <{_slack_escape(alert.url)}|{line}>" if web else f"• {line}")
    if more:
        lines.append(f"… and {more} more")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(title, SLACK_HEADER_MAX)},
        }
    ]
    if notification.summary:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _truncate(_slack_escape(notification.summary), SLACK_SECTION_MAX),
                },
            }
        )
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _truncate("\n".join(lines), SLACK_SECTION_MAX)},
            }
        )
    return {
        "text": _truncate(f"{title}: {notification.summary}", SLACK_SECTION_MAX),
        "blocks": blocks,
    }


# --- Microsoft Teams --------------------------------------------------------------------------


def teams_body(notification: Notification, *, test: bool = False) -> dict[str, Any]:
    """A message with one Adaptive Card attachment, the shape both Teams' incoming webhooks
    and Power Automate's "post to a channel when a webhook request is received" accept."""
    title = subject(notification, test=test)
    resolved = notification.status == "resolved"
    listed, more = _listed(notification)
    facts = [
        {"title": alert_name(alert, notification), "value": alert_line(alert, notification)}
        for alert in listed
    ]
    if more:
        facts.append({"title": "…", "value": f"and {more} more"})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": "Good" if resolved else "Attention",
        }
    ]
    if notification.summary:
        body.append({"type": "TextBlock", "text": notification.summary, "wrap": True})
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    return {
        "type": "message",
        "summary": title,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }


# --- Alertmanager -----------------------------------------------------------------------------


def label_name(key: str) -> str:
    """An Alertmanager label name ([a-zA-Z_][a-zA-Z0-9_]*) for a Keelson label key."""
    name = _LABEL_NAME.sub("_", key) or "_"
    return f"_{name}" if name[0].isdigit() else name


def alertmanager_body(
    notification: Notification, *, team: str, now: datetime, ttl: timedelta, base_url: str = ""
) -> list[dict[str, Any]]:
    """Postable alerts for `POST /api/v2/alerts`. A firing alert's `endsAt` lies `ttl`
    ahead (Alertmanager resolves an alert by itself at its `endsAt`, or after its
    resolve_timeout when there is none, and Keelson does not re-send firing alerts); a
    resolved alert's `endsAt` is when it resolved, which resolves it in Alertmanager."""
    alerts = []
    for alert in notification.alerts:
        labels = {label_name(k): str(v) for k, v in alert.labels.items() if str(v)}
        labels.setdefault("alertname", label_name(notification.rule_name or "keelson"))
        labels.setdefault("severity", notification.severity)
        labels.setdefault("team", team)
        labels.setdefault("source", "keelson")
        annotations = {label_name(k): str(v) for k, v in alert.annotations.items()}
        annotations.setdefault("summary", notification.title)
        if alert.ends_at is not None or notification.status == "resolved":
            ends_at = alert.ends_at or now
        else:
            ends_at = now + ttl
        alerts.append(
            {
                "labels": labels,
                "annotations": annotations,
                "startsAt": alert.starts_at.isoformat(),
                "endsAt": ends_at.isoformat(),
                "generatorURL": alert.url or base_url,
            }
        )
    return alerts


# --- a test notification ----------------------------------------------------------------------


def test_notification(*, team_id: int, team: str, channel_id: int, now: datetime) -> Notification:
    """What "Send test" sends: one info alert that says what it is."""
    return Notification(
        team_id=team_id,
        group_key=f"keelson-test-{channel_id}",
        status="firing",
        severity="info",
        title="Test notification",
        summary=f"A test of this channel of team {team}, sent from Keelson.",
        alerts=(
            AlertItem(
                fingerprint=f"test-{channel_id}-{int(now.timestamp())}",
                labels={"alertname": "KeelsonTest", "team": team},
                annotations={"summary": "Nothing is wrong: this checks the channel."},
                starts_at=now,
            ),
        ),
        rule_name="KeelsonTest",
        channel_ids=(channel_id,),
    )


def resolved(notification: Notification, *, at: datetime) -> Notification:
    """The resolved counterpart of a firing notification (tests, the test channel)."""
    alerts = tuple(replace(alert, ends_at=alert.ends_at or at) for alert in notification.alerts)
    return replace(notification, status="resolved", alerts=alerts)


# --- retries ----------------------------------------------------------------------------------


def backoff_seconds(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before attempt `attempt + 1` after `attempt` failures: exponential
    (base, 2·base, 4·base, …, at most `cap`), with "equal jitter" (between half and all of
    it) so deliveries failing together do not retry together."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + (rng or random).uniform(0, delay / 2)
