"""The overview's top spenders keep a deregistered cluster's month (its cost rows outlive
it) and name it without a link to a page that no longer exists."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.choices import Role
from costs.models import CostAllocation
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db


def test_a_deregistered_clusters_spend_is_named_without_a_link(client: Client) -> None:
    # given: this month's cost of a live cluster and of one since deregistered
    team = make_team()
    user = make_user()
    add_member(team, user, Role.VIEWER)
    live = make_cluster(team=team, name="live-one", status="ready")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for cluster, name, total in ((live, "live-one", "2.00"), (None, "gone-one", "5.00")):
        CostAllocation.objects.create(
            cluster=cluster,
            cluster_name=name,
            hour=hour,
            namespace="shop",
            team=team,
            provider="aws",
            region="eu-west-1",
            cpu_cost=Decimal(total),
            ram_cost=Decimal(0),
            gpu_cost=Decimal(0),
            total_cost=Decimal(total),
        )
    client.force_login(user)

    # when
    page = client.get("/").content.decode()

    # then: both are listed, the live one linked, the gone one not
    assert 'href="/clusters/live-one/"' in page
    assert "gone-one" in page and "(deregistered)" in page
    assert 'href="/clusters/gone-one/"' not in page
