"""Error pages in the site layout, favicon, current section, "Any" filters (issue 19)."""

from __future__ import annotations

import re

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from accounts.choices import Role
from operations.services import operation_create
from tests.factories import add_member, make_cluster, make_team, make_user


@pytest.mark.django_db
def test_404_is_inside_the_layout(client: Client) -> None:
    client.force_login(make_user(username="ops"))
    response = client.get("/no/such/page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in page and 'aria-label="Main"' in page and "Log out" in page
    assert "keelson/app.css" in page and "keelson/favicon.svg" in page


def test_500_renders_without_database_or_request_context() -> None:
    # no django_db mark: any query would raise. Django's handler passes no request context.
    response = server_error(RequestFactory().get("/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in page and "keelson/app.css" in page
    assert 'class="brand"' in page


@pytest.mark.django_db
def test_every_page_has_a_favicon_and_the_current_section(client: Client) -> None:
    client.force_login(make_user())
    for path, section in (
        ("/", "Fleet"),
        ("/clusters/", "Clusters"),
        ("/costs/", "Cost"),
        ("/policies/", "Policies"),
        ("/applications/", "Applications"),
    ):
        page = client.get(path).content.decode()
        assert '<link rel="icon" href="/static/keelson/favicon.svg"' in page, path
        current = re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', page)
        assert current == [section], path


@pytest.mark.django_db
def test_filters_default_to_any(client: Client) -> None:
    team = make_team()
    user = make_user()
    add_member(team, user, Role.VIEWER)
    client.force_login(user)
    page = client.get("/policies/").content.decode()
    assert "---------" not in page and ">Unknown<" not in page
    # mode (a single choice), bundled and enabled (yes/no) and engine each start at Any
    assert len(re.findall(r'<option value="" selected>Any</option>', page)) == 4
    # and Any filters nothing: the API's FilterSet is unchanged
    assert client.get("/policies/?mode=&bundled=&enabled=&engine=").status_code == 200


@pytest.mark.django_db
def test_live_pages_say_when_they_last_updated_and_long_actions_show_progress(
    client: Client,
) -> None:
    team = make_team()
    user = make_user()
    add_member(team, user, Role.ADMIN)
    make_cluster(team=team, name="edge-1")
    operation = operation_create(kind="cluster.provision", created_by=user)
    client.force_login(user)
    for path in ("/", "/clusters/edge-1/", f"/operations/{operation.pk}/"):
        page = client.get(path).content.decode()
        # the live pages carry a line that live.js refreshes on every message
        assert re.search(r"data-live-updated>Updated <time datetime=\"[^\"]+\"", page), path
        assert "/static/keelson/busy.js" in page and "/static/keelson/time.js" in page
    # long actions mark their forms: busy.js shows a spinner and blocks a second submit
    detail = client.get("/clusters/edge-1/").content.decode()
    assert re.search(r'action="/clusters/edge-1/probe/" data-busy', detail)
    assert 'action="/clusters/edge-1/deregister/" data-busy' in detail
    cancel = client.get(f"/operations/{operation.pk}/").content.decode()
    assert 'class="cancel-operation" data-busy' in cancel
    listing = client.get("/clusters/").content.decode()
    assert 'hx-indicator="#cluster-filter-busy"' in listing
