"""accounts/permissions.py: the one place that says who may do what (issue 22, item 2)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from rest_framework.test import APIClient

from accounts.choices import Role, TokenScope
from accounts.permissions import (
    has_role_anywhere,
    require_role,
    restrict,
    teams_for,
    user_has_role,
    visible_team_ids,
)
from audit.models import AuditEvent
from audit.services import audit_record
from clusters.models import Cluster
from tests.factories import add_member, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet() -> dict[str, Any]:
    """A member who views team a, operates team b, administers team c; team d is not theirs."""
    member = make_user()
    teams = {name: make_team(name=name) for name in "abcd"}
    add_member(teams["a"], member, Role.VIEWER)
    add_member(teams["b"], member, Role.OPERATOR)
    add_member(teams["c"], member, Role.ADMIN)
    for name, team in teams.items():
        make_cluster(team=team, name=f"in-{name}")
    return {"member": member, "teams": teams}


def _names(queryset: Any) -> list[str]:
    return sorted(queryset.values_list("name", flat=True))


def test_each_action_needs_its_role(fleet: dict[str, Any]) -> None:
    member = fleet["member"]
    clusters = Cluster.objects.all()
    assert _names(restrict(clusters, member, "view")) == ["in-a", "in-b", "in-c"]
    assert _names(restrict(clusters, member, "operate")) == ["in-b", "in-c"]
    assert _names(restrict(clusters, member, "admin")) == ["in-c"]
    assert _names(teams_for(member, "operate")) == ["b", "c"]
    teams = fleet["teams"]
    assert sorted(visible_team_ids(member, Role.ADMIN)) == [teams["c"].pk]
    assert user_has_role(member, teams["b"], Role.OPERATOR)
    assert not user_has_role(member, teams["a"], Role.OPERATOR)
    assert not user_has_role(member, teams["d"], Role.VIEWER)


def test_a_token_scope_caps_every_role(fleet: dict[str, Any]) -> None:
    member = fleet["member"]
    member.token_scope = TokenScope.READ  # as accounts/authentication.py sets it
    assert _names(restrict(Cluster.objects.all(), member, "view")) == ["in-a", "in-b", "in-c"]
    assert _names(restrict(Cluster.objects.all(), member, "operate")) == []
    assert not user_has_role(member, fleet["teams"]["c"], Role.OPERATOR)
    assert not has_role_anywhere(member, Role.OPERATOR)


def test_superusers_see_everything_and_anonymous_users_nothing(fleet: dict[str, Any]) -> None:
    audit_record(actor=None, action="test.teamless")  # an event of no team
    root = make_user(superuser=True)
    events = AuditEvent.objects.all()
    assert restrict(events, root, "admin").filter(team__isnull=True).count() == 1
    assert _names(restrict(Cluster.objects.all(), root, "admin")) == [
        "in-a",
        "in-b",
        "in-c",
        "in-d",
    ]
    assert has_role_anywhere(root, Role.ADMIN)
    anonymous = AnonymousUser()
    assert restrict(events, anonymous, "view").count() == 0
    assert visible_team_ids(anonymous) == []
    assert not user_has_role(anonymous, fleet["teams"]["a"], Role.VIEWER)


def test_a_service_refusal_without_the_request_records_nothing(fleet: dict[str, Any]) -> None:
    with pytest.raises(PermissionDenied, match="the operator role in the team to scale"):
        require_role(fleet["member"], fleet["teams"]["a"], Role.OPERATOR, doing="scale")
    assert not AuditEvent.objects.filter(action="request.denied").exists()


def test_an_api_refusal_is_recorded_once_naming_its_target(fleet: dict[str, Any]) -> None:
    client = APIClient()
    client.force_authenticate(fleet["member"])
    response = client.patch("/api/v1/clusters/in-a/", {"labels": {"x": "y"}}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "You need the operator role in the team to change clusters."
    )
    denied = AuditEvent.objects.get(action="request.denied")  # once, not twice
    assert denied.target_repr == "in-a"
    assert denied.actor_name == fleet["member"].username
