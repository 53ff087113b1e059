"""Agent tokens expire; an agent trades its token for a new one, even an expired one (a
network cut may outlast a token), never a revoked one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from agent.runner import OUTBOX_LIMIT, Agent
from clusters.models import AgentToken
from clusters.services.registration import (
    ClusterFields,
    agent_tokens_revoke,
    cluster_register_pull,
    token_hash,
)
from tests.factories import make_team


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
def test_agent_tokens_expire_and_an_expired_token_can_only_be_rotated(settings: Any) -> None:
    # given tokens that live an hour
    settings.KEELSON_AGENT_TOKEN_TTL = 3600
    cluster, bootstrap = cluster_register_pull(
        actor=None, fields=ClusterFields(name="edge-ttl", team=make_team())
    )

    # when the agent enrolls, then its credential says when the token expires
    enrolled = APIClient().post("/api/v1/agent/enroll", {"bootstrap_token": bootstrap})
    assert enrolled.status_code == 201
    token = enrolled.json()["agent_token"]
    expires = AgentToken.objects.get(token_hash=token_hash(token)).expires_at
    assert expires is not None
    assert abs((expires - timezone.now()) - timedelta(hours=1)) < timedelta(seconds=30)
    assert enrolled.json()["token_expires_at"] == expires.isoformat()
    assert _client(token).get("/api/v1/agent/work").status_code == 200

    # when the token has expired
    AgentToken.objects.filter(token_hash=token_hash(token)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    # then it is refused for everything but its rotation, saying why
    refused = _client(token).post("/api/v1/agent/heartbeat", {"inventory": {}}, format="json")
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    assert _client(token).get("/api/v1/agent/policies").status_code == 401
    rotated = _client(token).post("/api/v1/agent/rotate")
    assert rotated.status_code == 201
    new = rotated.json()["agent_token"]
    assert _client(new).get("/api/v1/agent/policies").status_code == 200

    # and a revoked token cannot be rotated
    agent_tokens_revoke(cluster=cluster, actor=None)
    again = _client(new).post("/api/v1/agent/rotate")
    assert again.status_code == 401
    assert "revoked" in again.json()["error"]["message"]


def test_the_agent_queues_a_bounded_number_of_reports(tmp_path: Path) -> None:
    # an agent whose hub is out of reach (no cluster needed to queue)
    agent = Agent(hub="http://127.0.0.1:9", state_dir=tmp_path, api=object())
    for number in range(OUTBOX_LIMIT + 5):
        agent._queue("agent/work", {"applications": {}, "n": number})
    queued = agent.outbox()
    assert len(queued) == OUTBOX_LIMIT
    assert [entry["body"]["n"] for entry in queued[:2]] == [5, 6]  # the oldest dropped
    assert (tmp_path / "outbox.json").stat().st_mode & 0o777 == 0o600
