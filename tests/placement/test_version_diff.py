"""An application's versions on its page, with a unified diff between two (issue 19)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.choices import Role
from applications.diff import MAX_LINES, unified_diff
from applications.services import application_create, application_version_add
from tests.factories import add_member, make_team, make_user
from tests.placement.test_pages import MANIFESTS as V1

pytestmark = pytest.mark.django_db

V2 = V1.replace("metadata: {name: web}", 'metadata: {name: web, annotations: {note: "<b>x</b>"}}')
V2 = V2.replace("replicas: 1", "replicas: 3")

# Worked out by hand as `diff -u` prints it: lines 3 and 5 change; three lines of context
# around them give one hunk over lines 1-8 of both sides.
EXPECTED = [
    "--- version 1",
    "+++ version 2",
    "@@ -1,8 +1,8 @@",
    " apiVersion: apps/v1",
    " kind: Deployment",
    "-metadata: {name: web}",
    '+metadata: {name: web, annotations: {note: "<b>x</b>"}}',
    " spec:",
    "-  replicas: 1",
    "+  replicas: 3",
    "   selector: {matchLabels: {app: web}}",
    "   template:",
    "     metadata: {labels: {app: web}}",
]


def test_unified_diff_is_diff_u() -> None:
    diff = unified_diff(V1, V2, old=1, new=2)
    assert [line.text for line in diff.lines] == EXPECTED
    kinds = [line.kind for line in diff.lines]
    assert kinds[:3] == ["file", "file", "hunk"]
    assert kinds.count("add") == 2 and kinds.count("remove") == 2
    assert unified_diff(V1, V1, old=1, new=1).identical


def test_too_long_versions_are_not_compared_on_a_web_thread() -> None:
    long = "x: 1\n" * (MAX_LINES + 1)
    diff = unified_diff(long, "x: 2\n", old=1, new=2)
    assert diff.lines == [] and "too long" in diff.problem


def _viewer_of_web() -> Client:
    team = make_team()
    application = application_create(
        actor=None, team=team, name="web", namespace="web", manifests=V1
    )
    application_version_add(actor=None, application=application, manifests=V2)
    user = make_user()
    add_member(team, user, Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client


def test_page_lists_versions_and_shows_an_escaped_diff() -> None:
    # given: an application with two versions, seen by a viewer of its team
    client = _viewer_of_web()

    # when: the page opens, then the two versions are compared
    page = client.get("/applications/web/").content.decode()
    diff = client.get("/applications/web/", {"old": "1", "new": "2"}).content.decode()

    # then: a form offers both versions; the diff shows both changes, escaped
    assert 'name="old"' in page and 'name="new"' in page and "Show diff" in page
    assert "Changes from version 1 to version 2" in diff
    assert '<span class="diff-remove">-  replicas: 1</span>' in diff
    assert '<span class="diff-add">+  replicas: 3</span>' in diff
    assert "&lt;b&gt;x&lt;/b&gt;" in diff and "<b>x</b>" not in diff


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("1", "9", "This application has no version 9."),
        ("1", "two", "Choose two versions to compare."),
        ("2", "2", "Versions 2 and 2 have the same manifests."),
    ],
)
def test_unknown_or_same_versions_say_so(old: str, new: str, message: str) -> None:
    client = _viewer_of_web()
    response = client.get("/applications/web/", {"old": old, "new": new})
    assert response.status_code == 200
    assert message in response.content.decode()


def test_outsider_sees_no_versions() -> None:
    _viewer_of_web()
    outsider = Client()
    outsider.force_login(make_user())
    assert outsider.get("/applications/web/", {"old": "1", "new": "2"}).status_code == 404
