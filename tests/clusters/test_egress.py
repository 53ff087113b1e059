"""Outbound connections to cluster URLs are restricted (SSRF): registration refuses
them before connecting (the policy alone: tests/unit/clusters/test_egress_policy.py)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.choices import Role
from clusters.models import Cluster
from tests.factories import add_member, make_team, make_user


@pytest.mark.django_db
def test_registration_to_a_metadata_address_is_refused_before_connecting() -> None:
    team = make_team(name="platform")
    user = make_user()
    add_member(team, user, Role.OPERATOR)
    client = APIClient()
    client.force_authenticate(user)
    response = client.post(
        "/api/v1/clusters/",
        {
            "name": "ssrf",
            "team": "platform",
            "server": "https://169.254.169.254:443",
            "token": "t",
            "insecure_skip_tls_verify": True,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "forbidden_address"
    assert "link-local" in response.json()["error"]["message"]
    assert not Cluster.objects.exists()
