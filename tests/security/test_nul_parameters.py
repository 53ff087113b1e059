"""A NUL character in a query parameter reached PostgreSQL and answered 500 (found by
schemathesis on /api/v1/compliance/ and /api/v1/policies/<name>/). It is refused first."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_api_filters_with_nul_answer_400_in_the_json_shape() -> None:
    api = APIClient()
    api.force_authenticate(make_user())
    for url in ("/api/v1/compliance/?team=a%00b", "/api/v1/clusters/?name%00=x"):
        response = api.get(url)
        assert response.status_code == 400, url
        assert response.json()["error"]["status"] == 400
        assert "NUL" in response.json()["error"]["message"]


def test_pages_with_nul_answer_400(client: Client) -> None:
    client.force_login(make_user())
    response = client.get("/clusters/?q=%00")
    assert response.status_code == 400


def test_ordinary_filters_still_work() -> None:
    api = APIClient()
    api.force_authenticate(make_user())
    assert api.get("/api/v1/compliance/?team=nobody").status_code == 200


def test_json_bodies_with_nul_answer_400_and_change_nothing() -> None:
    # schemathesis: POST /api/v1/cluster-sets/ with a NUL in a string answered 500
    from accounts.choices import Role
    from clusters.models import ClusterSet
    from tests.factories import add_member, make_team

    team = make_team(name="nul-team")
    user = make_user(username="nul-operator")
    add_member(team, user, Role.OPERATOR)
    api = APIClient()
    api.force_authenticate(user)
    for body in (
        {"name": "set\u0000a", "team": team.name},
        {"name": "set-b", "team": team.name, "selector": "a=\u0000"},
        {"name\u0000": "set-c", "team": team.name},
    ):
        response = api.post("/api/v1/cluster-sets/", body, format="json")
        assert response.status_code == 400, (body, response.content[:300])
        assert "NUL" in response.json()["error"]["message"]
    assert not ClusterSet.objects.exists()


def test_form_and_multipart_bodies_with_nul_answer_400() -> None:
    # schemathesis: a multipart POST /api/v1/cluster-sets/ with NUL in team_name answered 500
    from clusters.models import ClusterSet

    api = APIClient()
    api.force_authenticate(make_user(username="nul-form"))
    for fmt in ("multipart",):
        response = api.post(
            "/api/v1/cluster-sets/", {"name": "set-f", "team_name": "{\x00"}, format=fmt
        )
        assert response.status_code == 400, (fmt, response.content[:300])
        assert "NUL" in response.json()["error"]["message"]
    response = api.post(
        "/api/v1/cluster-sets/",
        "name=set-g&team_name=a%00b",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400, response.content[:300]
    assert not ClusterSet.objects.exists()
