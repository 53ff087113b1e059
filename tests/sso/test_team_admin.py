"""Issue 25: team administration in the product: administrators create teams and manage
group mapping; a team's admins change its details and members (pages and API); each
member's source and last login are shown; every change is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.choices import MembershipSource, Role
from accounts.models import GroupMapping, Membership, Team
from audit.models import AuditEvent
from tests.factories import Member, make_team, make_user, member_of

pytestmark = pytest.mark.django_db


def _actions(team: Team | None = None) -> list[str]:
    events = AuditEvent.objects.order_by("id")
    if team is not None:
        events = events.filter(team=team)
    # what the team's own changes recorded (a new team also gets its default alert rules)
    return [a for a in events.values_list("action", flat=True) if not a.startswith("alert_rule.")]


def test_only_administrators_create_teams(admin_client: Client, owner: Member) -> None:
    refused = owner.page.post("/accounts/teams/", {"name": "search"})
    assert refused.status_code == 403
    assert owner.api.post("/api/v1/teams/", {"name": "search"}).status_code == 403
    assert not Team.objects.filter(name="search").exists()

    made = admin_client.post(
        "/accounts/teams/",
        {"name": "search", "display_name": "Search", "description": "Query serving."},
    )
    assert made.status_code == 302 and made["Location"] == "/accounts/teams/search/"
    team = Team.objects.get(name="search")
    assert (team.display_name, team.description) == ("Search", "Query serving.")
    bad = admin_client.post("/accounts/teams/", {"name": "Not A Slug"})
    assert bad.status_code == 400 and "lowercase" in bad.content.decode().lower()
    assert _actions(team) == ["team.create"]


def test_a_team_admin_changes_details_and_members_on_the_page(
    team: Team, owner: Member, viewer: Member
) -> None:
    newcomer = make_user(username="newcomer")
    member_of(make_team(), Role.VIEWER).user  # noqa: B018 (someone the owner cannot see)
    Membership.objects.create(team=make_team(name="shared"), user=newcomer, role=Role.VIEWER)
    Membership.objects.create(
        team=Team.objects.get(name="shared"), user=owner.user, role=Role.VIEWER
    )

    page = owner.page
    assert (
        page.post(
            "/accounts/teams/payments/",
            {"do": "update", "display_name": "Payments", "description": "Cards and wires."},
        ).status_code
        == 302
    )
    assert (
        page.post(
            "/accounts/teams/payments/", {"do": "add", "username": "newcomer", "role": "operator"}
        ).status_code
        == 302
    )
    assert (
        page.post(
            "/accounts/teams/payments/", {"do": "role", "username": "newcomer", "role": "admin"}
        ).status_code
        == 302
    )
    assert (
        page.post(
            "/accounts/teams/payments/", {"do": "remove", "username": viewer.user.username}
        ).status_code
        == 302
    )
    unknown = page.post(
        "/accounts/teams/payments/", {"do": "add", "username": "nobody", "role": "viewer"}
    )
    assert unknown.status_code == 400 and "No user you can add" in unknown.content.decode()

    team.refresh_from_db()
    assert (team.display_name, team.description) == ("Payments", "Cards and wires.")
    assert Membership.objects.get(team=team, user=newcomer).role == Role.ADMIN
    assert not Membership.objects.filter(team=team, user=viewer.user).exists()
    assert _actions(team) == [
        "team.update",
        "team.member_add",
        "team.member_role",
        "team.member_remove",
    ]


def test_the_team_page_shows_source_and_last_login(team: Team, owner: Member) -> None:
    mapped = make_user(username="mapped-user")
    mapped.last_login = timezone.now()
    mapped.save()
    Membership.objects.create(team=team, user=mapped, role=Role.VIEWER, source=MembershipSource.IDP)
    page = owner.page.get("/accounts/teams/payments/").content.decode().split("<tbody>", 1)[1]
    row = page.split("mapped-user", 1)[1].split("</tr>", 1)[0]
    assert "identity provider" in row and "set by group mapping" in row
    assert "never" not in row
    owner_row = page.split(owner.user.username, 1)[1].split("</tr>", 1)[0]
    assert "local" in owner_row and "Change role" in owner_row


def test_viewers_and_outsiders_change_nothing(team: Team, viewer: Member, outsider: Member) -> None:
    assert viewer.page.get("/accounts/teams/payments/").status_code == 200
    assert (
        viewer.page.post(
            "/accounts/teams/payments/", {"do": "update", "display_name": "Mine"}
        ).status_code
        == 403
    )
    assert viewer.api.patch("/api/v1/teams/payments/", {"display_name": "Mine"}).status_code == 403
    assert (
        viewer.api.delete(f"/api/v1/teams/payments/members/{viewer.user.username}/").status_code
        == 403
    )
    assert outsider.page.get("/accounts/teams/payments/").status_code == 404
    team.refresh_from_db()
    assert team.display_name == ""
    assert _actions(team) == []


def test_the_member_api(team: Team, owner: Member, operator: Member) -> None:
    listed = owner.api.get("/api/v1/teams/payments/members/").json()
    row = next(item for item in listed if item["username"] == operator.user.username)
    assert row["source"] == "local" and row["role"] == "operator" and "last_login" in row

    url = f"/api/v1/teams/payments/members/{operator.user.username}/"
    changed = owner.api.patch(url, {"role": "viewer"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    assert owner.api.patch(url, {"role": "king"}, format="json").status_code == 400
    assert owner.api.delete(url).status_code == 204
    assert owner.api.delete(url).status_code == 404
    details = owner.api.patch("/api/v1/teams/payments/", {"description": "x" * 2001}, format="json")
    assert details.status_code == 400
    assert _actions(team) == ["team.member_role", "team.member_remove"]


def test_group_mapping_is_for_administrators(
    admin_client: Client, team: Team, owner: Member
) -> None:
    assert owner.api.get("/api/v1/group-mappings/").status_code == 403
    assert owner.page.get("/accounts/group-mappings/").status_code == 403
    created = admin_client.post(
        "/api/v1/group-mappings/",
        {"group": "cn=payments,ou=groups", "team": "payments", "role": "operator"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    mapping_id = created.json()["id"]
    again = admin_client.post(
        "/api/v1/group-mappings/",
        {"group": "cn=payments,ou=groups", "team": "payments", "role": "admin"},
        content_type="application/json",
    )
    assert again.status_code == 400 and "already maps" in str(again.json())
    assert (
        admin_client.patch(
            f"/api/v1/group-mappings/{mapping_id}/",
            {"role": "admin"},
            content_type="application/json",
        ).json()["role"]
        == "admin"
    )
    page = admin_client.post(
        "/accounts/group-mappings/",
        {"do": "create", "group": "devs", "team": "payments", "role": "viewer"},
    )
    assert page.status_code == 302
    assert "cn=payments,ou=groups" in admin_client.get("/accounts/group-mappings/").content.decode()
    devs = GroupMapping.objects.get(group="devs")
    assert (
        admin_client.post(
            "/accounts/group-mappings/", {"do": "delete", "mapping": devs.pk}
        ).status_code
        == 302
    )
    assert admin_client.delete(f"/api/v1/group-mappings/{mapping_id}/").status_code == 204
    assert not GroupMapping.objects.exists()
    assert _actions(team) == [
        "group_mapping.create",
        "group_mapping.update",
        "group_mapping.create",
        "group_mapping.delete",
        "group_mapping.delete",
    ]


def test_team_pages_answer_at_phone_width_markup(
    team: Team, owner: Member, admin_client: Client
) -> None:
    """The pages render for each kind of visitor (the browser test checks the layout)."""
    for client, path in (
        (owner.page, "/accounts/teams/"),
        (owner.page, "/accounts/teams/payments/"),
        (admin_client, "/accounts/teams/"),
        (admin_client, "/accounts/group-mappings/"),
    ):
        response: Any = client.get(path)
        assert response.status_code == 200, path
