"""The bodies each kind of channel receives, checked against the receivers' documented
shapes, and the retry schedule (notifications/payloads.py; pure, no services)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.egress import EgressDenied
from notifications import payloads
from notifications.transport import check_webhook_url, parse_webhook_url
from notifications.types import AlertItem, Notification

STARTED = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 5, 12, 30, tzinfo=UTC)


def grouped(count: int = 3, status: str = "firing") -> Notification:
    alerts = tuple(
        AlertItem(
            fingerprint=f"fp-{i}",
            labels={"alertname": "ClusterUnreachable", "cluster": f"eu-{i}", "region": "eu"},
            annotations={"summary": f"eu-{i} has not answered for 5 minutes"},
            starts_at=STARTED,
            ends_at=NOW if status == "resolved" else None,
            url=f"https://keelson.example/clusters/eu-{i}/",
        )
        for i in range(count)
    )
    return Notification(
        team_id=7,
        group_key="unreachable/region=eu",
        status=status,  # type: ignore[arg-type]
        severity="critical",
        title=f"{count} clusters unreachable in eu",
        summary="Clusters of region eu stopped answering.",
        alerts=alerts,
        rule_name="cluster-unreachable",
    )


def test_a_notification_survives_the_delivery_row() -> None:
    # given a notification stored on a delivery as JSON
    original = grouped(2, "resolved")
    stored = json.loads(json.dumps(payloads.notification_to_dict(original)))
    # when read back
    # then it is the same notification
    assert payloads.notification_from_dict(stored) == original


def test_the_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    body = b'{"status":"firing"}'
    # worked out with the standard library on its own
    expected = hmac.new(b"s3cret-s3cret-s3cret", body, hashlib.sha256).hexdigest()
    assert payloads.sign("s3cret-s3cret-s3cret", body) == f"sha256={expected}"
    assert payloads.signature_valid("s3cret-s3cret-s3cret", body, f"sha256={expected}")
    assert not payloads.signature_valid("another-secret-value", body, f"sha256={expected}")
    assert not payloads.signature_valid("s3cret-s3cret-s3cret", body + b" ", f"sha256={expected}")


def test_the_generic_webhook_body_lists_every_alert_and_carries_its_timestamp() -> None:
    body = payloads.webhook_body(
        grouped(3), delivery_id=41, timestamp=1796472000, team="payments", test=False
    )
    assert body["version"] == "1"
    assert body["delivery_id"] == 41
    assert body["timestamp"] == 1796472000
    assert body["team"] == "payments"
    assert body["status"] == "firing"
    assert [a["labels"]["cluster"] for a in body["alerts"]] == ["eu-0", "eu-1", "eu-2"]
    assert body["alerts"][0]["starts_at"] == "2026-12-05T12:00:00+00:00"
    assert body["alerts"][0]["ends_at"] is None
    assert body["alerts"][0]["status"] == "firing"


def test_slack_gets_a_fallback_text_and_blocks_within_slack_limits() -> None:
    notification = grouped(40)
    body = payloads.slack_body(notification)
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("[Keelson] FIRING (40) critical: 40 clusters unreachable in eu")
    header, summary, listing = body["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "[Keelson] FIRING (40) critical: 40 clusters unreachable in eu",
        },
    }
    assert summary["type"] == "section" and summary["text"]["type"] == "mrkdwn"
    lines = listing["text"]["text"].splitlines()
    # 25 alerts listed as links, the other 15 counted
    assert len(lines) == 26
    assert lines[0] == (
        "• <https://keelson.example/clusters/eu-0/|eu-0: eu-0 has not answered for 5 minutes>"
    )
    assert lines[-1] == "… and 15 more"
    assert all(len(b["text"]["text"]) <= 3000 for b in body["blocks"][1:])
    assert len(header["text"]["text"]) <= 150


def test_slack_markup_in_alert_text_is_escaped() -> None:
    alert = AlertItem(
        fingerprint="x",
        labels={"cluster": "a<b>"},
        annotations={"summary": "<!channel> & more"},
        starts_at=STARTED,
    )
    notification = Notification(
        team_id=1,
        group_key="g",
        status="firing",
        severity="warning",
        title="t",
        summary="",
        alerts=(alert,),
    )
    listing = payloads.slack_body(notification)["blocks"][-1]["text"]["text"]
    assert listing == "• a&lt;b&gt;: &lt;!channel&gt; &amp; more"


def test_teams_gets_a_message_with_one_adaptive_card() -> None:
    body = payloads.teams_body(grouped(2, "resolved"))
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    title, summary, facts = card["body"]
    assert title["type"] == "TextBlock"
    assert title["text"] == "[Keelson] RESOLVED (2) critical: 2 clusters unreachable in eu"
    assert title["color"] == "Good"
    assert summary == {
        "type": "TextBlock",
        "text": "Clusters of region eu stopped answering.",
        "wrap": True,
    }
    assert facts["type"] == "FactSet"
    assert facts["facts"][1] == {
        "title": "eu-1",
        "value": "eu-1: eu-1 has not answered for 5 minutes",
    }


def test_alertmanager_gets_postable_alerts_firing_until_the_ttl() -> None:
    alerts = payloads.alertmanager_body(
        grouped(2), team="payments", now=NOW, ttl=timedelta(hours=24)
    )
    assert len(alerts) == 2
    first = alerts[0]
    assert set(first) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert first["labels"] == {
        "alertname": "ClusterUnreachable",
        "cluster": "eu-0",
        "region": "eu",
        "severity": "critical",
        "team": "payments",
        "source": "keelson",
    }
    assert first["annotations"] == {"summary": "eu-0 has not answered for 5 minutes"}
    assert first["startsAt"] == "2026-12-05T12:00:00+00:00"
    assert first["endsAt"] == "2026-12-06T12:30:00+00:00"
    assert first["generatorURL"] == "https://keelson.example/clusters/eu-0/"


def test_alertmanager_resolved_alerts_end_when_they_resolved() -> None:
    alerts = payloads.alertmanager_body(
        grouped(1, "resolved"),
        team="payments",
        now=NOW + timedelta(minutes=5),
        ttl=timedelta(hours=1),
    )
    assert alerts[0]["endsAt"] == "2026-12-05T12:30:00+00:00"


@pytest.mark.parametrize(
    ("key", "name"),
    [("cluster", "cluster"), ("kubernetes.io/region", "kubernetes_io_region"), ("1st", "_1st")],
)
def test_alertmanager_label_names(key: str, name: str) -> None:
    assert payloads.label_name(key) == name


def test_subject_says_state_count_severity_and_test() -> None:
    assert payloads.subject(grouped(1)) == "[Keelson] FIRING critical: 1 clusters unreachable in eu"
    assert (
        payloads.subject(grouped(3, "resolved"), test=True)
        == "[Keelson test] RESOLVED (3) critical: 3 clusters unreachable in eu"
    )


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() -> None:
    rng = random.Random(24)
    for attempt, full in [(1, 10), (2, 20), (3, 40), (4, 80), (7, 600), (12, 600)]:
        for _ in range(50):
            delay = payloads.backoff_seconds(attempt, base=10, cap=600, rng=rng)
            assert full / 2 <= delay <= full, (attempt, delay)
    # jitter: two deliveries failing together do not retry together
    delays = {payloads.backoff_seconds(3, base=10, cap=600, rng=rng) for _ in range(20)}
    assert len(delays) == 20


# --- webhook URLs: as strict as cluster URLs, but a query is allowed -----------------------


def test_a_power_automate_url_with_its_signed_query_is_accepted() -> None:
    url = (
        "https://prod-01.westeurope.logic.azure.com:443/workflows/0123abcd/triggers/manual/"
        "paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=AbC-123_x"
    )
    server = parse_webhook_url(url)
    assert (server.scheme, server.host, server.port) == (
        "https",
        "prod-01.westeurope.logic.azure.com",
        443,
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x?",  # an empty query
        "https://hooks.example.com/x?a=b c",
        "https://hooks.example.com/x?a=b#frag",
        "https://hooks.example.com/x?a=\\b",
        "https://user@hooks.example.com/x?a=b",
        "https://hooks.example.com%2F@evil.example/x?a=b",
        "https://hooks.example.com/p%2Fq?a=b",
    ],
)
def test_ambiguous_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(EgressDenied):
        parse_webhook_url(url)


def test_the_egress_policy_judges_the_webhook_host(settings: Any) -> None:
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = []
    settings.KEELSON_CLUSTER_ALLOW_LOOPBACK = False
    with pytest.raises(EgressDenied, match="link-local"):
        check_webhook_url("http://169.254.169.254/latest/meta-data?x=1")
    with pytest.raises(EgressDenied, match="loopback"):
        check_webhook_url("http://127.0.0.1:8080/hook?token=abc")
    settings.KEELSON_CLUSTER_URL_ALLOWLIST = ["10.0.0.0/8"]
    with pytest.raises(EgressDenied, match="not in KEELSON_CLUSTER_URL_ALLOWLIST"):
        check_webhook_url("https://192.0.2.10/hook?token=abc")
    assert check_webhook_url("https://10.1.2.3:8443/hook?token=abc").port == 8443


def test_only_web_urls_become_slack_links() -> None:
    alert = AlertItem(
        fingerprint="x",
        labels={"cluster": "eu-1"},
        annotations={},
        starts_at=STARTED,
        url="javascript:alert(1)",
    )
    notification = Notification(
        team_id=1,
        group_key="g",
        status="firing",
        severity="info",
        title="t",
        summary="",
        alerts=(alert,),
    )
    assert payloads.slack_body(notification)["blocks"][-1]["text"]["text"] == "• eu-1"
